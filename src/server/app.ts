// The Fastify app: OpenAI routes over the scheduler, OpenAI-shaped errors, API keys, health. It never listens;
// the entry point does (and calls markReady(), and closes the scheduler on shutdown).
import { type TypeBoxTypeProvider, TypeBoxValidatorCompiler } from '@fastify/type-provider-typebox';
import Fastify, { type FastifyBaseLogger, type FastifyInstance, type FastifyServerOptions } from 'fastify';
import type { RejectionCause } from '../metrics/server-metrics.ts';
import { apiKeyHook } from './auth.ts';
import type { ChatLayer } from './chat/layer.ts';
import { resolveServerConfig, type ServedModel, type ServedScheduler, type ServerConfig } from './config.ts';
import type { GenerationMetrics, ServerDeps } from './deps.ts';
import type { ApiError } from './errors.ts';
import { modelLoading, notFound, shuttingDown, toApiError } from './errors.ts';
import { chatRoutes } from './routes/chat.ts';
import { completionRoutes } from './routes/completions.ts';
import { modelRoutes } from './routes/models.ts';
import { opsRoutes, type ServerState } from './routes/ops.ts';
import { statsRoutes } from './routes/stats.ts';
import { webuiRoutes } from './routes/webui.ts';
import type { StatsSource } from './stats-source.ts';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Open without an API key (only /health). */
    public?: boolean;
  }
  interface FastifyRequest {
    /** `key:<digest prefix>` when the request presented a valid API key, else null. */
    apiKeyClient: string | null;
  }
  interface FastifyInstance {
    /** /health turns 200 and generation routes open (until then: 503, as llama-server while loading). */
    markReady(): void;
    /** 'loading' until markReady(), 'ok', then 'shutting_down' once close() begins. */
    readonly serverState: ServerState;
  }
}

export interface AppDeps {
  model: ServedModel;
  /** The model's chat template, output parser and grammars (the engine's ChatTemplates). */
  chat: ChatLayer;
  scheduler: ServedScheduler;
  config: ServerConfig;
  /** Serves GET /metrics (behind the API key, like llama-server) and counts responses and refusals. */
  metrics?: GenerationMetrics & { exposition(): Promise<{ contentType: string; body: string }> };
  /** Serves the live view's GET /v1/stats and /v1/stats/stream. */
  stats?: Pick<StatsSource, 'frame'>;
}

export interface BuildAppOptions {
  /** false (default): no logging. true or pino options: Fastify's pino logger, API keys redacted. */
  logger?: boolean | Exclude<FastifyServerOptions['logger'], boolean | undefined>;
  /** A pino logger to use instead (takes precedence over `logger`). */
  loggerInstance?: FastifyBaseLogger;
  /** Start ready (skip the 'loading' state). Default false: call app.markReady(). */
  ready?: boolean;
  /** Serve the web page at GET / (default true; --no-webui turns it off). `dir`: where its build is. */
  webui?: boolean | { dir: string };
}

const REDACT = [
  'req.headers.authorization',
  'req.headers["x-api-key"]',
  'headers.authorization',
  'headers["x-api-key"]',
];

export function buildApp(deps: AppDeps, opts: BuildAppOptions = {}): FastifyInstance {
  const config = resolveServerConfig(deps.config, deps.model);
  const serverDeps: ServerDeps = { model: deps.model, chat: deps.chat, scheduler: deps.scheduler, config };
  if (deps.metrics) serverDeps.metrics = deps.metrics;

  const options: FastifyServerOptions = {
    bodyLimit: config.bodyLimitBytes,
    // Fastify's own 503 while closing is not OpenAI-shaped; the onRequest hook below answers instead.
    return503OnClosing: false,
  };
  if (config.trustedProxies.length > 0) options.trustProxy = [...config.trustedProxies];
  if (opts.loggerInstance !== undefined) options.loggerInstance = opts.loggerInstance;
  else if (opts.logger !== undefined && opts.logger !== false) {
    const given = typeof opts.logger === 'object' ? opts.logger : {};
    const extra = Array.isArray(given.redact) ? given.redact : (given.redact?.paths ?? []);
    options.logger = { ...given, redact: { paths: [...REDACT, ...extra], censor: '[redacted]' } };
  }
  const app = Fastify(options).withTypeProvider<TypeBoxTypeProvider>();
  app.setValidatorCompiler(TypeBoxValidatorCompiler);

  let state: ServerState = opts.ready === true ? 'ok' : 'loading';
  app.decorate('markReady', () => {
    if (state === 'loading') state = 'ok';
  });
  app.decorate('serverState', {
    getter: () => state,
  });
  app.decorateRequest('apiKeyClient', null);
  app.addHook('preClose', async () => {
    state = 'shutting_down';
  });

  app.addHook('onRequest', async (request, reply) => {
    if (state === 'shutting_down' && request.routeOptions.config.public !== true) {
      reply.header('connection', 'close');
      throw shuttingDown();
    }
  });
  app.addHook('onRequest', apiKeyHook(config.apiKeys));

  app.setErrorHandler((err, request, reply) => {
    const api = toApiError(err);
    const cause = rejectionCause(api);
    if (cause !== null) deps.metrics?.rejected(cause);
    if (api.statusCode >= 500) request.log.error({ err }, 'request failed');
    else request.log.debug({ err: api.message }, 'request refused');
    return reply.code(api.statusCode).headers(api.headers).send(api.body());
  });
  app.setNotFoundHandler((request, reply) => {
    const api = notFound(request.method, request.url);
    return reply.code(api.statusCode).send(api.body());
  });

  app.register(opsRoutes, { deps: serverDeps, state: () => state });
  const metrics = deps.metrics;
  if (metrics) {
    app.get('/metrics', async (_request, reply) => {
      const { contentType, body } = await metrics.exposition();
      return reply.type(contentType).send(body);
    });
  }
  if (deps.stats) app.register(statsRoutes, { stats: deps.stats, state: () => state });
  if (opts.webui !== false) app.register(webuiRoutes, typeof opts.webui === 'object' ? opts.webui : {});
  app.register(modelRoutes, { deps: serverDeps });
  app.register(async (generation) => {
    generation.addHook('onRequest', async () => {
      if (state === 'loading') throw modelLoading();
    });
    await generation.register(chatRoutes, { deps: serverDeps });
    await generation.register(completionRoutes, { deps: serverDeps });
  });
  return app;
}

/** Which refusal an error answer is, for the rejections counter; null for anything else. */
function rejectionCause(api: ApiError): RejectionCause | null {
  if (api.statusCode === 401) return 'auth';
  if (api.statusCode === 413) return 'too_large';
  if (api.statusCode === 429) return 'queue_full';
  if (api.statusCode === 503 && api.code === 'shutting_down') return 'shutting_down';
  if (api.type === 'exceed_context_size_error') return 'context_exceeded';
  if (api.statusCode === 400 || api.statusCode === 415) return 'invalid';
  return null;
}
