// Bearer API keys (llama-server's --api-key). Keys are compared as SHA-256 digests in constant time; the
// request remembers which key it used, as a short digest, for fairness and /slots (never the key itself).
import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyRequest } from 'fastify';
import { invalidApiKey } from './errors.ts';

function digest(key: string): Buffer {
  return createHash('sha256').update(key).digest();
}

/** The key a request presents: `Authorization: Bearer <key>`, or `X-Api-Key: <key>` as llama-server also takes. */
export function presentedKey(request: FastifyRequest): string | null {
  const auth = request.headers.authorization;
  if (typeof auth === 'string') {
    const m = /^Bearer\s+(\S+)\s*$/i.exec(auth);
    return m?.[1] ?? null;
  }
  const x = request.headers['x-api-key'];
  return typeof x === 'string' && x !== '' ? x : null;
}

/** An onRequest hook that refuses requests without a configured key, except on routes marked `public`. */
export function apiKeyHook(keys: readonly string[]): (request: FastifyRequest) => Promise<void> {
  const digests = keys.map(digest);
  return async (request) => {
    if (digests.length === 0 || request.routeOptions.config.public === true) return;
    const key = presentedKey(request);
    if (key === null) throw invalidApiKey();
    const d = digest(key);
    // Check every key so the time taken does not say which one came close.
    let ok = false;
    for (const k of digests) ok = timingSafeEqual(k, d) || ok;
    if (!ok) throw invalidApiKey();
    request.apiKeyClient = `key:${d.toString('hex').slice(0, 12)}`;
  };
}
