import { readFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { listDevices, systemInfo } from '../engine/index.ts';
import { projectRoot } from '../paths.ts';
import { createProgress } from '../progress.ts';
import { DEMO_MODEL, ensureModel } from '../tools/model-cache.ts';
import { assembleServer } from './assemble.ts';
import { ConfigError, parseServeConfig, type ServeConfig, serveUsage } from './config/index.ts';
import {
  type LoadedEngine,
  loadEngine,
  type PreparedModel,
  prepareModel,
  SpeculativeConfigError,
} from './engine-loader.ts';
import { schedulerOptionsOf } from './engine-options.ts';
import { InputError, readServeInputs, type ServeInputs } from './inputs.ts';
import { createLogger } from './logger.ts';
import { serveRouter } from './router-serve.ts';
import { serverOptionsOf } from './server-options.ts';
import { stopOnSignal } from './shutdown.ts';
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
  if (given.modelsDir !== undefined || given.modelsPreset !== undefined) {
    // As llama-server: a model given means one model (a LLAMA_ARG_MODELS_* variable set for other servers is no error).
    if (given.model !== undefined)
      line('warning: --models-dir/--models-preset are ignored: -m serves one model (router mode is without -m)');
    else return routerMode(given, argv, env);
  }

  let prepared: PreparedModel;
  let https: { key: Buffer; cert: Buffer } | undefined;
  try {
    prepared = await prepareModel(given, await resolveModelPath(given));
    if (prepared.planText !== undefined) line(prepared.planText);
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
    sleeps: config.sleepIdleSeconds > 0,
    app: { loggerInstance: logger, logRequests: true, webui: config.webui, ...(https ? { https } : {}) },
  });
  const { app, engine: late } = server;

  let engine: LoadedEngine | undefined;
  const stopped = stopOnSignal(
    app,
    config.shutdownGraceSeconds,
    async () => {
      await late.scheduler?.close(config.shutdownGraceSeconds * 1000);
    },
    () => {
      late.scheduler = undefined;
      late.decoder = undefined;
      engine?.dispose();
      logger.flush();
    },
  );

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
    let draftProgress: ReturnType<typeof createProgress> | undefined;
    engine = await loadEngine(prepared, {
      onProgress: (stage, f) => {
        if (stage === 'model') return progress.update(f);
        if (draftProgress === undefined) {
          progress.done();
          draftProgress = createProgress(`loading the draft model ${basename(config.draftModel ?? '')}`);
        }
        draftProgress.update(f);
      },
    });
    (draftProgress ?? progress).done();
  } catch (err) {
    app.log.error(`cannot serve ${path}: ${message(err)}`);
    await app.close();
    logger.flush();
    return err instanceof SpeculativeConfigError ? 2 : 1;
  }
  const { model, chat, draft, embedder } = engine;
  // Binds a loaded engine to the routes: at start, and again each time a sleeping model wakes.
  const attachEngine = (e: LoadedEngine): void => {
    if (e.embedder !== undefined) return server.attachEmbedder({ model: e.model, embedder: e.embedder });
    const { chat, decoder } = e;
    if (chat === undefined || decoder === undefined) throw new Error('a generation model loads with a decoder');
    server.attach({
      model: e.model,
      chat,
      decoder,
      kvCellsUsed: () => (decoder.disposed ? 0 : decoder.info.kvCellsUsed),
      checkpointBytes: () => (decoder.disposed ? 0 : decoder.info.checkpointBytes),
    });
  };
  attachEngine(engine);
  if (config.sleepIdleSeconds > 0)
    server.enableSleep({
      idleMs: config.sleepIdleSeconds * 1000,
      sleep: async () => {
        const asleep = engine;
        engine = undefined;
        await late.scheduler?.close(0);
        late.scheduler = undefined;
        late.decoder = undefined;
        late.embedder = undefined;
        // late.model and late.chat stay: their facts (/props, the live view) are plain objects, and every route
        // that would use them natively wakes the model first.
        await asleep?.release();
      },
      wake: async () => {
        const woken = await loadEngine(prepared);
        engine = woken;
        attachEngine(woken);
      },
      changed: (state) =>
        app.log.info(
          { sleepIdleSeconds: config.sleepIdleSeconds },
          state === 'sleeping' ? 'idle: model unloaded (sleeping)' : 'model loaded again (awake)',
        ),
    });
  if (embedder !== undefined) {
    app.log.info(
      { pooling: embedder.info.pooling, dimensions: embedder.info.dimensions, maxInput: embedder.info.maxInputTokens },
      'embedding model loaded; serving POST /v1/embeddings',
    );
    app.markReady();
    return stopped;
  }
  if (chat === undefined) throw new Error('a generation model loads with a chat layer');
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

async function routerMode(config: ServeConfig, argv: readonly string[], env: NodeJS.ProcessEnv): Promise<number> {
  let inputs: ServeInputs;
  let https: { key: Buffer; cert: Buffer } | undefined;
  try {
    inputs = await readServeInputs(config);
    if (config.sslKeyFile !== undefined && config.sslCertFile !== undefined)
      https = { key: await readFile(config.sslKeyFile), cert: await readFile(config.sslCertFile) };
  } catch (err) {
    line(`error: ${message(err)}`);
    return err instanceof InputError ? 2 : 1;
  }
  return serveRouter(config, argv, env, https, inputs);
}
