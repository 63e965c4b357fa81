/**
 * Outbound vendor WebSockets the Workers way (cloudflare.md §1.4): `fetch(url, {headers: {Upgrade:
 * "websocket", ...}})` so we can send an Authorization header (`new WebSocket()` cannot), and
 * `binaryType = "arraybuffer"` BEFORE `accept()` (the default is "blob" at our compatibility date).
 *
 * `VendorSocket` is the one owner of such a socket: it decodes frames into text/bytes, contains handler
 * errors, reports an unexpected close exactly once, and makes close() idempotent.
 */
import { ProviderError } from "../types";
import { closedError, errorFromResponse, protocolError, toProviderError } from "./errors";

export interface ConnectOptions {
  provider: string;
  /** ws://, wss://, http:// or https:// (fetch only speaks http(s), so ws schemes are mapped). */
  url: string;
  headers?: Record<string, string>;
  /** Handshake timeout. */
  timeoutMs?: number;
  signal?: AbortSignal;
}

export const DEFAULT_CONNECT_TIMEOUT_MS = 5000;

export function httpUrlOf(url: string): string {
  if (url.startsWith("wss://")) return `https://${url.slice(6)}`;
  if (url.startsWith("ws://")) return `http://${url.slice(5)}`;
  return url;
}

/** Open and accept a WebSocket; a refused upgrade becomes a classified ProviderError (401 → auth). */
export async function connectWebSocket(options: ConnectOptions): Promise<WebSocket> {
  const timeout = AbortSignal.timeout(options.timeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS);
  const signal = options.signal ? AbortSignal.any([options.signal, timeout]) : timeout;
  let response: Response;
  try {
    response = await fetch(httpUrlOf(options.url), {
      headers: { ...options.headers, Upgrade: "websocket" },
      signal,
    });
  } catch (error) {
    if (timeout.aborted) {
      throw new ProviderError(options.provider, "timeout", "WebSocket handshake timed out", true);
    }
    throw toProviderError(options.provider, error);
  }
  return acceptWebSocketResponse(options.provider, response);
}

/** Accept the socket of an upgrade Response (our fetch, or the AI binding's `{websocket: true}` mode). */
export async function acceptWebSocketResponse(provider: string, response: Response): Promise<WebSocket> {
  const socket = response.webSocket;
  if (response.status !== 101 || !socket) {
    if (response.status >= 200 && response.status < 300) {
      throw protocolError(provider, `expected a WebSocket upgrade, got HTTP ${response.status}`);
    }
    throw await errorFromResponse(provider, response);
  }
  socket.binaryType = "arraybuffer";
  socket.accept();
  return socket;
}

export interface VendorSocketHandlers {
  onText(text: string): void;
  onBinary(bytes: Uint8Array): void;
  /** Called once when the socket ends; `error` is set unless we closed it ourselves. */
  onClosed(error?: ProviderError): void;
}

/** Frames larger than this from a vendor are a protocol violation, not audio. */
export const MAX_VENDOR_FRAME = 4 * 1024 * 1024;

export class VendorSocket {
  private closing = false;
  private ended = false;
  private closedPromise: Promise<void>;
  private resolveClosed!: () => void;

  constructor(
    readonly provider: string,
    private readonly socket: WebSocket,
    private readonly handlers: VendorSocketHandlers,
  ) {
    this.closedPromise = new Promise((resolve) => {
      this.resolveClosed = resolve;
    });
    socket.addEventListener("message", (event) => this.onMessage(event.data));
    socket.addEventListener("close", (event) => {
      const clean = this.closing;
      this.end(
        clean ? undefined : closedError(provider, `socket closed by peer (${event.code} ${event.reason})`),
      );
    });
    socket.addEventListener("error", () => {
      this.end(this.closing ? undefined : closedError(provider, "socket error"));
    });
  }

  get isOpen(): boolean {
    return !this.ended && !this.closing;
  }

  sendJson(message: unknown): void {
    this.sendRaw(JSON.stringify(message));
  }

  sendBinary(bytes: Uint8Array): void {
    this.sendRaw(bytes);
  }

  private sendRaw(data: string | Uint8Array): void {
    if (!this.isOpen) return;
    try {
      this.socket.send(data);
    } catch (error) {
      this.end(toProviderError(this.provider, error, "closed"));
    }
  }

  /** Idempotent; resolves once the close handshake finished (or after a short grace period). */
  close(code = 1000, reason = "done"): Promise<void> {
    if (!this.ended && !this.closing) {
      this.closing = true;
      try {
        this.socket.close(code, reason);
      } catch {
        this.end(undefined);
      }
      // Do not hang a call teardown on a peer that never answers the close frame.
      const grace = setTimeout(() => this.end(undefined), 1000);
      this.closedPromise.then(() => clearTimeout(grace));
    }
    return this.closedPromise;
  }

  private onMessage(data: unknown): void {
    if (this.ended) return;
    try {
      if (typeof data === "string") {
        if (data.length > MAX_VENDOR_FRAME)
          throw protocolError(this.provider, `text frame too large: ${data.length}`);
        this.handlers.onText(data);
      } else if (data instanceof ArrayBuffer) {
        if (data.byteLength > MAX_VENDOR_FRAME) {
          throw protocolError(this.provider, `binary frame too large: ${data.byteLength}`);
        }
        this.handlers.onBinary(new Uint8Array(data));
      } else {
        throw protocolError(this.provider, "unexpected frame type (binaryType not arraybuffer?)");
      }
    } catch (error) {
      // A handler bug or bad frame must not become an unhandled exception in the Durable Object.
      this.fail(toProviderError(this.provider, error, "protocol"));
    }
  }

  /** Close because of an error we detected; the handler hears about it once. */
  fail(error: ProviderError): void {
    if (this.ended) return;
    this.closing = true;
    try {
      this.socket.close(1011, error.code);
    } catch {
      // already closing
    }
    this.end(error);
  }

  private end(error: ProviderError | undefined): void {
    if (this.ended) return;
    this.ended = true;
    this.resolveClosed();
    try {
      this.handlers.onClosed(error);
    } catch {
      // contained: nothing sensible to do with a failing close handler
    }
  }
}
