// Anthropic's error shape, {"type": "error", "error": {"type", "message"}}, for every answer of the Messages routes
// (validation, authentication, refusals, and errors inside a stream): the same ApiError, typed as Anthropic types
// its statuses so its SDK raises the matching class.
import type { ApiError } from '../errors.ts';

export interface AnthropicErrorBody {
  type: 'error';
  error: { type: string; message: string };
}

const TYPES: Readonly<Record<number, string>> = {
  400: 'invalid_request_error',
  401: 'authentication_error',
  403: 'permission_error',
  404: 'not_found_error',
  413: 'request_too_large',
  415: 'invalid_request_error',
  429: 'rate_limit_error',
  503: 'overloaded_error',
  504: 'timeout_error',
};

export function anthropicError(api: ApiError): AnthropicErrorBody {
  const type = TYPES[api.statusCode] ?? (api.statusCode >= 500 ? 'api_error' : 'invalid_request_error');
  return { type: 'error', error: { type, message: api.message } };
}
