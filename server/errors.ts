/**
 * Errors the server sends, in OpenAI's shape: `{ "error": { "message", "type", "param", "code" } }`
 * with the HTTP status the official clients map to their exception classes (400 BadRequestError,
 * 404 NotFoundError, 413, 429 RateLimitError, 500 InternalServerError, 503). The status decides
 * what a client does (the openai package retries 429 and 5xx); `type` follows OpenAI's names.
 */

export type ErrorType = 'invalid_request_error' | 'rate_limit_error' | 'server_error';

export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly options: {
      type?: ErrorType;
      /** A short machine-readable reason, e.g. 'context_length_exceeded'. */
      code?: string;
      /** The request field at fault, e.g. 'messages[1].content[0].image_url.url'. */
      param?: string;
      /** Extra response headers (Retry-After on 429, Allow on 405). */
      headers?: Record<string, string>;
    } = {},
  ) {
    super(message);
  }

  get type(): ErrorType {
    return this.options.type ?? (this.status >= 500 ? 'server_error' : 'invalid_request_error');
  }

  body(): { error: { message: string; type: ErrorType; param: string | null; code: string | null } } {
    return { error: { message: this.message, type: this.type, param: this.options.param ?? null, code: this.options.code ?? null } };
  }
}

/** 400 with the field at fault named first in the message. */
export function badRequest(param: string, message: string, code = 'invalid_value'): ApiError {
  return new ApiError(400, `${param}: ${message}`, { param, code });
}
