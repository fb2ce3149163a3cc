// The only module that loads the .node file. Declares the addon's shape and converts its errors
// (plain Errors with a `code`) into the typed errors of src/errors.ts, keeping the caller's stack.

import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { errorFor, LlamaError } from '../errors.ts';
import { projectRoot } from '../paths.ts';
import type { Grammar, ResumePoints, SamplingOptions, StartOptions } from '../scheduler/decoder.ts';
import type { ChatDelta } from '../server/chat/layer.ts';

export interface NativeModelInfo {
  architecture: string;
  name: string;
  description: string;
  fileType: string;
  nParams: number;
  sizeBytes: number;
  nCtxTrain: number;
  nEmbd: number;
  nLayer: number;
  nHead: number;
  nHeadKv: number;
  nSwa: number;
  nVocab: number;
  vocabType: string;
  bos: number;
  eos: number;
  eot: number;
  eogTokens: Int32Array;
  addBos: boolean;
  chatTemplate: string | null;
  metadata: Record<string, string>;
  /** Layers llama.cpp put on a GPU, from its load report; -1 when it reported none. */
  offloadedLayers: number;
  offloadableLayers: number;
}

export interface NativeLoadOptions {
  nGpuLayers?: number;
  useMmap?: boolean;
  useMlock?: boolean;
}

export interface NativeModel {
  load(path: string, options: NativeLoadOptions, onProgress?: (fraction: number) => void): Promise<void>;
  abortLoad(): void;
  dispose(): void;
  /** dispose(), with the weights freed off the JS thread. */
  release(): Promise<void>;
  readonly disposed: boolean;
  readonly loaded: boolean;
  info(): NativeModelInfo;
  // An argument left out takes the addon's default (native/binding/AddonModel.cpp).
  tokenize(text: string, addSpecial?: boolean, parseSpecial?: boolean): Int32Array;
  detokenize(tokens: Int32Array | readonly number[], removeSpecial?: boolean, unparseSpecial?: boolean): string;
  tokenToPiece(token: number, special?: boolean): Buffer;
  applyChatTemplate(
    messages: readonly { role: string; content: string }[],
    addAssistant?: boolean,
    template?: string,
  ): string;
  referenceGreedy(
    tokens: Int32Array | readonly number[],
    options: { nPredict?: number; nCtx?: number; nThreads?: number; nBatch?: number },
  ): Promise<Int32Array>;
}

export interface NativeDecoderOptions {
  nSlots?: number;
  nCtxPerSlot?: number;
  nCtxSlotMax?: number;
  kvUnified?: boolean;
  nBatch?: number;
  nUbatch?: number;
  nThreads?: number;
  nThreadsBatch?: number;
  flashAttn?: -1 | 0 | 1;
  kvType?: string;
  kvTypeV?: string;
  offloadKv?: boolean;
  swaFull?: boolean;
  ctxCheckpoints?: number;
  checkpointMinStep?: number;
}

/** n-gram lookup sizes of one n-gram speculative type (llama.cpp common_params_speculative_ngram_map). */
export interface NativeNgramOptions {
  sizeN?: number;
  sizeM?: number;
  minHits?: number;
}

/** Speculative decoding as the addon takes it (native/core/speculation.h SpeculativeOptions documents each field). */
export interface NativeSpeculativeOptions {
  types: string[];
  draftModel?: NativeModel;
  draftKvType?: string;
  draftKvTypeV?: string;
  nMax?: number;
  nMin?: number;
  pMin?: number;
  pSplit?: number;
  ngramSimple?: NativeNgramOptions;
  ngramMapK?: NativeNgramOptions;
  ngramMapK4v?: NativeNgramOptions;
  ngramModMatch?: number;
  ngramModMin?: number;
  ngramModMax?: number;
  lookupCacheStatic?: string;
  lookupCacheDynamic?: string;
  synthLen?: number;
  synthRates?: number[];
}

/** A grammar constraint (native/core/slot_sampler.h GrammarSpec): the Decoder contract's Grammar, as it is. */
export type NativeGrammar = Grammar;

/**
 * Sampling as the addon takes it (native/core/slot_sampler.h SamplingParams documents each field): the Decoder
 * contract's options, with logit biases as [token, bias] pairs and the grammar as the chat layer made it.
 */
export interface NativeSamplingParams extends Omit<SamplingOptions, 'logitBias' | 'grammar'> {
  logitBias?: [number, number][];
  grammar?: NativeGrammar;
}

/**
 * A start as the addon takes it: the Decoder contract's StartOptions (their docs there) with its sampling, in native
 * form, beside them in one flat object.
 */
export type NativeStartParams = NativeSamplingParams & Partial<Omit<StartOptions, 'sampling'>>;

export interface NativeSlotEvent {
  slot: number;
  token: number; // -1 when the event only ends the slot
  text: string;
  end: '' | 'stop' | 'length' | 'context_full' | 'cancelled' | 'error';
  error?: string;
  promptProcessed: number;
  /** Tokens a context shift dropped in this step. */
  shifted?: number;
  /** With nProbs: the token's log probability (probability with postSampling) and the most likely tokens. */
  chosen?: { token: number; logprob: number };
  top?: { token: number; logprob: number }[];
}

export interface NativeStepResult {
  events: NativeSlotEvent[];
  batchTokens: number;
  promptTokens: number;
  generatedTokens: number;
  retries: number;
  decodeMicros: number;
  /** Present (true) when the KV had no room for the generating slots: nothing was decoded. */
  kvFull?: boolean;
  /** With speculative decoding: each verified draft, and the time spent drafting. */
  drafts?: { slot: number; drafted: number; accepted: number }[];
  draftMicros?: number;
}

/** The decoder's options as it runs: nCtxPerSlot is what one slot may use, kvTypeV is never empty. */
export interface NativeDecoderInfo extends Required<NativeDecoderOptions> {
  kvCellsUsed: number;
  /** Host memory the slots' sliding-window checkpoints hold. */
  checkpointBytes: number;
  /** Speculative decoding: the most tokens a slot drafts per step (0: off), and its types, comma-separated. */
  draftMax: number;
  speculativeTypes: string;
}

export interface NativeChatTemplateOptions {
  template?: string;
  jinja?: boolean;
  reasoningFormat?: string;
  /** Template variables for every request, as JSON object text. */
  defaultKwargs?: string;
  /** -1 auto, 0 off, 1 on. */
  enableThinking?: number;
  prefillAssistant?: boolean;
}

/** llama_pooling_type: -1 the model's (options only), 0 none, 1 mean, 2 cls, 3 last. */
export type NativePooling = -1 | 0 | 1 | 2 | 3;

export interface NativeEmbedderOptions {
  nSeqMax?: number;
  nCtx?: number;
  nBatch?: number;
  nThreads?: number;
  nThreadsBatch?: number;
  pooling?: NativePooling;
}

/** The embedder as it runs: pooling is the context's (never -1); maxInputTokens the longest input it takes. */
export interface NativeEmbedderInfo extends Required<NativeEmbedderOptions> {
  nEmbd: number;
  maxInputTokens: number;
}

export interface NativeEmbedResult {
  /** In input order: rows of nEmbd floats (one when pooled, one per token with pooling none). */
  embeddings: { values: Float32Array; rows: number; tokens: number }[];
  nEmbd: number;
  /** llama_decode calls the inputs took. */
  decodes: number;
  decodeMicros: number;
}

export interface NativeEmbedder {
  embed(inputs: readonly (Int32Array | readonly number[])[]): Promise<NativeEmbedResult>;
  info(): NativeEmbedderInfo;
  dispose(): void;
  readonly disposed: boolean;
}

/** The defaults of native/core's option structs, where they are stated (the addon's defaults()). */
export interface NativeDefaults {
  load: Required<NativeLoadOptions>;
  decoder: Required<NativeDecoderOptions>;
  chatTemplates: Required<NativeChatTemplateOptions>;
  embedder: Required<NativeEmbedderOptions>;
}

export interface NativeBatchDecoder {
  start(
    slot: number,
    tokens: Int32Array | readonly number[],
    params: NativeStartParams,
  ): { reusedTokens: number; promptTokens: number };
  cancel(slot: number): boolean;
  clear(slot: number): void;
  step(tokenBudget?: number, draftLimits?: Int32Array | readonly number[]): Promise<NativeStepResult>;
  slotInfo(slot: number): {
    state: 'idle' | 'prefill' | 'generating';
    cachedTokens: number;
    pendingPrompt: number;
    generated: number;
    draftTokens: number;
    draftAccepted: number;
  };
  /** The tokens the slot's KV holds (slotInfo().cachedTokens counts them). */
  cachedPrefix(slot: number): Int32Array;
  /** Where the slot can resume a prompt sharing a prefix with its cache (native/core ResumePoints). */
  resumePoints(slot: number): ResumePoints;
  copyPrefix(src: number, dst: number, count?: number): number;
  /** The idle slot's KV in host memory (llama_state_seq_get_data_ext) with the tokens it holds. */
  saveState(slot: number): Promise<{ tokens: Int32Array; state: Uint8Array; resume: ResumePoints }>;
  /** Loads such a state into an idle slot; resolves with the tokens it now holds. */
  restoreState(slot: number, tokens: Int32Array | readonly number[], state: Uint8Array): Promise<number>;
  eraseSlot(slot: number): Promise<void>;
  info(): NativeDecoderInfo;
  dispose(): void;
  /** dispose(), with the context and its step thread freed off the JS thread. */
  release(): Promise<void>;
  readonly disposed: boolean;
}

export interface NativeChatTemplateInfo {
  source: string;
  fromModel: boolean;
  jinja: boolean;
  supportsThinking: boolean;
  exampleFormat: string;
  toolsFormat: string;
  caps: Record<string, boolean>;
}

export interface NativeChatPrompt {
  prompt: string;
  grammar: NativeGrammar | null;
  preservedTokens: Int32Array;
  additionalStops: string[];
  /** Text that opens a user message in this format (llama.cpp's message delimiters). */
  userStarts: string[];
  /** llama.cpp's chat format name (common_chat_format_name). */
  format: string;
  /** JSON for a ChatParser of this request's output. */
  parserConfig: string;
  /** The prompt leaves the model thinking (its output starts with reasoning). */
  thinking: boolean;
  /** The format's thinking tags ('' and [] when it has none), for the reasoning budget. */
  reasoningStart: string;
  reasoningEnds: string[];
  /** What the template already wrote of the answer (its generation prompt). */
  generationPrompt: string;
}

export interface NativeChatTemplates {
  apply(requestJson: string): Promise<NativeChatPrompt>;
  info(): NativeChatTemplateInfo;
  dispose(): void;
}

/** The parser's deltas are the server's chat layer contract as they are (no conversion). */
export type NativeChatDelta = ChatDelta;

export interface NativeChatMessage {
  content: string;
  reasoning: string;
  toolCalls: { id: string; name: string; arguments: string }[];
}

export interface NativeChatParser {
  push(text: string, final: boolean): NativeChatDelta[];
  message(): NativeChatMessage;
}

export interface NativeSystemInfo {
  llamaSystemInfo: string;
  /** llama.cpp's "b<build number>-<commit>". */
  buildInfo: string;
  commit: string;
  supportsGpuOffload: boolean;
  supportsMmap: boolean;
  supportsMlock: boolean;
  maxDevices: number;
  maxParallelSequences: number;
  hardwareConcurrency: number;
  quantTypes: string[];
  devices: {
    name: string;
    description: string;
    type: 'cpu' | 'gpu' | 'igpu' | 'accel';
    memoryFreeBytes: number;
    memoryTotalBytes: number;
  }[];
  /** llama.cpp's log of the backend initialisation (CUDA lists devices with their compute capability). */
  backendLog: string;
}

export interface NativeAddon {
  Model: new () => NativeModel;
  BatchDecoder: {
    new (
      model: NativeModel,
      options: NativeDecoderOptions & { speculative?: NativeSpeculativeOptions },
    ): NativeBatchDecoder;
    /** The same, with the context created off the JS thread. */
    create(
      model: NativeModel,
      options: NativeDecoderOptions & { speculative?: NativeSpeculativeOptions },
    ): Promise<NativeBatchDecoder>;
  };
  ChatTemplates: new (model: NativeModel, options: NativeChatTemplateOptions) => NativeChatTemplates;
  ChatParser: new (config: string) => NativeChatParser;
  Embedder: new (model: NativeModel, options: NativeEmbedderOptions) => NativeEmbedder;
  jsonSchemaToGrammar(schemaJson: string): Promise<string>;
  checkGrammar(model: NativeModel, grammar: string): Promise<string>;
  chatTemplateMarkers(source: string): Promise<string[]>;
  quantize(input: string, output: string, type: string, options: { threads?: number }): Promise<void>;
  systemInfo(): NativeSystemInfo;
  probeMemory(path: string, load: NativeLoadOptions, decoder: NativeDecoderOptions): Promise<string>;
  setLogLevel(level: 'none' | 'error' | 'warn' | 'info' | 'debug'): void;
  defaults(): NativeDefaults;
}

/** Where the addon may be: an explicit path, the cmake-js build, the node-gyp build. */
export function addonCandidates(): string[] {
  const explicit = process.env.LLAMA_ADDON_PATH;
  if (explicit) return [explicit];
  return [
    join(projectRoot, 'build-cmake', 'Release', 'llama_addon.node'),
    join(projectRoot, 'build-cmake', 'llama_addon.node'),
    join(projectRoot, 'build', 'Release', 'llama_addon.node'),
  ];
}

let cached: NativeAddon | undefined;

export function loadAddon(path?: string): NativeAddon {
  if (path === undefined && cached) return cached;
  const require = createRequire(import.meta.url);
  const candidates = path ? [path] : addonCandidates();
  const found = candidates.find((p) => existsSync(p));
  if (!found) {
    throw new LlamaError(
      'ADDON_NOT_BUILT',
      `the native addon is not built (looked in ${candidates.join(', ')}): run \`npm ci\` or \`npm run build:addon\``,
    );
  }
  const addon = require(found) as NativeAddon;
  if (path === undefined) cached = addon;
  return addon;
}

let defaults: NativeDefaults | undefined;

/** The native option structs' defaults (frozen), read once from the addon. */
export function nativeDefaults(): NativeDefaults {
  defaults ??= deepFreeze(callNative(() => loadAddon().defaults()));
  return defaults;
}

function deepFreeze<T extends object>(o: T): T {
  for (const v of Object.values(o)) if (typeof v === 'object' && v !== null) deepFreeze(v);
  return Object.freeze(o);
}

/** Rethrows a native error as its typed class, with the stack of the JS call that started the work. */
export function nativeError(err: unknown, callerStack?: string): never {
  if (err instanceof LlamaError) throw err;
  if (err instanceof Error) {
    const code = (err as Error & { code?: unknown }).code;
    const typed = errorFor(typeof code === 'string' ? code : 'NATIVE_ERROR', err.message, { cause: err });
    if (callerStack) typed.stack = `${typed.name}: ${typed.message}\n${callerStack.split('\n').slice(1).join('\n')}`;
    throw typed;
  }
  throw errorFor('NATIVE_ERROR', String(err));
}

/** Runs a synchronous native call, converting its errors. */
export function callNative<T>(fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    nativeError(err);
  }
}

/** Awaits an asynchronous native call; the stack is captured before the work is queued. */
export async function awaitNative<T>(start: () => Promise<T>): Promise<T> {
  const stack = new Error().stack;
  try {
    return await start();
  } catch (err) {
    nativeError(err, stack);
  }
}
