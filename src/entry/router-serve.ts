// `npm start -- --models-dir DIR` (or --models-preset FILE), without -m: router mode. One process serves every model
// of the catalog, each loaded when a request names it (src/router/model-router.ts decides what is loaded); their
// schedulers take turns on the cores (StepTurns). The HTTP app is the same as with one model, told to route.
import { basename } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { listDevices, systemInfo } from '../engine/index.ts';
import { LiveStats } from '../metrics/live-stats.ts';
import { RouterMetrics } from '../metrics/router-metrics.ts';
import { type LiveState, ServerMetrics } from '../metrics/server-metrics.ts';
import { loadCatalog } from '../router/catalog.ts';
import { type MemoryBudget, ModelRouter } from '../router/model-router.ts';
import { type Scheduler, StepTurns } from '../scheduler/index.ts';
import { type BuildAppOptions, buildApp } from '../server/app.ts';
import type { RouterControl, ServerDeps } from '../server/deps.ts';
import { StatsSource } from '../server/stats-source.ts';
import type { ServeConfig } from './config/index.ts';
import type { ServeInputs } from './inputs.ts';
import { LateEngine } from './late-engine.ts';
import { createLogger } from './logger.ts';
import { footprintBytes, modelArgv, openModel, prepareEntry, type RouterHostOptions } from './router-host.ts';
import { serverOptionsOf } from './server-options.ts';
import { stopOnSignal } from './shutdown.ts';

const message = (err: unknown): string => (err instanceof Error ? err.message : String(err));

export interface RouterServer {
  router: ModelRouter<ServerDeps>;
  /** The models' schedulers step in turns on it. */
  turns: StepTurns;
  control: RouterControl;
  metrics: RouterMetrics;
  /** The live view's figures, every model's together (refusals included), and its frames with each model's slots. */
  live: LiveStats;
  stats: StatsSource;
}

/** The router and what the app needs of it, for `config` and the command line it came from. */
export function createRouter(
  config: ServeConfig,
  argv: readonly string[],
  env: NodeJS.ProcessEnv,
  log: { info(o: object, msg: string): void; error(o: object, msg: string): void },
): RouterServer {
  const turns = new StepTurns();
  const buildInfo = systemInfo().buildInfo;
  const perModel = new Map<string, ServerMetrics>();
  const live = new Map<string, LiveState>();
  const schedulers = new Map<string, Scheduler>();
  const liveStats = new LiveStats();
  const none: LiveState = {
    busySlots: () => 0,
    queueLength: () => 0,
    kvCellsUsed: () => 0,
    kvCellsRunning: () => 0,
    kvCellsTotal: () => 0,
  };
  const metricsFor = (id: string): ServerMetrics => {
    let m = perModel.get(id);
    if (m === undefined) {
      const current = (): LiveState => live.get(id) ?? none;
      m = new ServerMetrics(
        {
          busySlots: () => current().busySlots(),
          queueLength: () => current().queueLength(),
          kvCellsUsed: () => current().kvCellsUsed(),
          kvCellsRunning: () => current().kvCellsRunning(),
          kvCellsTotal: () => current().kvCellsTotal(),
          promptCache: () => current().promptCache?.() ?? { bytes: 0, entries: 0 },
          checkpointBytes: () => current().checkpointBytes?.() ?? 0,
        },
        { processMetrics: false, listener: liveStats },
      );
      perModel.set(id, m);
    }
    return m;
  };
  const hostOptions = { argv, env, turns, buildInfo, metricsFor };
  let routerRef: ModelRouter<ServerDeps> | undefined;
  const metrics = new RouterMetrics({
    models: () => [...perModel].map(([id, m]) => ({ id, registry: m.registry, resetWindow: () => m.resetWindow() })),
    statusCounts: () => {
      const counts: Record<string, number> = {};
      for (const m of routerRef?.list() ?? []) counts[m.status] = (counts[m.status] ?? 0) + 1;
      return counts;
    },
  });
  const router = new ModelRouter<ServerDeps>({
    catalog: () =>
      loadCatalog({
        ...(config.modelsDir !== undefined ? { modelsDir: config.modelsDir } : {}),
        ...(config.modelsPreset !== undefined ? { modelsPreset: config.modelsPreset } : {}),
      }),
    open: async (entry) => {
      const host = await openModel(entry, hostOptions);
      live.set(entry.id, host.live);
      if (host.scheduler !== undefined) schedulers.set(entry.id, host.scheduler);
      return {
        ...host,
        close: async (graceMs) => {
          await host.close(graceMs);
          live.delete(entry.id);
          schedulers.delete(entry.id);
        },
      };
    },
    modelsMax: config.modelsMax,
    autoload: config.modelsAutoload,
    // llama-server's knob for its router tests (unit/test_router.py): loads and requests take 2 s longer.
    ...(env.LLAMA_SERVER_DEBUG_FAKE_TIMING ? { debugDelayMs: 2000 } : {}),
    ...(config.sleepIdleSeconds > 0 ? { sleepIdleMs: config.sleepIdleSeconds * 1000 } : {}),
    budgets: budgetsOf(config, hostOptions),
    events: {
      status(id, status, detail) {
        if (status === 'loaded') metrics.loaded(id, detail.seconds ?? 0);
        if (status === 'failed') metrics.failed(id);
        if (status === 'unloaded' || status === 'sleeping') metrics.unloaded(id);
        if (status === 'failed') log.error({ model: id, error: detail.error }, 'model failed to load');
        else
          log.info(
            { model: id, status, ...(detail.seconds !== undefined ? { seconds: detail.seconds } : {}) },
            'model',
          );
      },
    },
  });
  routerRef = router;
  const control: RouterControl = {
    select: async (name, options) => {
      const lease = await router.acquire(name, options);
      return { deps: lease.deps, release: lease.release };
    },
    list: () =>
      router.list().map((m) => {
        const error = m.error ?? m.entry.problem;
        return {
          id: m.entry.id,
          aliases: m.entry.aliases,
          status: m.status,
          ...(error !== undefined ? { error } : {}),
          ...(m.entry.path !== undefined ? { path: m.entry.path } : {}),
          source: m.entry.source,
          args: modelArgv(m.entry, []),
          requests: m.requests,
          ...(m.meta !== undefined ? { meta: m.meta } : {}),
        };
      }),
    load: (name) => router.load(name),
    unload: (name) => router.unload(name),
    reload: () => router.reload(),
    modelsMax: config.modelsMax,
    autoload: config.modelsAutoload,
  };
  const stats = new StatsSource({
    modelId: 'router',
    slots: 0,
    ctxPerSlot: 0,
    live: liveStats,
    scheduler: () => undefined,
    model: () => undefined,
    kv: () => {
      let cellsUsed = 0;
      let cellsTotal = 0;
      for (const l of live.values()) {
        cellsUsed += l.kvCellsUsed();
        cellsTotal += l.kvCellsTotal();
      }
      return { cellsUsed, cellsTotal };
    },
    devices: listDevices,
    models: () =>
      router.list().map((m) => ({
        id: m.entry.id,
        status: m.status,
        requests: m.requests,
        scheduler: schedulers.get(m.entry.id),
        slots: typeof m.meta?.n_slots === 'number' ? m.meta.n_slots : 0,
        ctxPerSlot: typeof m.meta?.n_ctx === 'number' ? m.meta.n_ctx : 0,
      })),
  });
  return { router, turns, control, metrics, live: liveStats, stats };
}

/** The router's HTTP app over `createRouter`'s parts (the app's own model is never reached: routes get theirs). */
export function routerApp(
  config: ServeConfig,
  inputs: ServeInputs,
  parts: RouterServer,
  appOptions: BuildAppOptions = {},
): FastifyInstance {
  const idle = new LateEngine('router');
  const options = serverOptionsOf(config, inputs, { ctxPerSlot: 1, buildInfo: systemInfo().buildInfo });
  options.aliases = ['router'];
  return buildApp(
    {
      model: idle.servedModel,
      chat: idle.servedChat,
      scheduler: idle.servedScheduler,
      config: options,
      // Refusals reach the router's metrics only (the request has no model yet): the live view counts them too.
      metrics: {
        responded: () => parts.metrics.responded(),
        interTokenGap: () => parts.metrics.interTokenGap(),
        rejected: (cause) => {
          parts.metrics.rejected(cause);
          parts.live.rejected(cause);
        },
        exposition: () => parts.metrics.exposition(),
      },
      stats: parts.stats,
      router: parts.control,
    },
    { ...appOptions, ready: true },
  );
}

/** Runs the router until a signal stops it; resolves with the exit code. */
export async function serveRouter(
  config: ServeConfig,
  argv: readonly string[],
  env: NodeJS.ProcessEnv,
  https: { key: Buffer; cert: Buffer } | undefined,
  inputs: ServeInputs,
): Promise<number> {
  const logger = createLogger(config);
  const parts = createRouter(config, argv, env, {
    info: (o, msg) => logger.info(o, msg),
    error: (o, msg) => logger.error(o, msg),
  });
  const { router, control } = parts;
  try {
    await router.reload();
  } catch (err) {
    process.stderr.write(`error: ${message(err)}\n`);
    return 2;
  }
  const app = routerApp(config, inputs, parts, {
    loggerInstance: logger,
    logRequests: true,
    webui: config.webui,
    ...(https ? { https } : {}),
  });
  const stopped = stopOnSignal(
    app,
    config.shutdownGraceSeconds,
    () => router.close(config.shutdownGraceSeconds * 1000),
    () => logger.flush(),
  );
  try {
    await app.listen({ host: config.host, port: config.port });
  } catch (err) {
    process.stderr.write(`error: cannot listen on ${config.host}:${config.port}: ${message(err)}\n`);
    return 1;
  }
  const address = app.server.address();
  const port = typeof address === 'object' && address !== null ? address.port : config.port;
  app.log.info(`listening on ${https ? 'https' : 'http'}://${config.host}:${port} (router mode)`);
  const models = control.list();
  app.log.info(
    { models: models.map((m) => m.id), modelsMax: config.modelsMax, autoload: config.modelsAutoload },
    `router: ${models.length} model(s) from ${[config.modelsDir, config.modelsPreset]
      .filter((p) => p !== undefined)
      .map((p) => basename(p ?? ''))
      .join(', ')}`,
  );
  await router.start();
  return stopped;
}

/**
 * What decides which models fit together: --models-memory-budget (host memory: weights + KV cache) and --vram-budget
 * (each model planned as `npm run fit` plans it, its plan's VRAM counted). Both known before a model loads.
 */
function budgetsOf(config: ServeConfig, host: Pick<RouterHostOptions, 'argv' | 'env'>): MemoryBudget[] {
  const budgets: MemoryBudget[] = [];
  if (config.modelsMemoryBytes !== undefined)
    budgets.push({
      name: 'host memory',
      bytes: config.modelsMemoryBytes,
      footprint: async (entry) => footprintBytes(await prepareEntry(entry, host)),
    });
  if (config.vramBudgetBytes !== undefined)
    budgets.push({
      name: 'VRAM',
      bytes: config.vramBudgetBytes,
      footprint: async (entry) => (await prepareEntry(entry, host)).vramBytes ?? 0,
    });
  return budgets;
}
