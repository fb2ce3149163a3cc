// `npm start`: parse flags, listen at once (/health answers 503 while the model loads), load the model,
// start the decoder and the scheduler, mark ready; on SIGTERM/SIGINT stop accepting, let in-flight
// requests finish within the grace period, cancel the rest, free the model and exit 0.
import { createHash } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import { basename } from 'node:path';
import { ConfigError, parseServeConfig, type ServeConfig, serveUsage, slotContext } from './config.ts';
import { BatchDecoder, ChatTemplates, listDevices, Model, systemInfo } from './engine/index.ts';
import { LlamaError } from './errors.ts';
import { FitError, planForServer, type ServerRequest } from './fit/planner.ts';
import { getArchitecture, getUint } from './gguf/metadata.ts';
import { ensureModel } from './gguf/model-cache.ts';
import { readGguf } from './gguf/reader.ts';
import { LiveStats } from './metrics/live-stats.ts';
import { ServerMetrics } from './metrics/server-metrics.ts';
import { createProgress } from './progress.ts';
import { Scheduler } from './scheduler/index.ts';
import type { GenerationHandlers, GenerationRequest, RequestHandle } from './scheduler/types.ts';
import { buildApp } from './server/app.ts';
import type { ChatLayer } from './server/chat/layer.ts';
import { parseObjectivePriorities } from './server/client-key.ts';
import type { ServedModel, ServedScheduler } from './server/config.ts';
import { StatsSource } from './server/stats-source.ts';

/** The demo model served when no -m is given: small, generated once and cached. */
export const DEMO_MODEL = { preset: 'tiny', quant: 'Q4_K_M', seed: 1 } as const;

/**
 * The app is built before the model exists so that it can answer /health (503) during the load; these
 * stand in for the model and the scheduler until bind(). The generation routes refuse to run before
 * the app is marked ready, so nothing reaches them early.
 */
class LateEngine {
  model: Model | undefined;
  chat: ChatTemplates | undefined;
  decoder: BatchDecoder | undefined;
  scheduler: Scheduler | undefined;
  readonly servedModel: ServedModel;
  readonly servedChat: ChatLayer;
  readonly servedScheduler: ServedScheduler;

  constructor(readonly path: string) {
    const engine = this;
    this.servedModel = {
      get info() {
        return engine.model?.info ?? { path, name: '', nParams: 0, sizeBytes: 0, nCtxTrain: 0, nVocab: 0, bos: -1 };
      },
      tokenize: (text, options) => this.#model().tokenize(text, options),
    };
    this.servedChat = {
      apply: (request) => this.#chat().apply(request),
      parser: (config) => this.#chat().parser(config),
      grammarFromSchema: (schema) => this.#chat().grammarFromSchema(schema),
      checkGrammar: (grammar) => this.#chat().checkGrammar(grammar),
      get supportsTools() {
        return engine.chat?.supportsTools ?? false;
      },
    };
    this.servedScheduler = {
      submit: (request: GenerationRequest, handlers: GenerationHandlers): RequestHandle =>
        this.#scheduler().submit(request, handlers),
      snapshot: () => this.scheduler?.snapshot() ?? [],
    };
  }

  #model(): Model {
    if (!this.model) throw new LlamaError('BUSY', 'the model is still loading');
    return this.model;
  }

  #chat(): ChatTemplates {
    if (!this.chat) throw new LlamaError('BUSY', 'the model is still loading');
    return this.chat;
  }

  #scheduler(): Scheduler {
    if (!this.scheduler) throw new LlamaError('BUSY', 'the model is still loading');
    return this.scheduler;
  }
}

/** Which chat template the server renders with, in words. */
function templateName(info: ChatTemplates['info'], config: ServeConfig): string {
  const engine = info.jinja ? 'Jinja' : 'legacy renderer';
  if (config.chatTemplateFile !== undefined) return `${config.chatTemplateFile} (${engine})`;
  if (config.chatTemplate !== undefined)
    return `${config.chatTemplate.length > 40 ? 'from --chat-template' : config.chatTemplate} (${engine})`;
  return info.fromModel ? `the model's (${engine})` : `chatml: the model has none (${engine})`;
}

function line(message: string): void {
  process.stderr.write(`${message}\n`);
}

async function resolveModelPath(config: ServeConfig): Promise<string> {
  if (config.model !== undefined) return config.model;
  line('no --model given: serving a small generated demo model.');
  line('  Its weights are random, so its replies are meaningless text; it exists to try the API.');
  line('  Serve a real model with: npm start -- -m /path/to/model.gguf  (e.g. gemma-3-1b-it-Q4_K_M.gguf)');
  const progress = createProgress('generating the demo model (first start only)');
  const path = await ensureModel({ ...DEMO_MODEL, onProgress: (f, detail) => progress.update(f, detail) });
  progress.done(path);
  return path;
}

/** Applies a --vram-budget plan: settings the user gave are kept, the planner chooses the rest. */
async function planVram(config: ServeConfig, path: string): Promise<{ config: ServeConfig; ctxPerSlot: number }> {
  const given = config.explicit;
  const request: ServerRequest = { batch: config.batchSize };
  if (given.has('parallel')) request.slots = config.parallel;
  if (given.has('ctxSize') && config.ctxSize !== undefined)
    request.ctxPerSlot = Math.floor(config.ctxSize / config.parallel);
  if (given.has('kvType')) request.kvType = config.kvType;
  if (given.has('ubatchSize')) request.ubatch = config.ubatchSize;
  if (given.has('gpuLayers')) request.gpuLayers = config.gpuLayers;
  if (given.has('flashAttn')) request.flashAttn = config.flashAttn !== 'off';
  const gpu = listDevices().find((d) => d.type !== 'cpu');
  if (gpu?.computeCapability !== undefined) request.computeCapability = gpu.computeCapability;
  let plan;
  try {
    plan = await planForServer(path, config.vramBudgetBytes ?? 0, request);
  } catch (err) {
    if (err instanceof FitError) throw new Error(`--vram-budget: ${err.message}`);
    throw err;
  }
  line(plan.table);
  return {
    config: {
      ...config,
      gpuLayers: plan.gpuLayers,
      parallel: plan.slots,
      ubatchSize: plan.ubatch,
      kvType: plan.kvType,
      flashAttn: plan.flashAttn,
    },
    ctxPerSlot: plan.ctxPerSlot,
  };
}

export async function serve(argv: readonly string[], env: NodeJS.ProcessEnv = process.env): Promise<number> {
  let config: ServeConfig;
  try {
    config = parseServeConfig(argv, env);
  } catch (err) {
    if (err instanceof ConfigError) {
      line(`error: ${err.message}\nRun with --help to see the options.`);
      return 2;
    }
    throw err;
  }
  if (config.help) {
    process.stdout.write(serveUsage());
    return 0;
  }

  let path: string;
  let nCtxTrain: number;
  let fileSize: number;
  try {
    path = await resolveModelPath(config);
    const file = await readGguf(path);
    const arch = getArchitecture(file.metadata) ?? '';
    nCtxTrain = getUint(file.metadata, `${arch}.context_length`) ?? 0;
    fileSize = (await stat(path)).size;
  } catch (err) {
    line(`error: ${err instanceof Error ? err.message : String(err)}`);
    return 1;
  }
  let chatTemplate = config.chatTemplate;
  if (config.chatTemplateFile !== undefined) {
    try {
      chatTemplate = await readFile(config.chatTemplateFile, 'utf8');
    } catch (err) {
      line(`error: cannot read --chat-template-file ${config.chatTemplateFile}: ${(err as Error).message}`);
      return 1;
    }
  }
  let ctxPerSlot = slotContext(config, nCtxTrain);
  if (config.vramBudgetBytes !== undefined) {
    try {
      const planned = await planVram(config, path);
      config = planned.config;
      ctxPerSlot = planned.ctxPerSlot;
    } catch (err) {
      line(`error: ${err instanceof Error ? err.message : String(err)}`);
      return 1;
    }
  }
  const late = new LateEngine(path);
  const live = new LiveStats();
  const metrics = new ServerMetrics(
    {
      busySlots: () => late.scheduler?.busySlots ?? 0,
      queueLength: () => late.scheduler?.queueLength ?? 0,
      kvCellsUsed: () => late.decoder?.info.kvCellsUsed ?? 0,
      kvCellsRunning: () => late.scheduler?.runningKvTokens ?? 0,
      kvCellsTotal: () => ctxPerSlot * config.parallel,
    },
    { listener: live },
  );
  const app = buildApp(
    {
      model: late.servedModel,
      chat: late.servedChat,
      scheduler: late.servedScheduler,
      config: {
        modelId: config.alias ?? basename(path),
        apiKeys: config.apiKeys,
        objectivePriorities: parseObjectivePriorities(config.objectivePriorities),
        trustedProxies: config.trustProxy,
        bodyLimitBytes: config.bodyLimitBytes,
        ctxPerSlot,
        slots: config.parallel,
        requestTimeoutMs: config.timeoutSeconds * 1000,
        systemFingerprint: `fp_${createHash('sha256')
          .update(`${basename(path)}|${fileSize}|${ctxPerSlot}`)
          .digest('hex')
          .slice(0, 10)}`,
      },
      metrics,
      stats: new StatsSource({
        modelId: config.alias ?? basename(path),
        slots: config.parallel,
        ctxPerSlot,
        live,
        scheduler: () => late.scheduler,
        model: () => late.model?.info,
        kv: () => ({ cellsUsed: late.decoder?.info.kvCellsUsed ?? 0, cellsTotal: ctxPerSlot * config.parallel }),
        devices: listDevices,
      }),
    },
    { logger: { level: config.logLevel }, webui: config.webui },
  );

  let stopping: Promise<number> | undefined;
  let resolveStopped: (code: number) => void = () => {};
  const stopped = new Promise<number>((resolve) => {
    resolveStopped = resolve;
  });
  const shutdown = (signal: string): Promise<number> => {
    if (stopping) return stopping;
    app.log.info(
      { signal, graceSeconds: config.shutdownGraceSeconds },
      'shutting down: no new requests; finishing in-flight ones',
    );
    stopping = (async () => {
      // Together: Fastify stops accepting (and answers 503 on open keep-alive connections) while the
      // scheduler lets in-flight requests finish within the grace period, then cancels the rest.
      // Keep-alive connections whose response finished after close() began would otherwise linger until
      // their keep-alive timeout (72 s): close each as soon as it is idle.
      const sweep = setInterval(() => app.server.closeIdleConnections(), 100);
      // Past the grace period nothing may hold the exit: a connection still open then (a client that
      // stopped reading, a half-closed socket) is closed.
      const force = setTimeout(() => app.server.closeAllConnections(), config.shutdownGraceSeconds * 1000 + 1000);
      try {
        await Promise.all([app.close(), late.scheduler?.close(config.shutdownGraceSeconds * 1000)]);
      } finally {
        clearInterval(sweep);
        clearTimeout(force);
      }
      late.scheduler = undefined;
      late.decoder = undefined;
      decoder?.dispose();
      chat?.dispose();
      model?.dispose();
      app.log.info('stopped');
      return 0;
    })();
    void stopping.then(resolveStopped);
    return stopping;
  };
  let model: Model | undefined;
  let chat: ChatTemplates | undefined;
  let decoder: BatchDecoder | undefined;
  const onSignal = (signal: NodeJS.Signals) => void shutdown(signal);
  process.once('SIGTERM', onSignal);
  process.once('SIGINT', onSignal);

  try {
    await app.listen({ host: config.host, port: config.port });
  } catch (err) {
    line(`error: cannot listen on ${config.host}:${config.port}: ${(err as Error).message}`);
    return 1;
  }
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : config.port;
  app.log.info(`listening on http://${config.host}:${port} (loading ${path})`);

  try {
    const progress = createProgress(`loading ${basename(path)}`);
    model = await Model.load(path, {
      gpuLayers: config.gpuLayers,
      useMmap: config.mmap,
      useMlock: config.mlock,
      onProgress: (f) => progress.update(f),
    });
    progress.done();
    chat = new ChatTemplates(model, {
      ...(chatTemplate !== undefined ? { template: chatTemplate } : {}),
      jinja: config.jinja,
      reasoningFormat: config.reasoningFormat,
      thinking: config.reasoning,
      ...(config.chatTemplateKwargs !== undefined ? { defaultKwargs: JSON.parse(config.chatTemplateKwargs) } : {}),
    });
    decoder = new BatchDecoder(model, {
      slots: config.parallel,
      ctxPerSlot,
      batchSize: config.batchSize,
      ubatchSize: config.ubatchSize,
      threads: config.threads,
      flashAttn: config.flashAttn,
      kvType: config.kvType,
    });
  } catch (err) {
    app.log.error(`cannot serve ${path}: ${err instanceof Error ? err.message : String(err)}`);
    await app.close();
    chat?.dispose();
    model?.dispose();
    return 1;
  }
  late.model = model;
  late.chat = chat;
  late.decoder = decoder;
  late.scheduler = new Scheduler(
    decoder,
    {
      maxQueuedRequests: config.maxQueue,
      ...(config.maxQueueTokens ? { maxQueuedTokens: config.maxQueueTokens } : {}),
    },
    metrics,
  );
  const sys = systemInfo();
  const info = model.info;
  const gpus = listDevices().filter((d) => d.type !== 'cpu');
  const mib = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(0)} MiB`;
  app.log.info(
    {
      model: info.description,
      params: `${(info.nParams / 1e6).toFixed(2)} M`,
      weights: `${(info.sizeBytes / 1024 / 1024).toFixed(2)} MiB`,
      backend: gpus.length > 0 ? `${gpus[0]?.name} (GPU)` : 'CPU',
      devices: gpus.map((d) => ({
        name: d.description,
        computeCapability: d.computeCapability ?? 'unknown',
        vramTotal: mib(d.memoryTotalBytes),
        vramFree: mib(d.memoryFreeBytes),
      })),
      layersOffloaded: info.offloadedLayers >= 0 ? `${info.offloadedLayers}/${info.offloadableLayers}` : 'none (CPU)',
      cpu: sys.llamaSystemInfo.trim(),
      threads: config.threads,
      slots: config.parallel,
      ctxPerSlot,
      batch: `${config.batchSize}/${config.ubatchSize}`,
      chatTemplate: templateName(chat.info, config),
      chatFormat: chat.info.exampleFormat,
      toolCallFormat: chat.info.toolsFormat,
      rssMiB: Math.round(process.memoryUsage().rss / 1024 / 1024),
    },
    'model loaded; serving',
  );
  app.markReady();
  if (config.webui) app.log.info(`web page (chat and live view): http://${config.host}:${port}/`);
  // Until a signal shuts it down, the listening socket keeps the process alive.
  return stopped;
}
