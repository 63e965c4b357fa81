/**
 * The offline providers' HTTP server: routing, the bearer-token check, per-request abort on client
 * disconnect, and rendering every failure as an OpenAI-shaped error. The endpoints live in http/.
 */
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { CALLER_PHRASES } from "./chat/rules";
import { handleChat } from "./http/chat-endpoint";
import { ApiError } from "./http/errors";
import { NO_LATENCY, type StageLatency } from "./http/latency";
import { handleSpeech } from "./http/speech-endpoint";
import { handleTranscription } from "./http/transcription-endpoint";
import { PocketSphinxRecognizer } from "./speech/recognizer";

export interface OfflineProvidersOptions {
  /** 0 (default) picks a free port. */
  port?: number;
  /** Default 127.0.0.1: dev tooling never listens beyond loopback unless asked. */
  host?: string;
  /** Require `Authorization: Bearer <any>` on /v1 routes, like the real API (default true). */
  requireAuth?: boolean;
  latency?: Partial<StageLatency>;
  /** Target of every transfer the scripted agent makes (default: the tool's first allowed target). */
  transferTarget?: string;
  /** Concurrent PocketSphinx decodes (default 2). */
  maxConcurrentTranscriptions?: number;
}

export interface OfflineProviders {
  /** Base URL without the /v1 suffix, e.g. http://127.0.0.1:41234 */
  url: string;
  port: number;
  close(): Promise<void>;
}

/** The model ids /v1/models lists; any model name is accepted on the endpoints. */
export const OFFLINE_MODELS = ["offline-scripted-agent", "offline-espeak-tts", "offline-pocketsphinx-stt"];

function sendJson(response: ServerResponse, status: number, body: unknown): void {
  response.writeHead(status, { "content-type": "application/json" });
  response.end(JSON.stringify(body));
}

function checkAuth(request: IncomingMessage): void {
  const header = request.headers.authorization ?? "";
  if (!/^Bearer\s+\S+/i.test(header)) {
    throw new ApiError(
      401,
      "authentication_error",
      "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
      null,
      "missing_api_key",
    );
  }
}

export async function startOfflineProviders(
  options: OfflineProvidersOptions = {},
): Promise<OfflineProviders> {
  const latency: StageLatency = { ...NO_LATENCY, ...options.latency };
  const requireAuth = options.requireAuth ?? true;
  const recognizer = await PocketSphinxRecognizer.create({
    phrases: CALLER_PHRASES.map((phrase) => phrase.text),
    maxConcurrent: options.maxConcurrentTranscriptions ?? 2,
  });
  const inFlight = new Set<AbortController>();

  const route = async (
    request: IncomingMessage,
    response: ServerResponse,
    signal: AbortSignal,
  ): Promise<void> => {
    const path = new URL(request.url ?? "/", "http://offline.invalid").pathname.replace(/\/+$/, "");
    const method = request.method ?? "GET";
    if (path === "/healthz" && method === "GET") return sendJson(response, 200, { status: "ok" });
    if (!path.startsWith("/v1/")) throw new ApiError(404, "not_found_error", `Unknown path ${path}.`);
    if (requireAuth) checkAuth(request);
    const endpoint = `${method} ${path}`;
    switch (endpoint) {
      case "GET /v1/models":
        return sendJson(response, 200, {
          object: "list",
          data: OFFLINE_MODELS.map((id) => ({
            id,
            object: "model",
            created: 0,
            owned_by: "patchbay-offline",
          })),
        });
      case "POST /v1/chat/completions":
        return handleChat(request, response, latency, { transferTarget: options.transferTarget }, signal);
      case "POST /v1/audio/speech":
        return handleSpeech(request, response, latency, signal);
      case "POST /v1/audio/transcriptions":
        return handleTranscription(request, response, recognizer, latency, signal);
      default:
        throw new ApiError(404, "not_found_error", `Invalid URL (${method} ${path})`);
    }
  };

  const server = createServer((request, response) => {
    const controller = new AbortController();
    inFlight.add(controller);
    // The client hanging up (or the server closing) aborts the request's timers and child processes.
    response.once("close", () => {
      if (!response.writableFinished) controller.abort(new Error("client disconnected"));
      inFlight.delete(controller);
    });
    route(request, response, controller.signal).catch((error: unknown) => {
      if (controller.signal.aborted) return;
      const apiError =
        error instanceof ApiError
          ? error
          : new ApiError(
              500,
              "server_error",
              `offline providers: ${error instanceof Error ? error.message : String(error)}`,
            );
      if (!response.headersSent) sendJson(response, apiError.status, apiError.body());
      else response.destroy(apiError); // mid-stream: the client sees a truncated body, as with a real outage
    });
  });

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port ?? 0, options.host ?? "127.0.0.1", () => {
      server.off("error", reject);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  const host = address.family === "IPv6" ? `[${address.address}]` : address.address;

  let closing: Promise<void> | undefined;
  const close = (): Promise<void> => {
    closing ??= (async () => {
      for (const controller of inFlight) controller.abort(new Error("server closing"));
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await recognizer.close();
    })();
    return closing;
  };
  return { url: `http://${host}:${address.port}`, port: address.port, close };
}
