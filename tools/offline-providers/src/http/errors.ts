/**
 * Errors shaped like the OpenAI API's: `{"error":{"message","type","param","code"}}` with the matching
 * status, so the provider client's error classification (auth / bad-request / retryable) is exercised.
 * An ApiError renders its own response body; handlers throw it and the router writes it.
 */
export type ApiErrorType =
  | "invalid_request_error"
  | "authentication_error"
  | "server_error"
  | "not_found_error";

export class ApiError extends Error {
  override readonly name = "ApiError";
  constructor(
    readonly status: number,
    readonly type: ApiErrorType,
    message: string,
    readonly param: string | null = null,
    readonly code: string | null = null,
  ) {
    super(message);
  }

  body(): { error: { message: string; type: ApiErrorType; param: string | null; code: string | null } } {
    return { error: { message: this.message, type: this.type, param: this.param, code: this.code } };
  }
}

export function badRequest(
  message: string,
  param: string | null = null,
  code: string | null = null,
): ApiError {
  return new ApiError(400, "invalid_request_error", message, param, code);
}
