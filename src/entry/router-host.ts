// Router mode's model loader: one catalog entry becomes what serves its requests. Its flags are the preset's, then
// the command line's (which win, as in llama-server), parsed by the same flag table as `npm start -m`; it loads
// through the same engine loader, gets its own scheduler (stepping in turns with the other models' on the shared
// StepTurns), its own prompt cache, slot-file folder and metrics, and the HTTP layer's deps over all of it.
import { join } from 'node:path';
import { kvBytes, kvCells, PLANNED_KV_TYPES, type PlannedKvType, readModelShape } from '../fit/memory-model.ts';
import type { LiveState, ServerMetrics } from '../metrics/server-metrics.ts';
import type { CatalogEntry } from '../router/catalog.ts';
import type { HostedModel } from '../router/model-router.ts';
import { Scheduler, type StepTurns } from '../scheduler/index.ts';
import type { ServerDeps } from '../server/deps.ts';
import { resolveServerOptions } from '../server/options.ts';
import { ConfigError, parseServeConfig, type ServeConfig } from './config/index.ts';
import { loadEngine, type PreparedModel, prepareModel } from './engine-loader.ts';
import { schedulerOptionsOf } from './engine-options.ts';
import { LateEngine } from './late-engine.ts';
import { serverOptionsOf } from './server-options.ts';

export interface RouterHostOptions {
  /** The command line (its flags apply to every model, over the preset's). */
  argv: readonly string[];
  env: NodeJS.ProcessEnv;
  turns: StepTurns;
  buildInfo: string;
  /** The model's metrics, kept across its loads. */
  metricsFor(id: string): ServerMetrics;
}

/** The flags one model loads with: its file, its draft, the preset's flags, then the command line's. */
export function modelArgv(entry: CatalogEntry, argv: readonly string[]): string[] {
  return [
    ...(entry.path !== undefined ? ['-m', entry.path] : []),
    ...(entry.draft !== undefined ? ['--spec-draft-model', entry.draft] : []),
    ...entry.argv,
    ...argv,
  ];
}

/** A file name for the model's own slot-file folder (ids may hold `/` and `:`). */
export function folderName(id: string): string {
  return id.replace(/[^A-Za-z0-9._-]/g, '_');
}

/** Parses and plans one model's settings; a flag the model cannot take is its load error. */
export async function prepareEntry(
  entry: CatalogEntry,
  o: Pick<RouterHostOptions, 'argv' | 'env'>,
): Promise<PreparedModel> {
  if (entry.problem !== undefined) throw new Error(entry.problem);
  if (entry.path === undefined) throw new Error('no model file: give `model = /path/file.gguf` in the preset');
  let config: ServeConfig;
  try {
    config = parseServeConfig(modelArgv(entry, o.argv), o.env);
  } catch (err) {
    if (err instanceof ConfigError) throw new Error(`its flags: ${err.message}`);
    throw err;
  }
  // Its id is the name it answers to (responses' `model`, /props' model_alias).
  config.aliases = [entry.id];
  if (config.slotSavePath !== undefined) config.slotSavePath = join(config.slotSavePath, folderName(entry.id));
  return prepareModel(config, entry.path);
}

/** Host memory the model takes when loaded: its weights and its KV cache (for --models-memory-budget). */
export async function footprintBytes(prepared: PreparedModel): Promise<number> {
  const shape = await readModelShape(prepared.path);
  const { config, pool } = prepared;
  const cells = kvCells(
    {
      slots: config.parallel,
      ctxPerSlot: pool.share,
      ubatch: config.ubatchSize,
      batch: config.batchSize,
      unified: config.kvUnified !== false,
      swaFull: config.swaFull,
    },
    shape.nSwa,
  );
  const planned = (type: string): PlannedKvType =>
    PLANNED_KV_TYPES.includes(type as PlannedKvType) ? (type as PlannedKvType) : 'f16';
  return shape.totalBytes + kvBytes(shape, cells, planned(config.kvTypeK), shape.layers, planned(config.kvTypeV)).bytes;
}

/** Loads the entry's model and builds what serves it. */
export async function openModel(
  entry: CatalogEntry,
  o: RouterHostOptions,
): Promise<HostedModel<ServerDeps> & { live: LiveState; scheduler?: Scheduler }> {
  const prepared = await prepareEntry(entry, o);
  const engine = await loadEngine(prepared);
  const { config, pool, inputs, path } = prepared;
  const metrics = o.metricsFor(entry.id);
  const late = new LateEngine(path);
  late.model = engine.model;
  if (engine.chat !== undefined) late.chat = engine.chat;
  if (engine.embedder !== undefined) late.embedder = engine.embedder;
  const decoder = engine.decoder;
  let scheduler: Scheduler | undefined;
  if (decoder !== undefined) {
    scheduler = new Scheduler(decoder, { ...schedulerOptionsOf(config), turns: o.turns }, metrics);
    late.decoder = decoder;
    late.scheduler = scheduler;
  }
  const options = serverOptionsOf(config, inputs, { ctxPerSlot: pool.ctxPerSlot, buildInfo: o.buildInfo });
  const deps: ServerDeps = {
    model: late.servedModel,
    chat: late.servedChat,
    scheduler: late.servedScheduler,
    config: resolveServerOptions(options, late.servedModel),
    metrics,
    ...(engine.embedder !== undefined ? { embedder: late.servedEmbedder } : {}),
  };
  const info = engine.model.info;
  return {
    deps,
    meta: {
      n_ctx: pool.ctxPerSlot,
      n_ctx_train: info.nCtxTrain,
      n_params: info.nParams,
      size: info.sizeBytes,
      n_vocab: info.nVocab,
      n_slots: config.parallel,
    },
    ...(scheduler !== undefined ? { scheduler } : {}),
    live: {
      busySlots: () => scheduler?.busySlots ?? 0,
      queueLength: () => scheduler?.queueLength ?? 0,
      kvCellsUsed: () => (decoder !== undefined && !decoder.disposed ? decoder.info.kvCellsUsed : 0),
      kvCellsRunning: () => scheduler?.runningKvTokens ?? 0,
      kvCellsTotal: () => pool.kvCells,
      promptCache: () => scheduler?.promptCacheStats() ?? { bytes: 0, entries: 0 },
      checkpointBytes: () => (decoder !== undefined && !decoder.disposed ? decoder.info.checkpointBytes : 0),
    },
    async close(graceMs) {
      await scheduler?.close(graceMs);
      late.scheduler = undefined;
      late.decoder = undefined;
      await engine.release();
    },
  };
}
