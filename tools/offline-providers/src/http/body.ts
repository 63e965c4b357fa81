/**
 * Request body reading with a hard cap, and the JSON/multipart decoding on top of it.
 * Untrusted input stops here: oversize bodies, bad JSON and bad multipart become ApiErrors.
 */
import type { IncomingMessage } from "node:http";
import { ApiError, badRequest } from "./errors";

export const JSON_BODY_LIMIT = 1024 * 1024;
/** OpenAI's own upload limit for audio files. */
export const UPLOAD_BODY_LIMIT = 25 * 1024 * 1024;

export async function readBody(request: IncomingMessage, limit: number): Promise<Buffer> {
  const declared = Number(request.headers["content-length"] ?? "0");
  if (declared > limit) throw tooLarge(declared, limit);
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of request) {
    const buffer = chunk as Buffer;
    total += buffer.length;
    if (total > limit) throw tooLarge(total, limit);
    chunks.push(buffer);
  }
  return Buffer.concat(chunks, total);
}

function tooLarge(got: number, limit: number): ApiError {
  return new ApiError(
    413,
    "invalid_request_error",
    `request body too large: got ${got} > limit ${limit} bytes`,
  );
}

export async function readJson(request: IncomingMessage): Promise<unknown> {
  const body = await readBody(request, JSON_BODY_LIMIT);
  try {
    return JSON.parse(body.toString("utf8")) as unknown;
  } catch {
    throw badRequest(
      "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your HTTP library correctly.)",
    );
  }
}

/** Multipart parsing via the platform's own Request.formData() (undici), after the size cap. */
export async function readMultipart(request: IncomingMessage): Promise<FormData> {
  const contentType = request.headers["content-type"] ?? "";
  if (!contentType.toLowerCase().startsWith("multipart/form-data")) {
    throw badRequest("Expected a multipart/form-data request body.", null, "invalid_content_type");
  }
  const body = await readBody(request, UPLOAD_BODY_LIMIT);
  try {
    return await new Request("http://offline.invalid/", {
      method: "POST",
      headers: { "content-type": contentType },
      body,
    }).formData();
  } catch {
    throw badRequest("Could not parse the multipart/form-data body.");
  }
}
