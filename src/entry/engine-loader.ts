// Loading one model as the server serves it: the plan made before (its file read, a --vram-budget plan, the KV
// pool), then the model, its chat layer, a draft model and the decoder (or an embedding context). `npm start -m`
// loads one this way; the router (src/router/) loads each of its models this way too.
import { BatchDecoder, ChatTemplates, Embedder, listDevices, Model } from '../engine/index.ts';
import { ArgumentError } from '../errors.ts';
import { PLANNED_KV_TYPES, type PlannedKvType, readModelShape } from '../fit/memory-model.ts';
import { FitError, planForServer, type ServerRequest } from '../fit/planner.ts';
import { formatPlan } from '../fit/report.ts';
import { getArchitecture, getUint } from '../gguf/metadata.ts';
import { readGguf } from '../gguf/reader.ts';
import { type ServeConfig, slotContext } from './config/index.ts';
import { chatOptionsOf, decoderOptionsOf, type PoolLayout, poolLayout } from './engine-options.ts';
import { readServeInputs, type ServeInputs } from './inputs.ts';

const message = (err: unknown): string => (err instanceof Error ? err.message : String(err));

/** Applies a --vram-budget plan: settings the user gave are kept, the planner chooses the rest. */
async function planVram(
  config: ServeConfig,
  path: string,
): Promise<{ config: ServeConfig; ctxPerSlot: number; planText: string; vramBytes: number }> {
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
    planText: formatPlan(plan.plan),
    vramBytes: plan.plan.vramTotal,
  };
}

/** What is decided before a model loads: its settings (after a --vram-budget plan), its file, its KV pool. */
export interface PreparedModel {
  config: ServeConfig;
  path: string;
  pool: PoolLayout;
  inputs: ServeInputs;
  /** With --vram-budget: the plan, as `npm run fit` prints it. */
  planText?: string;
  /** With --vram-budget: the VRAM the plan uses (router mode's footprint of the model). */
  vramBytes?: number;
}

/** Everything decided before the model at `path` loads; a problem here (a bad file, a plan that fails) throws. */
export async function prepareModel(config: ServeConfig, path: string): Promise<PreparedModel> {
  const file = await readGguf(path, { stringArrays: 'skip' });
  // A bad draft file stops the start before anything loads, named by its flag.
  if (config.draftModel !== undefined)
    await readGguf(config.draftModel, { stringArrays: 'skip' }).catch((err: unknown) => {
      throw new Error(`-md/--spec-draft-model: ${message(err)}`);
    });
  const arch = getArchitecture(file.metadata) ?? '';
  const nCtxTrain = getUint(file.metadata, `${arch}.context_length`) ?? 0;
  const inputs = await readServeInputs(config);
  const planned =
    config.vramBudgetBytes !== undefined
      ? await planVram(config, path)
      : { config, ctxPerSlot: slotContext(config, nCtxTrain) };
  const pool = poolLayout(planned.config, planned.ctxPerSlot);
  return {
    config: planned.config,
    path,
    pool,
    inputs,
    ...('planText' in planned ? { planText: planned.planText, vramBytes: planned.vramBytes } : {}),
  };
}

/** The speculative flags asked for what llama.cpp refuses (a draft of another vocabulary, a bad lookup cache...). */
export class SpeculativeConfigError extends Error {}

/** The decoder; llama.cpp's refusal of the speculative settings is a configuration error naming the flags. */
async function newDecoder(
  model: Model,
  options: ReturnType<typeof decoderOptionsOf>,
  config: ServeConfig,
): Promise<BatchDecoder> {
  try {
    // Off the JS thread: allocating the KV cache would stall other models' streams (router mode) and /health.
    return await BatchDecoder.create(model, options);
  } catch (err) {
    if (!(err instanceof ArgumentError) || options.speculative === undefined) throw err;
    const draft = config.draftModel !== undefined ? ` -md ${config.draftModel}` : '';
    throw new SpeculativeConfigError(`--spec-type ${config.specTypes.join(',')}${draft}: ${err.message}`);
  }
}

/** A loaded model and what serves it; dispose() frees all of it, once (release(): the same, off the JS thread). */
export interface LoadedEngine {
  model: Model;
  /** Generation models: the chat layer and the decoder. */
  chat?: ChatTemplates;
  decoder?: BatchDecoder;
  draft?: Model;
  /** Embedding models (--embeddings): the embedding context. */
  embedder?: Embedder;
  dispose(): void;
  release(): Promise<void>;
}

export interface LoadProgress {
  /** Called with the stage being loaded and its fraction done (0..1). */
  onProgress?: (stage: 'model' | 'draft', fraction: number) => void;
}

/** Loads the prepared model; on failure, what was loaded is freed before the error is thrown. */
export async function loadEngine(prepared: PreparedModel, progress: LoadProgress = {}): Promise<LoadedEngine> {
  const { config, path, pool, inputs } = prepared;
  const parts: Partial<LoadedEngine> = {};
  const dispose = (): void => {
    parts.decoder?.dispose();
    parts.embedder?.dispose();
    parts.chat?.dispose();
    parts.draft?.dispose();
    parts.model?.dispose();
  };
  // The context first (it holds the model), then the models, each freed on the pool.
  const release = async (): Promise<void> => {
    parts.embedder?.dispose();
    parts.chat?.dispose();
    await parts.decoder?.release();
    await Promise.all([parts.draft?.release(), parts.model?.release()]);
  };
  try {
    const model = await Model.load(path, {
      gpuLayers: config.gpuLayers,
      useMmap: config.mmap,
      useMlock: config.mlock,
      onProgress: (f) => progress.onProgress?.('model', f),
    });
    parts.model = model;
    if (config.embeddings) {
      // An embedding model: one embedding context, no chat layer and no decoder.
      parts.embedder = new Embedder(model, {
        sequences: config.parallel,
        ctxPerInput: pool.ctxPerSlot,
        batchSize: Math.max(config.batchSize, pool.ctxPerSlot),
        threads: config.threads,
        ...(config.threadsBatch !== undefined ? { threadsBatch: config.threadsBatch } : {}),
        ...(config.pooling !== undefined ? { pooling: config.pooling } : {}),
      });
      return { ...parts, model, dispose, release };
    }
    const chat = new ChatTemplates(model, chatOptionsOf(config, inputs.chatTemplate));
    parts.chat = chat;
    // A default grammar that doesn't parse for this vocabulary would fail every request: refuse it now.
    if (inputs.grammar !== undefined) await chat.checkGrammar(inputs.grammar);
    // So would a default logit bias on a token this vocabulary does not have.
    const nVocab = model.info.nVocab;
    const outside = config.logitBias.find(([token]) => token >= nVocab);
    if (outside) throw new Error(`-l/--logit-bias: token ${outside[0]} is outside the vocabulary (0..${nVocab - 1})`);
    if (config.draftModel !== undefined) {
      parts.draft = await Model.load(config.draftModel, {
        gpuLayers: config.draftGpuLayers,
        useMmap: config.mmap,
        useMlock: config.mlock,
        onProgress: (f) => progress.onProgress?.('draft', f),
      });
    }
    parts.decoder = await newDecoder(model, decoderOptionsOf(config, pool, parts.draft), config);
    return { ...parts, model, chat, dispose, release };
  } catch (err) {
    dispose();
    throw err;
  }
}
