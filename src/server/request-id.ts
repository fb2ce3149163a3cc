// Request ids: the one a client (or a proxy in front) sends in X-Request-Id when it is sane, else a fresh UUID.
// Fastify puts it on every log line of the request (reqId); the response carries it back in the same header, so
// a client's report and the server's log can be matched.
import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';

export const REQUEST_ID_HEADER = 'x-request-id';

/** Printable ASCII without spaces, at most 128 characters: safe to log and to echo in a header. */
const SANE = /^[\x21-\x7e]{1,128}$/;

export function requestIdOf(req: IncomingMessage): string {
  const given = req.headers[REQUEST_ID_HEADER];
  return typeof given === 'string' && SANE.test(given) ? given : randomUUID();
}
