import { readFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { BatchDecoder, ChatTemplates, Embedder, listDevices, Model, systemInfo } from '../engine/index.ts';
import { ArgumentError } from '../errors.ts';
import { PLANNED_KV_TYPES, type PlannedKvType, readModelShape } from '../fit/memory-model.ts';
import { FitError, planForServer, type ServerRequest } from '../fit/planner.ts';
import { formatPlan } from '../fit/report.ts';
import { getArchitecture, getUint } from '../gguf/metadata.ts';
import { readGguf } from '../gguf/reader.ts';
import { projectRoot } from '../paths.ts';
import { createProgress } from '../progress.ts';
import { DEMO_MODEL, ensureModel } from '../tools/model-cache.ts';
import { assembleServer } from './assemble.ts';
import { ConfigError, parseServeConfig, type ServeConfig, serveUsage, slotContext } from './config/index.ts';
import { chatOptionsOf, decoderOptionsOf, type PoolLayout, poolLayout, schedulerOptionsOf } from './engine-options.ts';
import { InputError, readServeInputs, type ServeInputs } from './inputs.ts';
import { createLogger } from './logger.ts';
import { serverOptionsOf } from './server-options.ts';
import { devicesText, startupSummary, versionText } from './summary.ts';

function line(message: string): void {
  process.stderr.write(`${message}\n`);
}

const message = (err: unknown): string => (err instanceof Error ? err.message : String(err));

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
  if (given.has('kvTypeK')) {
    if (!PLANNED_KV_TYPES.includes(config.kvTypeK as PlannedKvType))
      throw new Error(
        `--vram-budget plans the KV cache as ${PLANNED_KV_TYPES.join(' or ')}; -ctk ${config.kvTypeK} is not one`,
      );
    request.kvType = config.kvTypeK as PlannedKvType;
  }
  if (given.has('ubatchSize')) request.ubatch = config.ubatchSize;
  if (given.has('gpuLayers')) request.gpuLayers = config.gpuLayers;
  if (given.has('flashAttn')) request.flashAttn = config.flashAttn !== 'off';
  request.unified = config.kvUnified !== false;
  if (config.specTypes.includes('draft-simple') && config.draftModel !== undefined) {
    for (const [flag, type] of [
      ['-ctkd', config.draftKvTypeK],
      ['-ctvd', config.draftKvTypeV],
    ] as const)
      if (!PLANNED_KV_TYPES.includes(type as PlannedKvType))
        throw new Error(
          `--vram-budget plans the draft KV cache as ${PLANNED_KV_TYPES.join(' or ')}; ${flag} ${type} is not one`,
        );
    request.draft = {
      model: await readModelShape(config.draftModel),
      gpuLayers: config.draftGpuLayers,
      kvTypeK: config.draftKvTypeK as PlannedKvType,
      kvTypeV: config.draftKvTypeV as PlannedKvType,
    };
  }
  const gpu = listDevices().find((d) => d.type !== 'cpu');
  if (gpu?.computeCapability !== undefined) request.computeCapability = gpu.computeCapability;
  let plan;
  try {
    plan = await planForServer(path, config.vramBudgetBytes ?? 0, request);
  } catch (err) {
    if (err instanceof FitError) throw new Error(`--vram-budget: ${err.message}`);
    throw err;
  }
  line(formatPlan(plan.plan));
  const kvType = plan.kvType as ServeConfig['kvTypeK'];
  return {
    config: {
      ...config,
      gpuLayers: plan.gpuLayers,
      parallel: plan.slots,
      ubatchSize: plan.ubatch,
      kvTypeK: kvType,
      kvTypeV: given.has('kvTypeV') ? config.kvTypeV : kvType,
      flashAttn: plan.flashAttn,
    },
    ctxPerSlot: plan.ctxPerSlot,
  };
}

/** Everything decided before the model loads; a problem here ends the start with exit code 1. */
async function prepare(config: ServeConfig): Promise<{
  config: ServeConfig;
  path: string;
  pool: PoolLayout;
  inputs: ServeInputs;
}> {
  const path = await resolveModelPath(config);
  const file = await readGguf(path);
  // A bad draft file stops the start before anything loads, named by its flag.
  if (config.draftModel !== undefined)
    await readGguf(config.draftModel).catch((err: unknown) => {
      throw new Error(`-md/--spec-draft-model: ${message(err)}`);
    });
  const arch = getArchitecture(file.metadata) ?? '';
  const nCtxTrain = getUint(file.metadata, `${arch}.context_length`) ?? 0;
  const inputs = await readServeInputs(config);
  const planned =
    config.vramBudgetBytes !== undefined
      ? await planVram(config, path)
      : { config, ctxPerSlot: slotContext(config, nCtxTrain) };
  return { config: planned.config, path, pool: poolLayout(planned.config, planned.ctxPerSlot), inputs };
}

/** The speculative flags asked for what llama.cpp refuses (a draft of another vocabulary, a bad lookup cache...). */
class SpeculativeConfigError extends Error {}

/** The decoder; llama.cpp's refusal of the speculative settings is a configuration error naming the flags. */
function newDecoder(model: Model, options: ReturnType<typeof decoderOptionsOf>, config: ServeConfig): BatchDecoder {
  try {
    return new BatchDecoder(model, options);
  } catch (err) {
    if (!(err instanceof ArgumentError) || options.speculative === undefined) throw err;
    const draft = config.draftModel !== undefined ? ` -md ${config.draftModel}` : '';
    throw new SpeculativeConfigError(`--spec-type ${config.specTypes.join(',')}${draft}: ${err.message}`);
  }
}

async function packageVersion(): Promise<string> {
  const pkg = JSON.parse(await readFile(join(projectRoot, 'package.json'), 'utf8')) as { version: string };
  return pkg.version;
}

export async function serve(argv: readonly string[], env: NodeJS.ProcessEnv = process.env): Promise<number> {
  let given: ServeConfig;
  try {
    given = parseServeConfig(argv, env);
  } catch (err) {
    if (err instanceof ConfigError) {
      line(`error: ${err.message}\nRun with --help to see the options.`);
      return 2;
    }
    throw err;
  }
  if (given.help) {
    process.stdout.write(serveUsage());
    return 0;
  }
  if (given.version) {
    const sys = systemInfo();
    process.stdout.write(versionText(await packageVersion(), sys.buildInfo, sys.llamaSystemInfo));
    return 0;
  }
  if (given.listDevices) {
    process.stdout.write(devicesText(listDevices()));
    return 0;
  }
  for (const warning of given.warnings) line(`warning: ${warning}`);

  let prepared: Awaited<ReturnType<typeof prepare>>;
  let https: { key: Buffer; cert: Buffer } | undefined;
  try {
    prepared = await prepare(given);
    if (given.sslKeyFile !== undefined && given.sslCertFile !== undefined)
      https = { key: await readFile(given.sslKeyFile), cert: await readFile(given.sslCertFile) };
  } catch (err) {
    line(`error: ${message(err)}`);
    return err instanceof InputError ? 2 : 1;
  }
  const { config, path, pool, inputs } = prepared;
  const { ctxPerSlot } = pool;
  const sys = systemInfo();
  const serverOptions = serverOptionsOf(config, inputs, {
    ctxPerSlot,
    buildInfo: sys.buildInfo,
  });
  const logger = createLogger(config);
  const server = assembleServer({
    path,
    config: serverOptions,
    kvCellsTotal: pool.kvCells,
    devices: listDevices,
    scheduler: schedulerOptionsOf(config),
    ...(config.stepTrace !== undefined ? { stepTrace: config.stepTrace } : {}),
    app: { loggerInstance: logger, logRequests: true, webui: config.webui, ...(https ? { https } : {}) },
  });
  const { app, engine: late } = server;

  let model: Model | undefined;
  let draft: Model | undefined;
  let chat: ChatTemplates | undefined;
  let decoder: BatchDecoder | undefined;
  let embedder: Embedder | undefined;
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
      // their keep-alive timeout (--keep-alive-timeout): close each as soon as it is idle.
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
      embedder?.dispose();
      chat?.dispose();
      draft?.dispose();
      model?.dispose();
      app.log.info('stopped');
      logger.flush();
      return 0;
    })();
    void stopping.then(resolveStopped);
    return stopping;
  };
  const onSignal = (signal: NodeJS.Signals) => void shutdown(signal);
  process.once('SIGTERM', onSignal);
  process.once('SIGINT', onSignal);

  try {
    await app.listen({ host: config.host, port: config.port });
  } catch (err) {
    line(`error: cannot listen on ${config.host}:${config.port}: ${message(err)}`);
    return 1;
  }
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : config.port;
  const origin = `${https ? 'https' : 'http'}://${config.host}:${port}`;
  app.log.info(`listening on ${origin} (loading ${path})`);

  try {
    const progress = createProgress(`loading ${basename(path)}`);
    model = await Model.load(path, {
      gpuLayers: config.gpuLayers,
      useMmap: config.mmap,
      useMlock: config.mlock,
      onProgress: (f) => progress.update(f),
    });
    progress.done();
    if (config.embeddings) {
      // An embedding model: one embedding context, no chat layer and no decoder.
      embedder = new Embedder(model, {
        sequences: config.parallel,
        ctxPerInput: ctxPerSlot,
        batchSize: Math.max(config.batchSize, ctxPerSlot),
        threads: config.threads,
        ...(config.threadsBatch !== undefined ? { threadsBatch: config.threadsBatch } : {}),
        ...(config.pooling !== undefined ? { pooling: config.pooling } : {}),
      });
      server.attachEmbedder({ model, embedder });
      app.log.info(
        {
          pooling: embedder.info.pooling,
          dimensions: embedder.info.dimensions,
          maxInput: embedder.info.maxInputTokens,
        },
        'embedding model loaded; serving POST /v1/embeddings',
      );
      app.markReady();
      return stopped;
    }
    chat = new ChatTemplates(model, chatOptionsOf(config, inputs.chatTemplate));
    // A default grammar that doesn't parse for this vocabulary would fail every request: refuse it now.
    if (inputs.grammar !== undefined) await chat.checkGrammar(inputs.grammar);
    // So would a default logit bias on a token this vocabulary does not have.
    const nVocab = model.info.nVocab;
    const outside = config.logitBias.find(([token]) => token >= nVocab);
    if (outside) throw new Error(`-l/--logit-bias: token ${outside[0]} is outside the vocabulary (0..${nVocab - 1})`);
    if (config.draftModel !== undefined) {
      const draftProgress = createProgress(`loading the draft model ${basename(config.draftModel)}`);
      draft = await Model.load(config.draftModel, {
        gpuLayers: config.draftGpuLayers,
        useMmap: config.mmap,
        useMlock: config.mlock,
        onProgress: (f) => draftProgress.update(f),
      });
      draftProgress.done();
    }
    decoder = newDecoder(model, decoderOptionsOf(config, pool, draft), config);
  } catch (err) {
    app.log.error(`cannot serve ${path}: ${message(err)}`);
    await app.close();
    chat?.dispose();
    draft?.dispose();
    model?.dispose();
    logger.flush();
    return err instanceof SpeculativeConfigError ? 2 : 1;
  }
  const loaded = decoder;
  server.attach({
    model,
    chat,
    decoder,
    kvCellsUsed: () => loaded.info.kvCellsUsed,
    checkpointBytes: () => loaded.info.checkpointBytes,
  });
  app.log.info(
    {
      summary: startupSummary(config, {
        info: model.info,
        devices: listDevices(),
        llamaSystemInfo: sys.llamaSystemInfo,
        ctxPerSlot,
        chat: chat.info,
        ...(draft !== undefined ? { draft: draft.info } : {}),
      }),
    },
    'model loaded; serving',
  );
  app.markReady();
  if (config.webui) app.log.info(`web page (chat and live view): ${origin}/`);
  // Until a signal shuts it down, the listening socket keeps the process alive.
  return stopped;
}
