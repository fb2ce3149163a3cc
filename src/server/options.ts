// What the HTTP layer needs to know: the served model's names and limits, keys, timeouts, the generation
// defaults requests fall back on, and which optional endpoints are on. The entry (src/entry/config/) builds this from
// llama-server's flags; tests build it by hand and get llama-server's defaults for the rest.
import { basename } from 'node:path';
import type { GenerationHandlers, GenerationRequest, RequestHandle, SlotSnapshot } from '../scheduler/types.ts';
import { type ScalarDefaults, scalarDefaults } from './generation/parameters.ts';
import {
  type ConnectionLimits,
  checkConnectionLimits,
  DEFAULT_CONNECTION_LIMITS,
  DEFAULT_REQUEST_LIMITS,
  type RequestLimits,
} from './limits.ts';

/**
 * What a request gets for each field it leaves out: llama-server's defaults, or its flags. The scalar ones are the
 * generation parameter table's (generation/parameters.ts); these are the rest.
 */
export interface GenerationDefaults extends ScalarDefaults {
  drySequenceBreakers: readonly string[] | undefined;
  samplers: readonly string[] | undefined;
  /** [token, bias] for every request. */
  logitBias: readonly (readonly [number, number])[];
  /** A constraint for requests that give none (GBNF, already checked). */
  grammar: string | undefined;
  contextShift: boolean;
  renderSpecial: boolean;
}

/** The sampling fields of GenerationDefaults (the serve command's flags of the same names set them). */
export const SAMPLING_DEFAULT_KEYS = [
  'temperature',
  'topK',
  'topP',
  'minP',
  'typicalP',
  'topNSigma',
  'xtcProbability',
  'xtcThreshold',
  'repeatPenalty',
  'repeatLastN',
  'presencePenalty',
  'frequencyPenalty',
  'dryMultiplier',
  'dryBase',
  'dryAllowedLength',
  'dryPenaltyLastN',
  'drySequenceBreakers',
  'dynatempRange',
  'dynatempExponent',
  'mirostat',
  'mirostatEta',
  'mirostatTau',
  'seed',
  'samplers',
  'ignoreEos',
  'logitBias',
] as const satisfies readonly (keyof GenerationDefaults)[];

export type SamplingDefaults = Pick<GenerationDefaults, (typeof SAMPLING_DEFAULT_KEYS)[number]>;

export const LLAMA_SERVER_DEFAULTS: GenerationDefaults = {
  ...scalarDefaults(),
  drySequenceBreakers: undefined,
  samplers: undefined,
  logitBias: [],
  grammar: undefined,
  contextShift: false,
  renderSpecial: false,
};

/** Optional routes, off or on as llama-server's flags have them. */
export interface Endpoints {
  /** GET /metrics (--metrics). Default off: 501. */
  metrics: boolean;
  /** POST /props changes settings (--props). Default off. */
  props: boolean;
  /** GET /slots (--slots). Default on. */
  slots: boolean;
}

export interface ServerOptions {
  /** Ids reported by /v1/models (llama-server's --alias). Default: the model file name. */
  aliases?: readonly string[];
  tags?: readonly string[];
  /** Bearer keys accepted on every route but /health. Empty or absent: no authentication. */
  apiKeys?: readonly string[];
  /** Largest request body; larger ones get 413. Default 1 MiB. */
  bodyLimitBytes?: number;
  /** What one request may ask for (messages, stop strings, schemas, ...). Default DEFAULT_REQUEST_LIMITS. */
  limits?: Partial<RequestLimits>;
  /** Read timeouts, keep-alive and connection caps of the HTTP server. Default DEFAULT_CONNECTION_LIMITS. */
  connections?: Partial<ConnectionLimits>;
  /** Prompt + generated tokens one slot holds (the decoder's ctxPerSlot). */
  ctxPerSlot: number;
  /** Number of slots (parallel sequences). */
  slots: number;
  /** The decoder drafts tokens (speculative decoding): /slots says so. Default false. */
  speculative?: boolean;
  /** Deadline per request, from submission; past it the request ends with HTTP 504 (or an error event). */
  requestTimeoutMs?: number;
  /** How long a stream may stay undrained (client not reading) before its request is cancelled. Default 30 s. */
  streamDrainTimeoutMs?: number;
  /** An SSE comment this often while a stream is open (--sse-ping-interval). Default none. */
  ssePingMs?: number;
  defaults?: Partial<GenerationDefaults>;
  endpoints?: Partial<Endpoints>;
  /** Origins allowed cross-origin ('*' any, 'localhost' any loopback origin). Default none. */
  corsOrigins?: readonly string[];
  /** Where POST /slots/{id}?action=save|restore keeps files. Absent: slot actions are refused. */
  slotSavePath?: string;
  /** -v: responses carry __verbose (the prompt), as llama-server's do. */
  verbose?: boolean;
  /** `created` of the model in /v1/models, in seconds. Default: when the app was built. */
  modelCreated?: number;
  /** `owned_by` in /v1/models. Default 'llamacpp' (as llama-server). */
  ownedBy?: string;
  /** Scheduler priority of each InferenceObjective name the router sends (src/server/client-key.ts). */
  objectivePriorities?: ReadonlyMap<string, number>;
  /** Proxies whose X-Forwarded-For gives the client's address (Fastify's trustProxy). Default: none. */
  trustedProxies?: readonly string[];
  /** llama.cpp's "b<build>-<commit>": /props' build_info and every response's system_fingerprint, as llama-server. */
  buildInfo?: string;
  /** Bytes of stored Responses API responses (for previous_response_id), oldest dropped first. Default 64 MiB; 0: none. */
  responseStoreBytes?: number;
  /** The model is an embedding model (--embeddings): /v1/embeddings is served and generation routes refuse. */
  embeddings?: boolean;
}

/** ServerOptions with every default filled in. */
export interface ResolvedServerOptions {
  /** The first alias (sorted, as llama-server's std::set): what responses name as their model. */
  modelId: string;
  aliases: readonly string[];
  tags: readonly string[];
  apiKeys: readonly string[];
  bodyLimitBytes: number;
  limits: RequestLimits;
  connections: ConnectionLimits;
  ctxPerSlot: number;
  slots: number;
  speculative: boolean;
  requestTimeoutMs: number | undefined;
  streamDrainTimeoutMs: number;
  ssePingMs: number | undefined;
  defaults: GenerationDefaults;
  endpoints: Endpoints;
  corsOrigins: readonly string[];
  slotSavePath: string | undefined;
  verbose: boolean;
  modelCreated: number;
  ownedBy: string;
  objectivePriorities: ReadonlyMap<string, number>;
  trustedProxies: readonly string[];
  buildInfo: string;
  responseStoreBytes: number;
  embeddings: boolean;
}

/** What the HTTP layer reports and checks about the served model. */
export interface ServedModelInfo {
  path: string;
  name: string;
  nParams: number;
  /** Bytes of weights. */
  sizeBytes: number;
  nCtxTrain: number;
  nVocab: number;
  /** Beginning-of-sequence token, -1 when the vocabulary has none. */
  bos: number;
  eogTokens: readonly number[];
}

/** The part of the engine's Model the HTTP layer uses. */
export interface ServedModel {
  readonly info: ServedModelInfo;
  tokenize(text: string, options?: { addSpecial?: boolean; parseSpecial?: boolean }): ArrayLike<number>;
  detokenize(tokens: readonly number[], options?: { removeSpecial?: boolean; unparseSpecial?: boolean }): string;
  /** The token's raw bytes (possibly part of a UTF-8 character). */
  tokenBytes(token: number, options?: { special?: boolean }): Uint8Array;
}

/** The part of the engine's Embedder the HTTP layer uses (served with --embeddings). */
export interface ServedEmbedder {
  readonly info: {
    pooling: 'none' | 'mean' | 'cls' | 'last';
    /** Floats in one row. */
    dimensions: number;
    maxInputTokens: number;
  };
  /** Per input, in order: rows * dimensions floats as the model computed them (one row when pooled). */
  embed(inputs: readonly Int32Array[]): Promise<{ embeddings: { values: Float32Array; rows: number }[] }>;
}

/** What a slot action (POST /slots/{id}) reports. */
export interface SlotActionResult {
  tokens: number;
  bytes?: number;
  ms: number;
}

/** The part of the Scheduler the HTTP layer uses. */
export interface ServedScheduler {
  /** Throws RejectedError (QUEUE_FULL, SHUTTING_DOWN) or ContextExceededError synchronously. */
  submit(request: GenerationRequest, handlers: GenerationHandlers): RequestHandle;
  snapshot(): SlotSnapshot[];
  /** Saves, restores or erases an idle slot's cache (llama-server's slot actions). */
  slotAction(slot: number, action: 'save' | 'restore' | 'erase', path?: string): Promise<SlotActionResult>;
}

export const DEFAULT_BODY_LIMIT_BYTES = 1024 * 1024;
export const DEFAULT_STREAM_DRAIN_TIMEOUT_MS = 30_000;
export const DEFAULT_RESPONSE_STORE_BYTES = 64 * 1024 * 1024;

export function resolveServerOptions(config: ServerOptions, model: ServedModel): ResolvedServerOptions {
  for (const [name, value] of [
    ['ctxPerSlot', config.ctxPerSlot],
    ['slots', config.slots],
  ] as const) {
    if (!Number.isInteger(value) || value < 1) throw new RangeError(`${name} must be an integer >= 1, got ${value}`);
  }
  const aliases = [...new Set(config.aliases?.filter((a) => a !== '') ?? [])].sort();
  const fileName = basename(model.info.path);
  return {
    modelId: aliases[0] ?? fileName,
    aliases: aliases.length > 0 ? aliases : [fileName],
    tags: [...(config.tags ?? [])],
    apiKeys: (config.apiKeys ?? []).filter((k) => k !== ''),
    bodyLimitBytes: config.bodyLimitBytes ?? DEFAULT_BODY_LIMIT_BYTES,
    limits: positiveLimits({ ...DEFAULT_REQUEST_LIMITS, ...config.limits }),
    connections: checkConnectionLimits({ ...DEFAULT_CONNECTION_LIMITS, ...config.connections }),
    ctxPerSlot: config.ctxPerSlot,
    slots: config.slots,
    speculative: config.speculative ?? false,
    requestTimeoutMs: config.requestTimeoutMs,
    streamDrainTimeoutMs: config.streamDrainTimeoutMs ?? DEFAULT_STREAM_DRAIN_TIMEOUT_MS,
    ssePingMs: config.ssePingMs,
    defaults: { ...LLAMA_SERVER_DEFAULTS, ...config.defaults },
    endpoints: { metrics: false, props: false, slots: true, ...config.endpoints },
    corsOrigins: [...(config.corsOrigins ?? [])],
    slotSavePath: config.slotSavePath,
    verbose: config.verbose ?? false,
    modelCreated: config.modelCreated ?? Math.floor(Date.now() / 1000),
    ownedBy: config.ownedBy ?? 'llamacpp',
    objectivePriorities: config.objectivePriorities ?? new Map(),
    trustedProxies: config.trustedProxies ?? [],
    buildInfo: config.buildInfo ?? 'b0-0000000',
    responseStoreBytes: config.responseStoreBytes ?? DEFAULT_RESPONSE_STORE_BYTES,
    embeddings: config.embeddings ?? false,
  };
}

function positiveLimits(limits: RequestLimits): RequestLimits {
  for (const [name, value] of Object.entries(limits)) {
    if (!Number.isInteger(value) || value < 1)
      throw new RangeError(`limits.${name} must be an integer >= 1, got ${value}`);
  }
  return limits;
}
