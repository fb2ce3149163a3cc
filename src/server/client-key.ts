// The fairness key of a request: the scheduler shares slots round-robin between these.
import type { FastifyRequest } from 'fastify';

/** The API key (hashed, as /slots shows it), else the body's `user`, else the remote address. */
export function clientKey(request: FastifyRequest, user: string | null | undefined): string {
  if (request.apiKeyClient !== null) return request.apiKeyClient;
  if (typeof user === 'string' && user !== '') return `user:${user}`;
  return `ip:${request.ip}`;
}
