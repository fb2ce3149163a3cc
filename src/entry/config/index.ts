// The flags and environment variables of `npm start`: llama-server's, with its names, short forms, defaults and
// LLAMA_ARG_* variables (vendor/llama.cpp/common/arg.cpp), plus a few of this server's own. A llama-server flag
// that changes nothing here is accepted with one warning; one for something this server does not do is refused
// with the reason; an unknown flag is an error naming it. Pure: parseServeConfig(argv, env) returns the config.
import { availableParallelism } from 'node:os';
import { FlagError, type FlagSpec, flagTable, flagUsage, parseFlags } from '../../flags/parse.ts';
import { parseObjectivePriorities } from '../../server/client-key.ts';
import { LLAMA_SERVER_DEFAULTS, type SamplingDefaults } from '../../server/config.ts';
import type { RequestLimits } from '../../server/limits.ts';
import { samplersFromLetters } from '../../server/samplers.ts';

export { FlagError as ConfigError } from '../../flags/parse.ts';

export type KvType = 'f32' | 'f16' | 'bf16' | 'q8_0' | 'q4_0' | 'q4_1' | 'iq4_nl' | 'q5_0' | 'q5_1';

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
  help: boolean;
  version: boolean;
  listDevices: boolean;
  /** Settings given by a flag or an environment variable (a VRAM plan keeps them and plans the rest). */
  explicit: ReadonlySet<keyof ServeConfig>;
  /** One line per accepted flag that has no effect here. */
  warnings: readonly string[];
}

type Key = Exclude<keyof ServeConfig, 'explicit' | 'warnings'>;

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
    // Generation defaults are llama-server's, stated once (src/server/config.ts).
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
    maxJsonDepth: 64,
    maxMessages: 2048,
    maxStopStrings: 16,
    maxStopLength: 256,
    maxLogitBias: 1024,
    maxTools: 128,
    maxSchemaBytes: 64 * 1024,
    maxGrammarBytes: 64 * 1024,
    vramBudgetBytes: undefined,
    help: false,
    version: false,
    listDevices: false,
    explicit: new Set(),
    warnings: [],
  };
}

const COMMON = 'common params';
const SAMPLING = 'sampling params';
const SERVER = 'server params';
const OURS = 'this server';

const KV_TYPES = ['f32', 'f16', 'bf16', 'q8_0', 'q4_0', 'q4_1', 'iq4_nl', 'q5_0', 'q5_1'] as const;
const NO_DOWNLOADS = 'it never downloads models: pass -m FILE';
const NO_SPECULATIVE = 'no speculative decoding';
const NO_MULTIMODAL = 'a text-only server (no mmproj, images or audio)';

/** llama-server's `-l TOKEN_ID(+/-)BIAS` (e.g. `15043+1`, `2-inf`). */
function parseLogitBias(value: unknown): [number, number][] {
  const m = /^(\d+)\s*([+-])\s*(inf|\d+(?:\.\d+)?)$/i.exec(String(value));
  if (!m) throw new Error(`expected TOKEN_ID(+/-)BIAS, e.g. 15043+1 or 2-inf, got '${String(value)}'`);
  const magnitude = m[3]?.toLowerCase() === 'inf' ? Number.POSITIVE_INFINITY : Number(m[3]);
  return [[Number(m[1]), m[2] === '-' ? -magnitude : magnitude]];
}

const FLAGS: FlagSpec<Key>[] = [
  // ----- common params -----
  { names: ['-h', '--help', '--usage'], kind: 'bool', key: 'help', group: COMMON, help: 'print usage and exit' },
  { names: ['--version'], kind: 'bool', key: 'version', group: COMMON, help: 'show version and build info' },
  {
    names: ['--list-devices'],
    kind: 'bool',
    key: 'listDevices',
    group: COMMON,
    help: 'print the list of available devices and exit',
  },
  {
    names: ['-t', '--threads'],
    env: 'LLAMA_ARG_THREADS',
    kind: 'int',
    key: 'threads',
    min: 1,
    max: 1024,
    group: COMMON,
    help: 'CPU threads for generation (default: all cores)',
  },
  {
    names: ['-tb', '--threads-batch'],
    kind: 'int',
    key: 'threadsBatch',
    min: 1,
    max: 1024,
    group: COMMON,
    help: 'CPU threads for prompt processing (default: same as --threads)',
  },
  ...['-C', '--cpu-mask', '-Cr', '--cpu-range', '-Cb', '--cpu-mask-batch', '-Crb', '--cpu-range-batch'].flatMap(
    (name, i, all): FlagSpec<Key>[] =>
      i % 2 === 0
        ? [
            {
              names: [name, all[i + 1] ?? name],
              kind: 'string',
              group: COMMON,
              help: 'CPU affinity',
              ignored: 'thread affinity is left to the OS',
            },
          ]
        : [],
  ),
  ...['--cpu-strict', '--prio', '--poll', '--cpu-strict-batch', '--prio-batch', '--poll-batch'].map(
    (name): FlagSpec<Key> => ({
      names: [name],
      kind: 'string',
      group: COMMON,
      help: 'thread scheduling',
      ignored: 'thread scheduling is left to the OS',
    }),
  ),
  {
    names: ['-c', '--ctx-size'],
    env: 'LLAMA_ARG_CTX_SIZE',
    kind: 'int',
    key: 'ctxSize',
    min: 0,
    max: 1 << 24,
    group: COMMON,
    help: "KV cells in all, shared by the slots (default 4096 per slot, at most the model's training context; 0: that context)",
  },
  {
    names: ['--ctx-per-slot', '--kv-unified-per-slot'],
    env: 'LLAMA_ARG_KV_UNIFIED_PER_SLOT',
    kind: 'int',
    key: 'ctxPerSlotMax',
    min: 16,
    max: 1 << 24,
    group: COMMON,
    help: 'most context one slot may use of the shared pool (default: all of -c)',
  },
  {
    names: ['-n', '--predict', '--n-predict'],
    env: 'LLAMA_ARG_N_PREDICT',
    kind: 'int',
    key: 'nPredict',
    min: -2,
    max: 1 << 24,
    group: COMMON,
    help: 'tokens to generate when a request sets no limit (default -1: until the slot is full)',
  },
  {
    names: ['-b', '--batch-size'],
    env: 'LLAMA_ARG_BATCH',
    kind: 'int',
    key: 'batchSize',
    min: 1,
    max: 1 << 20,
    group: COMMON,
    help: 'most tokens in one decoding step (default 512)',
  },
  {
    names: ['-ub', '--ubatch-size'],
    env: 'LLAMA_ARG_UBATCH',
    kind: 'int',
    key: 'ubatchSize',
    min: 1,
    max: 1 << 20,
    group: COMMON,
    help: 'physical batch size (default 512)',
  },
  {
    names: ['--keep'],
    kind: 'int',
    key: 'keep',
    min: -1,
    max: 1 << 24,
    group: COMMON,
    help: 'prompt tokens kept when the context shifts (default 0, -1: all)',
  },
  {
    names: ['--swa-full'],
    env: 'LLAMA_ARG_SWA_FULL',
    kind: 'bool',
    key: 'swaFull',
    group: COMMON,
    help: 'full-size sliding-window KV cache (more memory, more prompt reuse)',
  },
  {
    names: ['-ctxcp', '--ctx-checkpoints', '--swa-checkpoints'],
    env: 'LLAMA_ARG_CTX_CHECKPOINTS',
    kind: 'int',
    key: 'ctxCheckpoints',
    min: 0,
    max: 1 << 20,
    group: COMMON,
    help: 'sliding-window checkpoints per slot, saved near each prompt end so a later prompt resumes there (default 32, 0: none)',
  },
  {
    names: ['-cms', '--checkpoint-min-step'],
    env: 'LLAMA_ARG_CHECKPOINT_MIN_SPACING_NT',
    kind: 'int',
    key: 'checkpointMinStep',
    min: 0,
    max: 1 << 24,
    group: COMMON,
    help: "earlier requests' checkpoints closer than this many tokens to an older one are dropped (default 8192)",
  },
  {
    names: ['-cram', '--cache-ram'],
    env: 'LLAMA_ARG_CACHE_RAM',
    kind: 'int',
    key: 'cacheRamMiB',
    min: -1,
    max: 1 << 30,
    group: COMMON,
    help: "MiB of host RAM for prompt states: a slot's KV is kept there before the slot moves on, and restored when its prompt returns (default 8192; 0: off; -1: no limit)",
  },
  {
    names: ['-kvu', '--kv-unified'],
    negated: ['-no-kvu', '--no-kv-unified'],
    env: 'LLAMA_ARG_KV_UNIFIED',
    kind: 'bool',
    key: 'kvUnified',
    group: COMMON,
    help: 'one KV pool of -c cells for all slots, a request may use up to all of it (default: on unless -np is given, as llama-server); --no-kv-unified: each slot has -c/-np',
  },
  {
    names: ['--cache-idle-slots'],
    negated: ['--no-cache-idle-slots'],
    env: 'LLAMA_ARG_CACHE_IDLE_SLOTS',
    kind: 'bool',
    group: COMMON,
    help: 'keep idle slots cached',
    ignored: 'idle slots always keep their prompt for reuse',
  },
  {
    names: ['--context-shift'],
    negated: ['--no-context-shift'],
    env: 'LLAMA_ARG_CONTEXT_SHIFT',
    kind: 'bool',
    key: 'contextShift',
    group: COMMON,
    help: 'when a slot fills while generating, drop the oldest half after --keep and go on (default off)',
  },
  {
    names: ['-fa', '--flash-attn'],
    env: 'LLAMA_ARG_FLASH_ATTN',
    kind: 'enum',
    key: 'flashAttn',
    choices: ['on', 'off', 'auto'],
    group: COMMON,
    help: 'flash attention: on|off|auto (default auto)',
  },
  {
    names: ['--perf'],
    negated: ['--no-perf'],
    env: 'LLAMA_ARG_PERF',
    kind: 'bool',
    group: COMMON,
    help: 'internal performance timings',
    ignored: 'timings are always reported per request',
  },
  {
    names: ['-e', '--escape'],
    negated: ['--no-escape'],
    kind: 'bool',
    group: COMMON,
    help: 'process escapes in the prompt',
    ignored: 'prompts arrive as JSON strings',
  },
  {
    names: ['-sp', '--special'],
    kind: 'bool',
    key: 'renderSpecial',
    group: COMMON,
    help: 'special tokens appear in the output text',
  },
  {
    names: ['--warmup'],
    negated: ['--no-warmup'],
    kind: 'bool',
    group: COMMON,
    help: 'warm the model up with an empty run',
    ignored: 'no warm-up run is made',
  },
  {
    names: ['--spm-infill'],
    kind: 'bool',
    group: COMMON,
    help: 'SPM infill pattern',
    ignored: 'there is no /infill',
  },
  {
    names: ['-r', '--reverse-prompt'],
    kind: 'string',
    group: COMMON,
    help: 'interactive-mode prompt',
    ignored: 'requests give their own stop strings',
  },
  {
    names: ['-lcs', '--lookup-cache-static', '-lcd', '--lookup-cache-dynamic'],
    kind: 'string',
    group: COMMON,
    help: 'lookup decoding cache',
    refused: NO_SPECULATIVE,
  },
  // ----- sampling params -----
  {
    names: ['--samplers'],
    kind: 'string',
    key: 'samplers',
    value: 'SAMPLERS',
    group: SAMPLING,
    help: "samplers in order, separated by ';' (default: llama.cpp's order)",
    parse: (v) => String(v).split(';').filter(Boolean),
  },
  {
    names: ['--sampler-seq', '--sampling-seq'],
    kind: 'string',
    key: 'samplers',
    value: 'SEQUENCE',
    group: SAMPLING,
    help: 'the same in letters: d dry, k top_k, y typ_p, p top_p, s top_n_sigma, m min_p, t temperature, x xtc, e penalties',
    parse: (v) => samplersFromLetters(String(v)),
  },
  {
    names: ['-s', '--seed'],
    kind: 'int',
    key: 'seed',
    min: -1,
    max: 0xffffffff,
    group: SAMPLING,
    help: 'seed for requests that give none (default -1: random)',
  },
  { names: ['--ignore-eos'], kind: 'bool', key: 'ignoreEos', group: SAMPLING, help: 'never stop at end of generation' },
  {
    names: ['--temp', '--temperature'],
    kind: 'float',
    key: 'temperature',
    min: 0,
    group: SAMPLING,
    help: 'temperature (default 0.8)',
  },
  {
    names: ['--top-k'],
    env: 'LLAMA_ARG_TOP_K',
    kind: 'int',
    key: 'topK',
    min: 0,
    group: SAMPLING,
    help: 'top-k (default 40, 0: off)',
  },
  { names: ['--top-p'], kind: 'float', key: 'topP', min: 0, max: 1, group: SAMPLING, help: 'top-p (default 0.95)' },
  { names: ['--min-p'], kind: 'float', key: 'minP', min: 0, max: 1, group: SAMPLING, help: 'min-p (default 0.05)' },
  {
    names: ['--top-nsigma', '--top-n-sigma'],
    kind: 'float',
    key: 'topNSigma',
    group: SAMPLING,
    help: 'top-n-sigma (default -1: off)',
  },
  {
    names: ['--xtc-probability'],
    kind: 'float',
    key: 'xtcProbability',
    min: 0,
    max: 1,
    group: SAMPLING,
    help: 'XTC probability (default 0: off)',
  },
  {
    names: ['--xtc-threshold'],
    kind: 'float',
    key: 'xtcThreshold',
    min: 0,
    max: 1,
    group: SAMPLING,
    help: 'XTC threshold (default 0.1)',
  },
  {
    names: ['--typical', '--typical-p'],
    kind: 'float',
    key: 'typicalP',
    min: 0,
    max: 1,
    group: SAMPLING,
    help: 'locally typical sampling (default 1: off)',
  },
  {
    names: ['--repeat-last-n'],
    kind: 'int',
    key: 'repeatLastN',
    min: -1,
    group: SAMPLING,
    help: 'tokens the penalties look back on (default 64, 0: off, -1: the context)',
  },
  {
    names: ['--repeat-penalty'],
    kind: 'float',
    key: 'repeatPenalty',
    min: 0,
    group: SAMPLING,
    help: 'repeat penalty (default 1: off)',
  },
  {
    names: ['--presence-penalty'],
    kind: 'float',
    key: 'presencePenalty',
    group: SAMPLING,
    help: 'presence penalty (default 0: off)',
  },
  {
    names: ['--frequency-penalty'],
    kind: 'float',
    key: 'frequencyPenalty',
    group: SAMPLING,
    help: 'frequency penalty (default 0: off)',
  },
  {
    names: ['--dry-multiplier'],
    kind: 'float',
    key: 'dryMultiplier',
    min: 0,
    group: SAMPLING,
    help: 'DRY multiplier (default 0: off)',
  },
  { names: ['--dry-base'], kind: 'float', key: 'dryBase', min: 1, group: SAMPLING, help: 'DRY base (default 1.75)' },
  {
    names: ['--dry-allowed-length'],
    kind: 'int',
    key: 'dryAllowedLength',
    min: 0,
    group: SAMPLING,
    help: 'DRY allowed length (default 2)',
  },
  {
    names: ['--dry-penalty-last-n'],
    kind: 'int',
    key: 'dryPenaltyLastN',
    min: -1,
    group: SAMPLING,
    help: 'DRY look-back (default -1: the context)',
  },
  {
    names: ['--dry-sequence-breaker'],
    kind: 'string',
    key: 'drySequenceBreakers',
    value: 'STRING',
    group: SAMPLING,
    help: "a DRY sequence breaker (repeatable; 'none' for none; default \\n : \" *)",
    repeatable: true,
    parse: (v) => (v === 'none' ? [] : [String(v)]),
  },
  {
    names: ['--dynatemp-range'],
    kind: 'float',
    key: 'dynatempRange',
    min: 0,
    group: SAMPLING,
    help: 'dynamic temperature range (default 0: off)',
  },
  {
    names: ['--dynatemp-exp'],
    kind: 'float',
    key: 'dynatempExponent',
    min: 0,
    group: SAMPLING,
    help: 'dynamic temperature exponent (default 1)',
  },
  {
    names: ['--mirostat'],
    kind: 'int',
    key: 'mirostat',
    min: 0,
    max: 2,
    group: SAMPLING,
    help: 'Mirostat 1 or 2 (default 0: off)',
  },
  { names: ['--mirostat-lr'], kind: 'float', key: 'mirostatEta', min: 0, group: SAMPLING, help: 'Mirostat eta (0.1)' },
  { names: ['--mirostat-ent'], kind: 'float', key: 'mirostatTau', min: 0, group: SAMPLING, help: 'Mirostat tau (5)' },
  {
    names: ['-l', '--logit-bias'],
    kind: 'string',
    key: 'logitBias',
    value: 'TOKEN_ID(+/-)BIAS',
    group: SAMPLING,
    help: 'bias a token for every request (repeatable), e.g. 15043+1 or 2-inf',
    repeatable: true,
    parse: parseLogitBias,
  },
  {
    names: ['--grammar'],
    kind: 'string',
    key: 'grammar',
    value: 'GRAMMAR',
    group: SAMPLING,
    help: 'GBNF grammar for requests that give no constraint',
  },
  {
    names: ['--grammar-file'],
    kind: 'string',
    key: 'grammarFile',
    value: 'FNAME',
    group: SAMPLING,
    help: 'the same, from a file',
  },
  {
    names: ['-j', '--json-schema'],
    kind: 'string',
    key: 'jsonSchema',
    value: 'SCHEMA',
    group: SAMPLING,
    help: 'JSON schema for requests that give no constraint',
  },
  {
    names: ['-jf', '--json-schema-file'],
    kind: 'string',
    key: 'jsonSchemaFile',
    value: 'FNAME',
    group: SAMPLING,
    help: 'the same, from a file',
  },
  {
    names: ['-bs', '--backend-sampling'],
    env: 'LLAMA_ARG_BACKEND_SAMPLING',
    kind: 'bool',
    group: SAMPLING,
    help: 'sample on the backend',
    ignored: 'sampling runs on the CPU; results are the same',
  },
  {
    names: ['--adaptive-target', '--adaptive-decay'],
    kind: 'float',
    group: SAMPLING,
    help: 'adaptive-p sampler',
    refused: 'the adaptive-p sampler is not offered',
  },
  // ----- server params: model and memory -----
  {
    names: ['-m', '--model'],
    env: 'LLAMA_ARG_MODEL',
    kind: 'string',
    key: 'model',
    value: 'FNAME',
    group: SERVER,
    help: 'GGUF model file (default: a generated demo model with random weights)',
  },
  ...[
    ['-mu', '--model-url'],
    ['-hf', '-hfr', '--hf-repo'],
    ['-hff', '--hf-file'],
    ['-hft', '--hf-token'],
    ['-dr', '--docker-repo'],
  ].map(
    (names): FlagSpec<Key> => ({
      names,
      kind: 'string',
      group: SERVER,
      help: 'download a model',
      refused: NO_DOWNLOADS,
    }),
  ),
  {
    names: ['--offline'],
    kind: 'bool',
    group: SERVER,
    help: 'never go online',
    ignored: 'this server never downloads anything',
  },
  {
    names: ['-a', '--alias'],
    env: 'LLAMA_ARG_ALIAS',
    kind: 'list',
    key: 'aliases',
    value: 'STRING',
    group: SERVER,
    help: 'model id(s) reported by the API, comma-separated (default: the file name)',
  },
  {
    names: ['--tags'],
    env: 'LLAMA_ARG_TAGS',
    kind: 'list',
    key: 'tags',
    value: 'STRING',
    group: SERVER,
    help: 'model tags, comma-separated (shown in /v1/models)',
  },
  {
    names: ['-ngl', '--gpu-layers', '--n-gpu-layers'],
    env: 'LLAMA_ARG_N_GPU_LAYERS',
    kind: 'int',
    key: 'gpuLayers',
    min: -1,
    max: 100000,
    group: SERVER,
    help: 'layers to offload to the GPU (default -1: all)',
  },
  {
    names: ['-ctk', '--cache-type-k', '--cache-type'],
    env: 'LLAMA_ARG_CACHE_TYPE_K',
    kind: 'enum',
    key: 'kvTypeK',
    choices: KV_TYPES,
    group: SERVER,
    help: 'KV cache type for K (default f16)',
  },
  {
    names: ['-ctv', '--cache-type-v'],
    env: 'LLAMA_ARG_CACHE_TYPE_V',
    kind: 'enum',
    key: 'kvTypeV',
    choices: KV_TYPES,
    group: SERVER,
    help: 'KV cache type for V (default f16)',
  },
  {
    names: ['-kvo', '--kv-offload'],
    negated: ['-nkvo', '--no-kv-offload'],
    env: 'LLAMA_ARG_KV_OFFLOAD',
    kind: 'bool',
    key: 'offloadKv',
    group: SERVER,
    help: 'keep the KV cache on the GPU (default on)',
  },
  {
    names: ['--mlock'],
    env: 'LLAMA_ARG_MLOCK',
    kind: 'bool',
    key: 'mlock',
    group: SERVER,
    help: 'lock the model in RAM',
  },
  {
    names: ['--mmap'],
    negated: ['--no-mmap'],
    env: 'LLAMA_ARG_MMAP',
    kind: 'bool',
    key: 'mmap',
    group: SERVER,
    help: 'memory-map the model (default on)',
  },
  {
    names: ['-dio', '--direct-io'],
    negated: ['-ndio', '--no-direct-io'],
    env: 'LLAMA_ARG_DIO',
    kind: 'bool',
    group: SERVER,
    help: 'direct I/O for loading',
    ignored: 'the model loads through mmap or reads',
  },
  {
    names: ['--repack'],
    negated: ['-nr', '--no-repack'],
    env: 'LLAMA_ARG_REPACK',
    kind: 'bool',
    group: SERVER,
    help: 'weight repacking',
    ignored: "llama.cpp's default is used",
  },
  {
    names: ['--numa'],
    env: 'LLAMA_ARG_NUMA',
    kind: 'string',
    group: SERVER,
    help: 'NUMA placement',
    ignored: 'NUMA placement is left to the OS',
  },
  {
    names: ['--check-tensors'],
    kind: 'bool',
    group: SERVER,
    help: 'check tensor data',
    ignored: 'the GGUF is checked before llama.cpp loads it',
  },
  {
    names: ['-dt', '--defrag-thold'],
    env: 'LLAMA_ARG_DEFRAG_THOLD',
    kind: 'float',
    group: SERVER,
    help: 'KV defragmentation threshold',
    ignored: 'deprecated in llama.cpp as well',
  },
  ...[
    [['-dev', '--device'], 'device selection'],
    [['-sm', '--split-mode'], 'multi-GPU splits'],
    [['-ts', '--tensor-split'], 'multi-GPU splits'],
    [['-mg', '--main-gpu'], 'multi-GPU splits'],
    [['-ot', '--override-tensor'], 'tensor overrides'],
    [['-cmoe', '--cpu-moe'], 'MoE placement'],
    [['-ncmoe', '--n-cpu-moe'], 'MoE placement'],
    [['--rpc'], 'RPC backends'],
    [['--override-kv'], 'metadata overrides'],
    [['--rope-scaling', '--rope-scale', '--rope-freq-base', '--rope-freq-scale'], 'RoPE overrides'],
    [['--yarn-orig-ctx', '--yarn-ext-factor', '--yarn-attn-factor', '--yarn-beta-slow', '--yarn-beta-fast'], 'YaRN'],
    [['--lora', '--lora-scaled', '--lora-init-without-apply'], 'LoRA adapters'],
    [['-gan', '--grp-attn-n', '-gaw', '--grp-attn-w'], 'self-extend (group attention) settings'],
    [['--control-vector', '--control-vector-scaled', '--control-vector-layer-range'], 'control vectors'],
    [['-fit', '--fit', '-fitt', '--fit-target', '-fitc', '--fit-ctx'], "llama.cpp's fit: use --vram-budget"],
  ].map(
    ([names, what]): FlagSpec<Key> => ({
      names: names as string[],
      kind: 'string',
      group: SERVER,
      help: what as string,
      refused: `${what as string} are not offered`,
    }),
  ),
  ...[
    ['-md', '--model-draft', '--spec-draft-model'],
    ['--spec-type'],
    ['--draft', '--draft-n', '--draft-max'],
    ['--draft-min', '--draft-n-min'],
    ['-ngld', '--gpu-layers-draft', '--n-gpu-layers-draft', '--spec-draft-ngl'],
    ['--spec-draft-n-max'],
    ['--spec-draft-n-min'],
    ['--spec-synth-len'],
    ['--spec-synth-rates'],
    ['--spec-draft-backend-sampling', '--no-spec-draft-backend-sampling'],
  ].map(
    (names): FlagSpec<Key> => ({
      names,
      kind: 'string',
      group: SERVER,
      help: 'speculative decoding',
      refused: NO_SPECULATIVE,
    }),
  ),
  ...[['-mm', '--mmproj'], ['-mmu', '--mmproj-url'], ['--image-min-tokens'], ['--image-max-tokens']].map(
    (names): FlagSpec<Key> => ({
      names,
      kind: 'string',
      group: SERVER,
      help: 'multimodal projector',
      refused: NO_MULTIMODAL,
    }),
  ),
  {
    names: ['--mmproj-auto'],
    negated: ['--no-mmproj', '--no-mmproj-auto'],
    kind: 'bool',
    group: SERVER,
    help: 'multimodal projector',
    ignored: NO_MULTIMODAL,
  },
  {
    names: ['--media-path'],
    kind: 'string',
    group: SERVER,
    help: 'local media files',
    ignored: NO_MULTIMODAL,
  },
  // ----- server params: scheduling -----
  {
    names: ['-np', '--parallel'],
    env: 'LLAMA_ARG_N_PARALLEL',
    kind: 'int',
    key: 'parallel',
    min: -1,
    max: 256,
    group: SERVER,
    help: 'slots: requests decoded together (default 4; -1: auto)',
    parse: (v) => {
      if (v === 0) throw new Error('must not be 0');
      return v === -1 ? 4 : v;
    },
  },
  {
    names: ['-cb', '--cont-batching'],
    env: 'LLAMA_ARG_CONT_BATCHING',
    kind: 'bool',
    group: SERVER,
    help: 'continuous batching',
    ignored: 'continuous batching is always on',
  },
  {
    names: ['-nocb', '--no-cont-batching'],
    kind: 'bool',
    group: SERVER,
    help: 'turn continuous batching off',
    refused: 'continuous batching is always on',
  },
  {
    names: ['--cache-prompt'],
    negated: ['--no-cache-prompt'],
    env: 'LLAMA_ARG_CACHE_PROMPT',
    kind: 'bool',
    key: 'cachePrompt',
    group: SERVER,
    help: "reuse a slot's cached prompt prefix (default on; requests may say cache_prompt: false)",
  },
  {
    names: ['--cache-reuse'],
    env: 'LLAMA_ARG_CACHE_REUSE',
    kind: 'int',
    group: SERVER,
    help: 'minimum chunk to reuse by shifting the KV cache',
    ignored: "prompts are reused by their common prefix with a slot's cache or the RAM cache (--cache-ram)",
  },
  {
    names: ['-sps', '--slot-prompt-similarity'],
    kind: 'float',
    group: SERVER,
    help: 'prompt similarity for slot choice',
    ignored: 'slots are chosen by longest common prefix',
  },
  {
    names: ['--sleep-idle-seconds'],
    kind: 'int',
    group: SERVER,
    help: 'unload the model when idle',
    ignored: 'the model stays loaded',
  },
  // ----- server params: HTTP -----
  {
    names: ['--host'],
    env: 'LLAMA_ARG_HOST',
    kind: 'string',
    key: 'host',
    group: SERVER,
    help: 'address to listen on (default 127.0.0.1)',
  },
  {
    names: ['--port'],
    env: 'LLAMA_ARG_PORT',
    kind: 'int',
    key: 'port',
    min: 0,
    max: 65535,
    group: SERVER,
    help: 'port (default 8090)',
  },
  {
    names: ['--reuse-port'],
    env: 'LLAMA_ARG_REUSE_PORT',
    kind: 'bool',
    group: SERVER,
    help: 'SO_REUSEPORT',
    refused: 'run replicas on separate ports behind a balancer (npm run replicas)',
  },
  {
    names: ['--path', '--api-prefix'],
    kind: 'string',
    group: SERVER,
    help: 'static files or a route prefix',
    refused: 'routes are served at the root',
  },
  {
    names: ['--cors-origins'],
    env: 'LLAMA_ARG_CORS_ORIGINS',
    kind: 'list',
    key: 'corsOrigins',
    value: 'ORIGINS',
    group: SERVER,
    help: "origins allowed cross-origin, comma-separated ('*' any, 'localhost' loopback); default none",
  },
  ...[['--cors-methods'], ['--cors-headers']].map(
    (names): FlagSpec<Key> => ({
      names,
      kind: 'string',
      group: SERVER,
      help: 'CORS details',
      ignored: 'allowed origins get GET, POST, DELETE, OPTIONS and any header',
    }),
  ),
  {
    names: ['--cors-credentials'],
    negated: ['--no-cors-credentials'],
    env: 'LLAMA_ARG_CORS_CREDENTIALS',
    kind: 'bool',
    group: SERVER,
    help: 'CORS credentials',
    ignored: 'allowed origins may send credentials',
  },
  {
    names: ['--ui', '--webui'],
    negated: ['--no-ui', '--no-webui'],
    env: 'LLAMA_ARG_UI',
    kind: 'bool',
    key: 'webui',
    group: SERVER,
    help: 'serve the web page at / (default on)',
  },
  ...[
    ['--ui-config', '--webui-config', '--ui-config-file', '--webui-config-file'],
    ['--ui-mcp-proxy', '--webui-mcp-proxy', '--no-ui-mcp-proxy', '--no-webui-mcp-proxy'],
    ['--tools', '--tools-runtime', '--mcp-servers-config', '--mcp-servers-json'],
    ['-ag', '--agent', '-no-ag', '--no-agent'],
  ].map(
    (names): FlagSpec<Key> => ({
      names,
      kind: 'string',
      group: SERVER,
      help: "llama-server's web UI features",
      refused: 'the web page here has its own settings; server-side tools and MCP are not offered',
    }),
  ),
  {
    names: ['--embedding', '--embeddings'],
    env: 'LLAMA_ARG_EMBEDDINGS',
    kind: 'bool',
    key: 'embeddings',
    group: SERVER,
    help: 'serve an embedding model: POST /v1/embeddings on, generation routes refused (default off)',
  },
  {
    names: ['--pooling'],
    env: 'LLAMA_ARG_POOLING',
    kind: 'enum',
    key: 'pooling',
    choices: ['none', 'mean', 'cls', 'last', 'rank'],
    group: SERVER,
    help: "pooling of embeddings: none|mean|cls|last (default: the model's)",
  },
  {
    names: ['--rerank', '--reranking'],
    env: 'LLAMA_ARG_RERANKING',
    kind: 'bool',
    group: SERVER,
    help: 'reranking models',
    refused: 'reranking is not offered',
  },
  {
    names: ['--embd-normalize'],
    kind: 'string',
    group: SERVER,
    help: 'embedding normalisation',
    refused: 'pooled embeddings are always L2-normalised, as OpenAI and llama-server do by default',
  },
  {
    names: ['--api-key'],
    env: 'LLAMA_API_KEY',
    kind: 'list',
    key: 'apiKeys',
    value: 'KEY',
    group: SERVER,
    help: 'require this key (Bearer or X-Api-Key); repeat or comma-separate for several',
  },
  {
    names: ['--api-key-file'],
    env: 'LLAMA_ARG_API_KEY_FILE',
    kind: 'string',
    key: 'apiKeyFile',
    value: 'FNAME',
    group: SERVER,
    help: 'a file of API keys, one per line',
  },
  {
    names: ['--ssl-key-file'],
    env: 'LLAMA_ARG_SSL_KEY_FILE',
    kind: 'string',
    key: 'sslKeyFile',
    value: 'FNAME',
    group: SERVER,
    help: 'PEM private key: serve HTTPS',
  },
  {
    names: ['--ssl-cert-file'],
    env: 'LLAMA_ARG_SSL_CERT_FILE',
    kind: 'string',
    key: 'sslCertFile',
    value: 'FNAME',
    group: SERVER,
    help: 'PEM certificate for HTTPS',
  },
  {
    names: ['-to', '--timeout'],
    env: 'LLAMA_ARG_TIMEOUT',
    kind: 'int',
    key: 'timeoutSeconds',
    min: 1,
    max: 86400,
    group: SERVER,
    help: 'seconds a request may take, queue included (default 600)',
  },
  {
    names: ['--sse-ping-interval'],
    env: 'LLAMA_ARG_SSE_PING_INTERVAL',
    kind: 'int',
    key: 'ssePingSeconds',
    min: 1,
    max: 3600,
    group: SERVER,
    help: 'send an SSE comment this often while a stream waits (default: none)',
  },
  {
    names: ['--threads-http'],
    env: 'LLAMA_ARG_THREADS_HTTP',
    kind: 'int',
    group: SERVER,
    help: 'HTTP threads',
    ignored: 'HTTP runs on the event loop; decoding on its own thread',
  },
  {
    names: ['--metrics'],
    env: 'LLAMA_ARG_ENDPOINT_METRICS',
    kind: 'bool',
    key: 'metrics',
    group: SERVER,
    help: 'serve Prometheus metrics at /metrics (default off)',
  },
  {
    names: ['--props'],
    env: 'LLAMA_ARG_ENDPOINT_PROPS',
    kind: 'bool',
    key: 'props',
    group: SERVER,
    help: 'allow POST /props to change settings (default off)',
  },
  {
    names: ['--slots'],
    negated: ['--no-slots'],
    env: 'LLAMA_ARG_ENDPOINT_SLOTS',
    kind: 'bool',
    key: 'slots',
    group: SERVER,
    help: 'serve /slots (default on)',
  },
  {
    names: ['--slot-save-path'],
    kind: 'string',
    key: 'slotSavePath',
    value: 'PATH',
    group: SERVER,
    help: 'folder for POST /slots/{id}?action=save|restore (default: off)',
  },
  ...[['--models-dir'], ['--models-preset'], ['--models-max'], ['--models-autoload', '--no-models-autoload']].map(
    (names): FlagSpec<Key> => ({
      names,
      kind: 'string',
      group: SERVER,
      help: 'router mode',
      refused: 'one model per server: run one server per model behind a router',
    }),
  ),
  // ----- server params: chat -----
  {
    names: ['--jinja'],
    negated: ['--no-jinja'],
    env: 'LLAMA_ARG_JINJA',
    kind: 'bool',
    key: 'jinja',
    group: SERVER,
    help: "render chat templates with llama.cpp's Jinja engine (default on); --no-jinja: its legacy renderer, no tools",
  },
  {
    names: ['--chat-template'],
    env: 'LLAMA_ARG_CHAT_TEMPLATE',
    kind: 'string',
    key: 'chatTemplate',
    value: 'TEMPLATE',
    group: SERVER,
    help: "a Jinja chat template, or a built-in name (chatml, llama3, gemma, ...) (default: the model's)",
  },
  {
    names: ['--chat-template-file'],
    env: 'LLAMA_ARG_CHAT_TEMPLATE_FILE',
    kind: 'string',
    key: 'chatTemplateFile',
    value: 'FNAME',
    group: SERVER,
    help: 'a file holding a Jinja chat template',
  },
  {
    names: ['--chat-template-kwargs'],
    env: 'LLAMA_ARG_CHAT_TEMPLATE_KWARGS',
    kind: 'string',
    key: 'chatTemplateKwargs',
    value: 'JSON',
    group: SERVER,
    help: 'template variables for every request, e.g. \'{"enable_thinking":false}\'',
    parse: (v) => {
      const kwargs: unknown = JSON.parse(String(v));
      if (typeof kwargs !== 'object' || kwargs === null || Array.isArray(kwargs))
        throw new Error('must be a JSON object');
      return String(v);
    },
  },
  {
    names: ['--reasoning-format'],
    env: 'LLAMA_ARG_THINK',
    kind: 'enum',
    key: 'reasoningFormat',
    choices: ['none', 'deepseek', 'deepseek-legacy', 'auto'],
    group: SERVER,
    help: 'where thoughts go: none (content) | deepseek (reasoning_content) | deepseek-legacy | auto (default deepseek)',
  },
  {
    names: ['-rea', '--reasoning'],
    env: 'LLAMA_ARG_REASONING',
    kind: 'enum',
    key: 'reasoning',
    choices: ['on', 'off', 'auto'],
    group: SERVER,
    help: 'thinking on templates that support it (default auto)',
  },
  {
    names: ['--reasoning-effort'],
    env: 'LLAMA_ARG_REASONING_EFFORT',
    kind: 'string',
    key: 'reasoningEffort',
    group: SERVER,
    help: 'reasoning_effort for templates that take one',
  },
  {
    names: ['--reasoning-budget', '--reasoning-budget-message'],
    env: 'LLAMA_ARG_THINK_BUDGET',
    kind: 'string',
    group: SERVER,
    help: 'thinking budget',
    parse: (v) => {
      if (v !== '-1')
        throw new Error(
          'a server-wide thinking budget is not offered (only -1); a request sets reasoning_budget_tokens',
        );
      return v;
    },
    ignored: 'thinking is unlimited unless a request sets reasoning_budget_tokens',
  },
  {
    names: ['--reasoning-preserve'],
    negated: ['--no-reasoning-preserve'],
    env: 'LLAMA_ARG_REASONING_PRESERVE',
    kind: 'bool',
    key: 'reasoningPreserve',
    group: SERVER,
    help: 'keep past reasoning in the history for templates that can (their preserve_reasoning variable; default on, as llama-server; --chat-template-kwargs may set it too)',
  },
  {
    names: ['--prefill-assistant'],
    negated: ['--no-prefill-assistant'],
    env: 'LLAMA_ARG_PREFILL_ASSISTANT',
    kind: 'bool',
    key: 'prefillAssistant',
    group: SERVER,
    help: 'a conversation ending with the assistant is continued (default on)',
  },
  {
    names: ['--skip-chat-parsing', '--no-skip-chat-parsing'],
    env: 'LLAMA_ARG_SKIP_CHAT_PARSING',
    kind: 'bool',
    group: SERVER,
    help: 'leave tool calls and reasoning in the text',
    refused: 'the output is always parsed (use reasoning_format none to keep thoughts in content)',
  },
  // ----- logs -----
  { names: ['--log-disable'], kind: 'bool', key: 'logDisable', group: SERVER, help: 'no log output' },
  {
    names: ['--log-file'],
    env: 'LLAMA_ARG_LOG_FILE',
    kind: 'string',
    key: 'logFile',
    value: 'FNAME',
    group: SERVER,
    help: 'write the log to a file (JSON lines)',
  },
  {
    names: ['-v', '--verbose', '--log-verbose'],
    kind: 'bool',
    key: 'verbose',
    group: SERVER,
    help: 'debug logs; responses carry __verbose (the prompt)',
  },
  {
    names: ['-lv', '--verbosity', '--log-verbosity'],
    env: 'LLAMA_ARG_LOG_VERBOSITY',
    kind: 'int',
    key: 'logLevel',
    min: 0,
    max: 5,
    group: SERVER,
    help: 'log threshold: 1 error, 2 warn, 3 info (default), 4+ debug',
    parse: (v) => ((v as number) <= 1 ? 'error' : v === 2 ? 'warn' : v === 3 ? 'info' : 'debug'),
  },
  ...[['--log-colors'], ['--log-prompts-dir']].map(
    (names): FlagSpec<Key> => ({
      names,
      kind: 'string',
      group: SERVER,
      help: 'log decoration',
      ignored: 'logs are one line per event (text at a terminal, JSON otherwise)',
    }),
  ),
  ...[
    ['--log-prefix', '--no-log-prefix'],
    ['--log-timestamps', '--no-log-timestamps'],
  ].map(
    ([name, negated]): FlagSpec<Key> => ({
      names: [name ?? ''],
      negated: [negated ?? ''],
      kind: 'bool',
      group: SERVER,
      help: 'log decoration',
      ignored: 'logs are one line per event (text at a terminal, JSON otherwise)',
    }),
  ),
  // ----- this server -----
  {
    names: ['--log-format'],
    env: 'LLAMA_ARG_LOG_FORMAT',
    kind: 'enum',
    key: 'logFormat',
    choices: ['text', 'json'],
    group: OURS,
    help: 'text (one readable line per request) or json lines (default: text at a terminal, else json)',
  },
  {
    names: ['--log-level'],
    env: 'LLAMA_ARG_LOG_LEVEL',
    kind: 'enum',
    key: 'logLevel',
    choices: ['error', 'warn', 'info', 'debug'],
    group: OURS,
    help: 'server log level (default info)',
  },
  {
    names: ['--objective-priority'],
    env: 'LLAMA_ARG_OBJECTIVE_PRIORITY',
    kind: 'list',
    key: 'objectivePriorities',
    value: 'NAME=P',
    group: OURS,
    help: 'requests whose x-llm-d-inference-objective (or x-gateway-inference-objective) header is NAME get priority P (higher first; repeat, or comma-separate)',
  },
  {
    names: ['--trust-proxy'],
    env: 'LLAMA_ARG_TRUST_PROXY',
    kind: 'list',
    key: 'trustProxy',
    value: 'ADDRESSES',
    group: OURS,
    help: "proxy addresses (or CIDRs) whose X-Forwarded-For gives the client's address, the last-resort fairness key",
  },
  {
    names: ['--prefill-chunk'],
    env: 'LLAMA_ARG_PREFILL_CHUNK',
    kind: 'int',
    key: 'prefillChunk',
    min: 1,
    max: 1 << 20,
    group: OURS,
    help: "tokens one step may carry: the generating slots' next tokens first, prompt chunks fill the rest; smaller keeps running streams' inter-token latency down while long prompts prefill (default: -b)",
  },
  {
    names: ['--step-trace'],
    kind: 'string',
    key: 'stepTrace',
    value: 'FILE',
    group: OURS,
    help: "profiling: append a JSON line per decoding step (its time, llama_decode's share, the batch) and per request's end (where its first token's time went) and prompt-cache event to FILE",
  },
  {
    names: ['--max-queue'],
    env: 'LLAMA_ARG_MAX_QUEUE',
    kind: 'int',
    key: 'maxQueue',
    min: 0,
    max: 1 << 20,
    group: OURS,
    help: 'requests waiting for a slot before answering 429 (default 64)',
  },
  {
    names: ['--max-queue-tokens'],
    env: 'LLAMA_ARG_MAX_QUEUE_TOKENS',
    kind: 'int',
    key: 'maxQueueTokens',
    min: 1,
    max: 1 << 30,
    group: OURS,
    help: 'prompt tokens waiting for a slot before answering 429 (default 16 slot contexts)',
  },
  {
    names: ['--shutdown-grace'],
    env: 'LLAMA_ARG_SHUTDOWN_GRACE',
    kind: 'int',
    key: 'shutdownGraceSeconds',
    min: 0,
    max: 3600,
    group: OURS,
    help: 'seconds in-flight requests get to finish on SIGTERM/SIGINT (default 10)',
  },
  {
    names: ['--body-limit'],
    env: 'LLAMA_ARG_BODY_LIMIT',
    kind: 'int',
    key: 'bodyLimitBytes',
    min: 1024,
    max: 1 << 30,
    group: OURS,
    help: 'largest request body in bytes (default 1048576)',
  },
  {
    names: ['--headers-timeout'],
    env: 'LLAMA_ARG_HEADERS_TIMEOUT',
    kind: 'int',
    key: 'headersTimeoutSeconds',
    min: 1,
    max: 3600,
    group: OURS,
    help: 'seconds a client has to send its request headers; then 408 and the connection closes (default 30)',
  },
  {
    names: ['--body-timeout'],
    env: 'LLAMA_ARG_BODY_TIMEOUT',
    kind: 'int',
    key: 'bodyTimeoutSeconds',
    min: 1,
    max: 3600,
    group: OURS,
    help: 'seconds a client has to send its whole request, headers and body (default 60)',
  },
  {
    names: ['--keep-alive-timeout'],
    env: 'LLAMA_ARG_KEEP_ALIVE_TIMEOUT',
    kind: 'int',
    key: 'keepAliveTimeoutSeconds',
    min: 1,
    max: 3600,
    group: OURS,
    help: "seconds an idle keep-alive connection stays open (default 5, llama-server's)",
  },
  {
    names: ['--keep-alive-max-requests'],
    env: 'LLAMA_ARG_KEEP_ALIVE_MAX_REQUESTS',
    kind: 'int',
    key: 'keepAliveMaxRequests',
    min: 0,
    max: 1 << 20,
    group: OURS,
    help: "requests one connection may carry before it is closed (default 100, llama-server's; 0: no limit)",
  },
  {
    names: ['--max-connections'],
    env: 'LLAMA_ARG_MAX_CONNECTIONS',
    kind: 'int',
    key: 'maxConnections',
    min: 0,
    max: 1 << 20,
    group: OURS,
    help: 'open connections; more are closed at accept (default 1024; 0: no limit)',
  },
  {
    names: ['--max-json-depth'],
    env: 'LLAMA_ARG_MAX_JSON_DEPTH',
    kind: 'int',
    key: 'maxJsonDepth',
    min: 8,
    max: 4096,
    group: OURS,
    help: 'deepest nesting of arrays and objects in a request body (default 64)',
  },
  {
    names: ['--max-messages'],
    env: 'LLAMA_ARG_MAX_MESSAGES',
    kind: 'int',
    key: 'maxMessages',
    min: 1,
    max: 1 << 20,
    group: OURS,
    help: 'messages in one chat request (default 2048)',
  },
  {
    names: ['--max-stop-strings'],
    env: 'LLAMA_ARG_MAX_STOP_STRINGS',
    kind: 'int',
    key: 'maxStopStrings',
    min: 1,
    max: 1024,
    group: OURS,
    help: 'stop strings in one request (default 16)',
  },
  {
    names: ['--max-stop-length'],
    env: 'LLAMA_ARG_MAX_STOP_LENGTH',
    kind: 'int',
    key: 'maxStopLength',
    min: 1,
    max: 1 << 16,
    group: OURS,
    help: 'characters in one stop string (default 256)',
  },
  {
    names: ['--max-logit-bias'],
    env: 'LLAMA_ARG_MAX_LOGIT_BIAS',
    kind: 'int',
    key: 'maxLogitBias',
    min: 1,
    max: 1 << 20,
    group: OURS,
    help: 'token biases in one request, text keys counted by their tokens (default 1024)',
  },
  {
    names: ['--max-tools'],
    env: 'LLAMA_ARG_MAX_TOOLS',
    kind: 'int',
    key: 'maxTools',
    min: 1,
    max: 1 << 16,
    group: OURS,
    help: "tools in one chat request (default 128, OpenAI's)",
  },
  {
    names: ['--max-schema-bytes'],
    env: 'LLAMA_ARG_MAX_SCHEMA_BYTES',
    kind: 'int',
    key: 'maxSchemaBytes',
    min: 1024,
    max: 1 << 30,
    group: OURS,
    help: 'bytes of one JSON Schema (response_format, json_schema, a tool) as JSON (default 65536)',
  },
  {
    names: ['--max-grammar-bytes'],
    env: 'LLAMA_ARG_MAX_GRAMMAR_BYTES',
    kind: 'int',
    key: 'maxGrammarBytes',
    min: 1024,
    max: 1 << 30,
    group: OURS,
    help: "bytes of a request's GBNF grammar (default 65536)",
  },
  {
    names: ['--vram-budget'],
    env: 'LLAMA_ARG_VRAM_BUDGET',
    kind: 'size',
    key: 'vramBudgetBytes',
    group: OURS,
    help: 'fit the model into this much VRAM (e.g. 1GiB): plans -ngl, -c, -np, -ub, -ctk; flags you give are kept',
  },
];

export function parseServeConfig(
  argv: readonly string[],
  env: Readonly<Record<string, string | undefined>> = process.env,
): ServeConfig {
  const parsed = parseFlags(FLAGS, argv, env);
  const config = { ...defaultServeConfig(), ...parsed.values } as ServeConfig;
  config.explicit = parsed.explicit;
  config.warnings = parsed.warnings;
  // As llama-server: one KV pool shared by the slots unless -np is given (then each slot has -c/-np), and
  // --kv-unified / --no-kv-unified decide when given.
  if (config.kvUnified === undefined) config.kvUnified = !parsed.explicit.has('parallel');
  if (!parsed.explicit.has('ubatchSize') || config.ubatchSize > config.batchSize)
    config.ubatchSize = Math.min(config.ubatchSize, config.batchSize);
  if (config.batchSize < config.parallel)
    throw new FlagError(`--batch-size (${config.batchSize}) must be at least --parallel (${config.parallel})`);
  const quantizedV = config.kvTypeV !== 'f16' && config.kvTypeV !== 'f32' && config.kvTypeV !== 'bf16';
  // llama.cpp quantizes V only inside flash attention.
  if (quantizedV && config.flashAttn === 'off')
    throw new FlagError(`a quantized V cache (-ctv ${config.kvTypeV}) needs flash attention (--flash-attn auto or on)`);
  if ((config.sslKeyFile === undefined) !== (config.sslCertFile === undefined))
    throw new FlagError('HTTPS needs both --ssl-key-file and --ssl-cert-file');
  if (config.headersTimeoutSeconds > config.bodyTimeoutSeconds)
    throw new FlagError(
      `--headers-timeout (${config.headersTimeoutSeconds}) must be at most --body-timeout (${config.bodyTimeoutSeconds}): the headers are part of the request`,
    );
  if (config.grammar !== undefined && (config.jsonSchema !== undefined || config.jsonSchemaFile !== undefined))
    throw new FlagError('--grammar and --json-schema cannot be used together');
  if ((config.pooling as string | undefined) === 'rank')
    throw new FlagError('--pooling rank is for reranking, which is not offered: use none, mean, cls or last');
  if (config.pooling !== undefined && !config.embeddings)
    config.warnings = [...config.warnings, '--pooling applies to --embeddings only; it changes nothing here'];
  try {
    parseObjectivePriorities(config.objectivePriorities);
  } catch (err) {
    throw new FlagError(`--objective-priority: ${(err as Error).message}`);
  }
  return config;
}

/** Context per slot: -c split over the slots, else 4096, never above what the model was trained on. */
export function slotContext(config: Pick<ServeConfig, 'ctxSize' | 'parallel'>, nCtxTrain: number): number {
  const total = config.ctxSize === 0 ? nCtxTrain : config.ctxSize;
  const wanted = total !== undefined && total > 0 ? Math.floor(total / config.parallel) : 4096;
  return Math.max(64, Math.min(wanted, nCtxTrain > 0 ? nCtxTrain : wanted));
}

export function serveUsage(): string {
  return flagUsage(
    FLAGS,
    "Usage: npm start -- [options]\n\nAn OpenAI-compatible server that takes llama-server's flags. Routes: POST /v1/chat/completions,\n/v1/completions, /completion, /tokenize, /detokenize, /apply-template; GET /v1/models, /health, /props, /slots,\n/metrics (with --metrics); with --embeddings: POST /v1/embeddings, /embeddings.",
  );
}

/** The flag table of docs/COMPATIBILITY.md (scripts/update-compat-doc.ts writes it there). */
export function serveFlagTable(): string {
  return flagTable(FLAGS);
}
