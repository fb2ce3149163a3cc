// `npm start`'s configuration: what the flags of src/entry/config/*-flags.ts set, and the value of each when
// neither a flag nor its environment variable gives one (llama-server's defaults, vendor/llama.cpp/common/arg.cpp).
import { availableParallelism } from 'node:os';
import type { KvType } from '../../gguf/types.ts';
import { DEFAULT_REQUEST_LIMITS, type RequestLimits } from '../../server/limits.ts';
import { LLAMA_SERVER_DEFAULTS, type SamplingDefaults } from '../../server/options.ts';

/**
 * `npm start`'s configuration. The sampling defaults requests fall back on and the request limits are the HTTP
 * layer's types (one definition each); the serve flags of the same names set them.
 */
export interface ServeConfig extends SamplingDefaults, RequestLimits {
  /** undefined: serve the generated demo model. */
  model: string | undefined;
  /** Model ids reported by the API (--alias, comma-separated). Empty: the file name. */
  aliases: string[];
  tags: string[];
  host: string;
  port: number;
  /** KV cells in all (llama-server's -c). Default 4096 per slot. */
  ctxSize: number | undefined;
  parallel: number;
  gpuLayers: number;
  batchSize: number;
  ubatchSize: number;
  threads: number;
  threadsBatch: number | undefined;
  flashAttn: 'auto' | 'on' | 'off';
  kvTypeK: KvType;
  kvTypeV: KvType;
  swaFull: boolean;
  /** Sliding-window checkpoints per slot, and their spacing across requests (llama-server's -ctxcp, -cms). */
  ctxCheckpoints: number;
  checkpointMinStep: number;
  /** One KV pool for all slots, any of which may use all of it (llama-server's n_ctx_seq). Default: -np not given. */
  kvUnified: boolean | undefined;
  /** Most cells one slot may use of the unified pool (--ctx-per-slot). */
  ctxPerSlotMax: number | undefined;
  offloadKv: boolean;
  mlock: boolean;
  mmap: boolean;
  /** Generated tokens when a request gives no limit (-n); -1: until the slot is full. */
  nPredict: number;
  /** Prompt tokens kept when the context shifts. */
  keep: number;
  contextShift: boolean;
  cachePrompt: boolean;
  /** MiB of host RAM for prompt states (--cache-ram); 0: off; -1: no limit. */
  cacheRamMiB: number;
  grammar: string | undefined;
  grammarFile: string | undefined;
  jsonSchema: string | undefined;
  jsonSchemaFile: string | undefined;
  renderSpecial: boolean;
  // Speculative decoding (llama-server's speculative params; defaults as common/common.h's).
  /** The draft model file (-md). */
  draftModel: string | undefined;
  /** --spec-type names; after the checks, the types that run ('none' dropped; draft-simple for -md alone). */
  specTypes: string[];
  /** Most tokens a slot drafts in a step (--spec-draft-n-max), and fewest worth verifying. */
  draftMax: number;
  draftMin: number;
  draftPMin: number;
  draftPSplit: number;
  /** Draft model layers on the GPU (-ngld); -1: all. */
  draftGpuLayers: number;
  draftKvTypeK: KvType;
  draftKvTypeV: KvType;
  /** Benchmarking only: synthetic acceptance by mean length or per-position rates. */
  specSynthLen: number | undefined;
  specSynthRates: number[] | undefined;
  ngramSimpleSizeN: number;
  ngramSimpleSizeM: number;
  ngramSimpleMinHits: number;
  ngramMapKSizeN: number;
  ngramMapKSizeM: number;
  ngramMapKMinHits: number;
  ngramMapK4vSizeN: number;
  ngramMapK4vSizeM: number;
  ngramMapK4vMinHits: number;
  ngramModMin: number;
  ngramModMax: number;
  ngramModMatch: number;
  lookupCacheStatic: string | undefined;
  lookupCacheDynamic: string | undefined;
  /** How long each slot drafts in a step (--spec-policy): adaptive to measured acceptance and cost, or always n-max. */
  specPolicy: 'adaptive' | 'max';
  // Chat.
  chatTemplate: string | undefined;
  chatTemplateFile: string | undefined;
  jinja: boolean;
  reasoningFormat: 'none' | 'deepseek' | 'deepseek-legacy' | 'auto';
  reasoning: 'on' | 'off' | 'auto';
  reasoningEffort: string | undefined;
  chatTemplateKwargs: string | undefined;
  stepTrace: string | undefined;
  /** The templates' preserve_reasoning (drop_thinking, clear_thinking... as llama.cpp maps it): earlier turns' reasoning stays. */
  reasoningPreserve: boolean;
  prefillAssistant: boolean;
  // Endpoints and HTTP.
  apiKeys: string[];
  apiKeyFile: string | undefined;
  metrics: boolean;
  props: boolean;
  slots: boolean;
  webui: boolean;
  /** Serve an embedding model: /v1/embeddings on, generation routes refused (llama-server's --embeddings). */
  embeddings: boolean;
  /** Its pooling; undefined: the model's (its GGUF's pooling_type). */
  pooling: 'none' | 'mean' | 'cls' | 'last' | undefined;
  slotSavePath: string | undefined;
  corsOrigins: string[];
  sslKeyFile: string | undefined;
  sslCertFile: string | undefined;
  ssePingSeconds: number | undefined;
  timeoutSeconds: number;
  // Logs.
  logLevel: 'error' | 'warn' | 'info' | 'debug';
  logFormat: 'text' | 'json' | undefined;
  logDisable: boolean;
  logFile: string | undefined;
  verbose: boolean;
  // This server's own.
  /** NAME=PRIORITY: the scheduler priority of requests for an InferenceObjective (the router's objective header). */
  objectivePriorities: string[];
  /** Proxies whose X-Forwarded-For gives the client's address (Fastify's trustProxy). */
  trustProxy: string[];
  maxQueue: number;
  /** Most tokens one step carries, generating slots' first (--prefill-chunk); undefined: -b. */
  prefillChunk: number | undefined;
  maxQueueTokens: number | undefined;
  shutdownGraceSeconds: number;
  bodyLimitBytes: number;
  // Limits (src/server/limits.ts; docs/RELIABILITY.md lists them).
  headersTimeoutSeconds: number;
  bodyTimeoutSeconds: number;
  keepAliveTimeoutSeconds: number;
  keepAliveMaxRequests: number;
  maxConnections: number;
  /** Plan GPU layers, slots, context, KV type and ubatch to fit this many bytes of VRAM (src/fit). */
  vramBudgetBytes: number | undefined;
  // Router mode (src/router/): several models, loaded on demand.
  modelsDir: string | undefined;
  modelsPreset: string | undefined;
  modelsMax: number;
  modelsAutoload: boolean;
  /** Host memory the router's loaded models may take together (their files and KV caches). */
  modelsMemoryBytes: number | undefined;
  /** Unload a model idle this long (-1: never). */
  sleepIdleSeconds: number;
  help: boolean;
  version: boolean;
  listDevices: boolean;
  /** Settings given by a flag or an environment variable (a VRAM plan keeps them and plans the rest). */
  explicit: ReadonlySet<keyof ServeConfig>;
  /** One line per accepted flag that has no effect here. */
  warnings: readonly string[];
}

/** The settings a flag may set (all but what the parse itself records). */
export type ServeFlagKey = Exclude<keyof ServeConfig, 'explicit' | 'warnings'>;

export function defaultServeConfig(): ServeConfig {
  const { nKeep, ...generation } = LLAMA_SERVER_DEFAULTS;
  return {
    model: undefined,
    aliases: [],
    tags: [],
    host: '127.0.0.1',
    port: 8090,
    ctxSize: undefined,
    parallel: 4,
    gpuLayers: -1,
    batchSize: 512,
    ubatchSize: 512,
    threads: availableParallelism(),
    threadsBatch: undefined,
    flashAttn: 'auto',
    kvTypeK: 'f16',
    kvTypeV: 'f16',
    swaFull: false,
    ctxCheckpoints: 32,
    checkpointMinStep: 8192,
    kvUnified: undefined,
    ctxPerSlotMax: undefined,
    offloadKv: true,
    mlock: false,
    mmap: true,
    // Generation defaults are llama-server's, stated once (src/server/options.ts).
    ...generation,
    keep: nKeep,
    drySequenceBreakers: undefined,
    samplers: undefined,
    logitBias: [],
    cacheRamMiB: 8192,
    grammarFile: undefined,
    jsonSchema: undefined,
    jsonSchemaFile: undefined,
    renderSpecial: false,
    draftModel: undefined,
    specTypes: [],
    draftMax: 3,
    draftMin: 0,
    draftPMin: 0,
    draftPSplit: 0.1,
    draftGpuLayers: -1,
    draftKvTypeK: 'f16',
    draftKvTypeV: 'f16',
    specSynthLen: undefined,
    specSynthRates: undefined,
    ngramSimpleSizeN: 12,
    ngramSimpleSizeM: 48,
    ngramSimpleMinHits: 1,
    ngramMapKSizeN: 12,
    ngramMapKSizeM: 48,
    ngramMapKMinHits: 1,
    ngramMapK4vSizeN: 12,
    ngramMapK4vSizeM: 48,
    ngramMapK4vMinHits: 1,
    ngramModMin: 48,
    ngramModMax: 64,
    ngramModMatch: 24,
    lookupCacheStatic: undefined,
    lookupCacheDynamic: undefined,
    specPolicy: 'adaptive',
    chatTemplate: undefined,
    chatTemplateFile: undefined,
    jinja: true,
    reasoningFormat: 'deepseek',
    reasoning: 'auto',
    reasoningEffort: undefined,
    chatTemplateKwargs: undefined,
    stepTrace: undefined,
    reasoningPreserve: true,
    prefillAssistant: true,
    apiKeys: [],
    apiKeyFile: undefined,
    metrics: false,
    props: false,
    slots: true,
    webui: true,
    embeddings: false,
    pooling: undefined,
    slotSavePath: undefined,
    corsOrigins: [],
    sslKeyFile: undefined,
    sslCertFile: undefined,
    ssePingSeconds: undefined,
    timeoutSeconds: 600,
    logLevel: 'info',
    logFormat: undefined,
    logDisable: false,
    logFile: undefined,
    verbose: false,
    objectivePriorities: [],
    trustProxy: [],
    maxQueue: 64,
    prefillChunk: undefined,
    maxQueueTokens: undefined,
    shutdownGraceSeconds: 10,
    bodyLimitBytes: 1 << 20,
    headersTimeoutSeconds: 30,
    bodyTimeoutSeconds: 60,
    keepAliveTimeoutSeconds: 5,
    keepAliveMaxRequests: 100,
    maxConnections: 1024,
    ...DEFAULT_REQUEST_LIMITS,
    vramBudgetBytes: undefined,
    modelsDir: undefined,
    modelsPreset: undefined,
    modelsMax: 4,
    modelsAutoload: true,
    modelsMemoryBytes: undefined,
    sleepIdleSeconds: -1,
    help: false,
    version: false,
    listDevices: false,
    explicit: new Set(),
    warnings: [],
  };
}
