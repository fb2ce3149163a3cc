// llama-server routes this server does not serve answer 501 with the reason, not a bare 404, so a client written
// for llama-server learns why. (A route added later simply leaves this list.)
import type { FastifyPluginAsync } from 'fastify';
import { notSupported } from '../errors.ts';

const TEXT_ONLY = 'this server serves one text-generation or embedding model';

export const UNSUPPORTED: Readonly<Record<string, string>> = {
  '/infill': 'fill-in-the-middle (/infill) is not offered; send the prefix as a /completion prompt',
  '/rerank': `reranking is not offered: ${TEXT_ONLY}`,
  '/reranking': `reranking is not offered: ${TEXT_ONLY}`,
  '/v1/rerank': `reranking is not offered: ${TEXT_ONLY}`,
  '/v1/reranking': `reranking is not offered: ${TEXT_ONLY}`,
  '/lora-adapters': 'LoRA adapters are not offered',
  '/audio/transcriptions': `audio is not offered: ${TEXT_ONLY}`,
  '/v1/audio/transcriptions': `audio is not offered: ${TEXT_ONLY}`,
  '/models/load': 'this server serves one model: start it with --models-dir or --models-preset (router mode)',
  '/models/unload': 'this server serves one model: start it with --models-dir or --models-preset (router mode)',
  '/models/sse': 'model status events are not offered: poll GET /models',
  '/tools': 'server-side tools are not offered: the client runs its own tools',
  '/cors-proxy': 'the web UI MCP proxy is not offered',
};

/** Router mode serves these itself (src/server/routes/router.ts). */
const ROUTER_ROUTES = new Set(['/models/load', '/models/unload']);

export const unsupportedRoutes: FastifyPluginAsync<{ router?: boolean }> = async (app, { router = false }) => {
  for (const [url, why] of Object.entries(UNSUPPORTED)) {
    if (router && ROUTER_ROUTES.has(url)) continue;
    app.route({
      method: ['GET', 'POST', 'DELETE'],
      url,
      config: { global: true },
      handler: async () => {
        throw notSupported(`${url} is not supported by this server: ${why}`);
      },
    });
  }
};
