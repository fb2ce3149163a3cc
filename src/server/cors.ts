// Cross-origin access, off unless asked for (--cors-origins): '*' any origin, 'localhost' any loopback origin
// (http or https, any port), or exact origins. Allowed origins get what llama-server sends; preflights are
// answered 200 on every path, with the headers only when the origin is allowed.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { setCasedHeader } from './headers.ts';

const LOOPBACK = new Set(['localhost', '127.0.0.1', '[::1]', '::1']);

export function originAllowed(origin: string, allowed: readonly string[]): boolean {
  if (allowed.includes('*') || allowed.includes(origin)) return true;
  if (!allowed.includes('localhost')) return false;
  try {
    const url = new URL(origin);
    return (url.protocol === 'http:' || url.protocol === 'https:') && LOOPBACK.has(url.hostname);
  } catch {
    return false;
  }
}

function allow(request: FastifyRequest, reply: FastifyReply, allowed: readonly string[]): void {
  const origin = request.headers.origin;
  reply.header('vary', 'Origin');
  if (typeof origin !== 'string' || !originAllowed(origin, allowed)) return;
  setCasedHeader(reply, 'Access-Control-Allow-Origin', origin);
  setCasedHeader(reply, 'Access-Control-Allow-Credentials', 'true');
  setCasedHeader(reply, 'Access-Control-Allow-Methods', 'GET, POST, DELETE, OPTIONS');
  setCasedHeader(reply, 'Access-Control-Allow-Headers', '*');
}

export function registerCors(app: FastifyInstance, allowed: readonly string[]): void {
  if (allowed.length > 0) app.addHook('onRequest', async (request, reply) => allow(request, reply, allowed));
  app.options('*', { config: { public: true } }, async (_request, reply) => reply.code(200).send());
}
