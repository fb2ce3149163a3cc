// The Fastify app: OpenAI routes over the scheduler, OpenAI-shaped errors, API keys, health. It never listens;
// the entry point does (and calls markReady(), and closes the scheduler on shutdown).
import { type TypeBoxTypeProvider, TypeBoxValidatorCompiler } from '@fastify/type-provider-typebox';
import Fastify, {
  type FastifyBaseLogger,
  type FastifyInstance,
  type FastifyReply,
  type FastifyRequest,
  type FastifyServerOptions,
  LogController,
} from 'fastify';
import { apiKeyHook } from './auth.ts';
import type { ChatLayer } from './chat/layer.ts';
import { registerCors } from './cors.ts';
import type { GenerationMetrics, RejectionCause, RouterControl, ServerDeps, SleepControl } from './deps.ts';
import type { ApiError } from './errors.ts';
import {
  clientErrorResponse,
  invalidRequest,
  modelLoading,
  notAGenerationServer,
  notFound,
  shuttingDown,
  toApiError,
} from './errors.ts';
import { checkJsonDepth, timeoutCheckIntervalMs } from './limits.ts';
import { anthropicError } from './messages-api/errors.ts';
import {
  resolveServerOptions,
  type ServedEmbedder,
  type ServedModel,
  type ServedScheduler,
  type ServerOptions,
} from './options.ts';
import { REQUEST_ID_HEADER, requestIdOf } from './request-id.ts';
import { chatRoutes } from './routes/chat.ts';
import { completionRoute } from './routes/completion.ts';
import { completionRoutes } from './routes/completions.ts';
import { embeddingRoutes } from './routes/embeddings.ts';
import { messagesRoutes } from './routes/messages.ts';
import { modelRoutes } from './routes/models.ts';
import { opsRoutes, type ServerState } from './routes/ops.ts';
import { responsesRoutes } from './routes/responses.ts';
import { routerRoutes } from './routes/router.ts';
import { statsRoutes } from './routes/stats.ts';
import { tokenizeRoutes } from './routes/tokenize.ts';
import { unsupportedRoutes } from './routes/unsupported.ts';
import { webuiRoutes } from './routes/webui.ts';
import type { StatsSource } from './stats-source.ts';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Open without an API key (only /health). */
    public?: boolean;
    /** Router mode: served by the router itself, not by a model (the listing, /metrics). */
    global?: boolean;
    /** Answers from what is known without the model: does not wake a sleeping model (/props, /v1/models). */
    idle?: boolean;
  }
  interface FastifyRequest {
    /** `key:<digest prefix>` when the request presented a valid API key, else null. */
    apiKeyClient: string | null;
    /** What a generation reported, for the one log line per request. */
    generation: { promptTokens: number; outputTokens: number; ttftMs: number | null } | null;
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
  config: ServerOptions;
  /** With config.embeddings: what /v1/embeddings runs on. */
  embedder?: ServedEmbedder;
  /** Serves GET /metrics (behind the API key, like llama-server) and counts responses and refusals. */
  metrics?: GenerationMetrics & { exposition(): Promise<{ contentType: string; body: string }> };
  /** Serves the live view's GET /v1/stats and /v1/stats/stream. */
  stats?: Pick<StatsSource, 'frame'>;
  /**
   * Router mode: several models, each request served by the one its `model` names (loaded first if need be). The
   * model, chat layer and scheduler above are then only the defaults no request reaches.
   */
  router?: RouterControl;
  /** --sleep-idle-seconds: routes that need the model wake it first. */
  sleep?: SleepControl;
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
  /** One log line per request at info level (method, route, status, tokens, TTFT, duration). Default false. */
  logRequests?: boolean;
  /** Serve HTTPS with this key and certificate (PEM), as --ssl-key-file/--ssl-cert-file. */
  https?: { key: Buffer | string; cert: Buffer | string };
}

/** Log paths never written in clear (API keys), whatever logger the server runs with. */
export const REDACTED_PATHS = [
  'req.headers.authorization',
  'req.headers["x-api-key"]',
  'headers.authorization',
  'headers["x-api-key"]',
];

export function buildApp(deps: AppDeps, opts: BuildAppOptions = {}): FastifyInstance {
  const config = resolveServerOptions(deps.config, deps.model);
  const serverDeps: ServerDeps = { model: deps.model, chat: deps.chat, scheduler: deps.scheduler, config };
  if (deps.metrics) serverDeps.metrics = deps.metrics;
  if (deps.embedder) serverDeps.embedder = deps.embedder;

  const limits = config.connections;
  // Node's read timeouts (a slow-loris client is dropped with a 408), checked often enough to fire on time.
  const httpOptions = {
    headersTimeout: limits.headersTimeoutMs,
    connectionsCheckingInterval: timeoutCheckIntervalMs(limits),
  };
  const options: FastifyServerOptions = {
    bodyLimit: config.bodyLimitBytes,
    requestTimeout: limits.requestReadTimeoutMs,
    keepAliveTimeout: limits.keepAliveTimeoutMs,
    maxRequestsPerSocket: limits.maxRequestsPerSocket,
    // Malformed requests and read timeouts never reach a route: they get OpenAI's error shape too.
    clientErrorHandler: (err, socket) => {
      if (err.code === 'ECONNRESET' || socket.destroyed) return;
      if (socket.writable) socket.write(clientErrorResponse(err));
      socket.destroy(err);
    },
    // The client's X-Request-Id when it is sane, else a fresh one: in every log line (reqId) and the response.
    genReqId: requestIdOf,
    // Our own line per request (below) replaces Fastify's two.
    logController: new LogController({ disableRequestLogging: true }),
    // Fastify's own 503 while closing is not OpenAI-shaped; the onRequest hook below answers instead.
    return503OnClosing: false,
  };
  if (config.trustedProxies.length > 0) options.trustProxy = [...config.trustedProxies];
  if (opts.loggerInstance !== undefined) options.loggerInstance = opts.loggerInstance;
  else if (opts.logger !== undefined && opts.logger !== false) {
    const given = typeof opts.logger === 'object' ? opts.logger : {};
    const extra = Array.isArray(given.redact) ? given.redact : (given.redact?.paths ?? []);
    options.logger = { ...given, redact: { paths: [...REDACTED_PATHS, ...extra], censor: '[redacted]' } };
  }
  // Fastify's types split HTTP and HTTPS servers; the routes see the same request and reply either way.
  const app = (
    opts.https !== undefined
      ? Fastify({ ...options, https: { ...httpOptions, ...opts.https } } as FastifyServerOptions)
      : Fastify({ ...options, http: httpOptions })
  ).withTypeProvider<TypeBoxTypeProvider>();
  app.setValidatorCompiler(TypeBoxValidatorCompiler);
  // Past the cap, Node closes new connections at accept; the ones open are served.
  if (limits.maxConnections > 0) app.server.maxConnections = limits.maxConnections;
  app.addHook('onRequest', async (request, reply) => {
    reply.header(REQUEST_ID_HEADER, request.id);
  });

  let state: ServerState = opts.ready === true ? 'ok' : 'loading';
  app.decorate('markReady', () => {
    if (state === 'loading') state = 'ok';
  });
  app.decorate('serverState', {
    getter: () => state,
  });
  app.decorateRequest('apiKeyClient', null);
  app.decorateRequest('generation', null);
  app.decorateRequest('servedBy', null);
  if (opts.logRequests === true) {
    app.addHook('onRequest', async (request, reply) => {
      const t0 = performance.now();
      // 'close' also fires for hijacked streams, which skip Fastify's onResponse.
      reply.raw.once('close', () => {
        const g = request.generation;
        request.log.info(
          {
            method: request.method,
            url: request.url,
            status: reply.raw.statusCode,
            ms: Math.round(performance.now() - t0),
            ...(g !== null ? { promptTokens: g.promptTokens, outputTokens: g.outputTokens, ttftMs: g.ttftMs } : {}),
          },
          'request',
        );
      });
    });
  }
  registerCors(app, config.corsOrigins);
  // llama-server reads every body as JSON whatever its Content-Type says (`curl -d '{...}'` sends form
  // encoding), and scripts written for it rely on that: so do we. Invalid JSON is still a 400.
  app.removeContentTypeParser('text/plain');
  app.addContentTypeParser('*', { parseAs: 'string' }, app.getDefaultJsonParser('error', 'error'));
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
  // Before validation and before any route walks the body recursively (schemas, JSON.stringify, native parsers).
  app.addHook('preValidation', async (request) => {
    if (typeof request.body === 'object' && request.body !== null)
      checkJsonDepth(request.body, config.limits.maxJsonDepth);
  });

  // One handler per error shape: OpenAI's everywhere, Anthropic's on its Messages routes (registered below). Errors
  // before a route is found (a body that can't be read on a wrong method) take the shape of the path they came to.
  const anthropicPath = (url: string): boolean => /^\/v1\/messages(\/|\?|$)/.test(url);
  const errorHandler =
    (shape: (api: ApiError, request: FastifyRequest) => object) =>
    (err: unknown, request: FastifyRequest, reply: FastifyReply): FastifyReply => {
      const api = toApiError(err);
      const cause = rejectionCause(api);
      if (cause !== null) deps.metrics?.rejected(cause);
      // 500 is our failure; 501, 503 and 504 are answers (off, loading or busy, too slow).
      if (api.statusCode === 500) request.log.error({ err }, 'request failed');
      else request.log.debug({ err: api.message }, 'request refused');
      return reply.code(api.statusCode).headers(api.headers).send(shape(api, request));
    };
  app.setErrorHandler(errorHandler((api, request) => (anthropicPath(request.url) ? anthropicError(api) : api.body())));
  app.setNotFoundHandler((request, reply) => {
    const api = notFound(request.method, request.url);
    // A wrong method on Anthropic's routes (GET /v1/messages) is answered in Anthropic's shape, as its routes are.
    return reply.code(api.statusCode).send(anthropicPath(request.url) ? anthropicError(api) : api.body());
  });

  const metrics = deps.metrics;
  const startedAt = Math.floor(Date.now() / 1000);
  if (deps.stats) app.register(statsRoutes, { stats: deps.stats, state: () => state });
  if (opts.webui !== false) app.register(webuiRoutes, typeof opts.webui === 'object' ? opts.webui : {});
  // Everything that needs the model answers 503 while it loads, as llama-server does.
  app.register(async (loaded) => {
    loaded.addHook('onRequest', async (request) => {
      if (state === 'loading' && request.routeOptions.config.public !== true) throw modelLoading();
    });
    const router = deps.router;
    if (router !== undefined) loaded.addHook('preHandler', routeToModel(router));
    const sleep = deps.sleep;
    if (sleep !== undefined) loaded.addHook('preHandler', holdAwake(sleep));
    await loaded.register(opsRoutes, {
      deps: serverDeps,
      ...(router !== undefined
        ? { routerProps: () => ({ role: 'router', max_instances: router.modelsMax, models_autoload: router.autoload }) }
        : {}),
      ...(sleep !== undefined ? { sleeping: () => sleep.sleeping } : {}),
      state: () => state,
      startedAt,
      ...(metrics ? { exposition: () => metrics.exposition() } : {}),
    });
    if (router !== undefined)
      await loaded.register(routerRoutes, { router, buildInfo: config.buildInfo, ownedBy: config.ownedBy });
    else await loaded.register(modelRoutes, { deps: serverDeps });
    await loaded.register(tokenizeRoutes, { deps: serverDeps });
    await loaded.register(embeddingRoutes, { deps: serverDeps });
    // An embedding model generates nothing: its server refuses every generation route up front.
    await loaded.register(async (generation) => {
      if (config.embeddings) {
        generation.addHook('onRequest', async () => {
          throw notAGenerationServer();
        });
      }
      // Router mode: the model the request names may be an embedding model.
      generation.addHook('preHandler', async (request) => {
        if (request.servedBy?.config.embeddings === true) throw notAGenerationServer();
      });
      await generation.register(chatRoutes, { deps: serverDeps });
      await generation.register(responsesRoutes, { deps: serverDeps });
      await generation.register(async (anthropic) => {
        anthropic.setErrorHandler(errorHandler(anthropicError));
        await anthropic.register(messagesRoutes, { deps: serverDeps });
      });
      await generation.register(completionRoutes, { deps: serverDeps });
      await generation.register(completionRoute, { deps: serverDeps });
    });
    await loaded.register(unsupportedRoutes, { router: router !== undefined });
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

/** The model a request names: `model` in its query (GET routes), else in its JSON body. */
function requestedModel(request: FastifyRequest): string | undefined {
  const query = request.query as Record<string, unknown> | undefined;
  if (typeof query?.model === 'string' && query.model !== '') return query.model;
  const body = request.body as Record<string, unknown> | null | undefined;
  const model = typeof body === 'object' && body !== null ? body.model : undefined;
  return typeof model === 'string' && model !== '' ? model : undefined;
}

/**
 * Router mode: before a route runs, the model its request names is found (a 404 naming it when there is none),
 * loaded when it is not (the request waits; `?autoload=false` or --no-models-autoload refuse instead), and held
 * until the response ends, so it is not unloaded under the request. GET /props without a model is the router's.
 */
function routeToModel(router: RouterControl) {
  return async (request: FastifyRequest, reply: FastifyReply): Promise<void> => {
    const route = request.routeOptions;
    if (route.config.public === true || route.config.global === true) return;
    const name = requestedModel(request);
    if (name === undefined) {
      if (request.method === 'GET' && route.url === '/props') return;
      throw invalidRequest('model name is missing from the request', 'model', 'missing_required_parameter');
    }
    const query = request.query as Record<string, unknown> | undefined;
    const autoload =
      typeof query?.autoload === 'string' ? query.autoload === 'true' || query.autoload === '1' : router.autoload;
    const gone = new AbortController();
    const onClose = () => gone.abort();
    reply.raw.once('close', onClose);
    const lease = await router.select(name, { autoload, signal: gone.signal });
    reply.raw.off('close', onClose);
    request.servedBy = lease.deps;
    if (reply.raw.destroyed) lease.release();
    else reply.raw.once('close', lease.release);
  };
}

/** --sleep-idle-seconds: a route that needs the model wakes it (the request waits) and keeps it awake until it ends. */
function holdAwake(sleep: SleepControl) {
  return async (request: FastifyRequest, reply: FastifyReply): Promise<void> => {
    const config = request.routeOptions.config;
    if (config.public === true || config.global === true || config.idle === true) return;
    const release = await sleep.hold();
    if (reply.raw.destroyed) release();
    else reply.raw.once('close', release);
  };
}
