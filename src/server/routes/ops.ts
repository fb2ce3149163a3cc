// GET /health (open to all, for load balancers) and GET /slots (the scheduler's view of its slots).
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { ServerDeps } from '../deps.ts';

export type ServerState = 'loading' | 'ok' | 'shutting_down';

export const opsRoutes: FastifyPluginAsyncTypebox<{ deps: ServerDeps; state: () => ServerState }> = async (
  app,
  { deps, state },
) => {
  app.get('/health', { config: { public: true } }, async (_request, reply) => {
    const s = state();
    return reply.code(s === 'ok' ? 200 : 503).send({ status: s });
  });
  app.get('/slots', async () => deps.scheduler.snapshot());
};
