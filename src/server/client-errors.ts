// What the server writes on a socket whose request never became one (Node's 'clientError'): a read timeout
// (slow client), headers too large, or bytes that are not HTTP. Raw HTTP/1.1, in OpenAI's error shape, then
// the connection closes.
import { STATUS_CODES } from 'node:http';
import { ApiError } from './errors.ts';

function apiErrorOf(err: NodeJS.ErrnoException): ApiError {
  if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT')
    return new ApiError(
      408,
      'timeout_error',
      'The request was not received in time (--headers-timeout, --body-timeout)',
      {
        code: 'request_read_timeout',
      },
    );
  if (err.code === 'HPE_HEADER_OVERFLOW')
    return new ApiError(431, 'invalid_request_error', 'The request headers are larger than the server accepts', {
      code: 'headers_too_large',
    });
  return new ApiError(400, 'invalid_request_error', 'The request is not valid HTTP', { code: 'bad_request' });
}

export function clientErrorResponse(err: NodeJS.ErrnoException): string {
  const api = apiErrorOf(err);
  const body = JSON.stringify(api.body());
  return [
    `HTTP/1.1 ${api.statusCode} ${STATUS_CODES[api.statusCode] ?? ''}`,
    'Content-Type: application/json; charset=utf-8',
    `Content-Length: ${Buffer.byteLength(body)}`,
    'Connection: close',
    '',
    body,
  ].join('\r\n');
}
