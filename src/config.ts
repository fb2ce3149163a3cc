// Command-line flags and environment variables of `npm start`. Flags that llama-server users know keep
// llama-server's names and environment variables (LLAMA_ARG_*); ours follow the same pattern.
// Pure: parseServeConfig(argv, env) returns the config or throws ConfigError naming the bad flag.
import { availableParallelism } from 'node:os';
import { parseSize } from './fit/size.ts';
import { parseObjectivePriorities } from './server/client-key.ts';

export class ConfigError extends Error {}

export interface ServeConfig {
  /** undefined: serve the generated demo model. */
  model: string | undefined;
  alias: string | undefined;
  host: string;
  port: number;
  /** Total context across slots (llama-server's -c); each slot gets ctxSize / parallel. */
  ctxSize: number | undefined;
  parallel: number;
  gpuLayers: number;
  batchSize: number;
  ubatchSize: number;
  threads: number;
  flashAttn: 'auto' | 'on' | 'off';
  kvType: 'f16' | 'q8_0';
  apiKeys: string[];
  /** NAME=PRIORITY: the scheduler priority of requests for an InferenceObjective (the router's objective header). */
  objectivePriorities: string[];
  /** Proxies (addresses or CIDRs) whose X-Forwarded-For names the client. */
  trustProxy: string[];
  maxQueue: number;
  maxQueueTokens: number | undefined;
  timeoutSeconds: number;
  shutdownGraceSeconds: number;
  bodyLimitBytes: number;
  mlock: boolean;
  mmap: boolean;
  /** Serve the web page at / (--no-webui: off). */
  webui: boolean;
  logLevel: 'error' | 'warn' | 'info' | 'debug';
  /** Jinja source or a built-in template name (--chat-template); undefined: the model's. */
  chatTemplate: string | undefined;
  /** A file holding the template (--chat-template-file); wins over chatTemplate. */
  chatTemplateFile: string | undefined;
  /** false: llama.cpp's legacy renderer (--no-jinja). */
  jinja: boolean;
  reasoningFormat: 'none' | 'deepseek' | 'deepseek-legacy' | 'auto';
  /** -rea/--reasoning: thinking on templates that support it. */
  reasoning: 'on' | 'off' | 'auto';
  /** Template variables for every request (JSON object). */
  chatTemplateKwargs: string | undefined;
  /** Plan GPU layers, slots, context, KV type and ubatch to fit this many bytes of VRAM (src/fit). */
  vramBudgetBytes: number | undefined;
  help: boolean;
  /** Settings given by a flag or an environment variable (a VRAM plan keeps them and plans the rest). */
  explicit: ReadonlySet<keyof ServeConfig>;
}

type Kind = 'string' | 'int' | 'bool' | 'list' | 'enum' | 'size';

interface FlagSpec {
  names: string[];
  /** Boolean flags: names that set the key to false (--no-jinja). */
  negatedBy?: string[];
  env: string;
  kind: Kind;
  key: keyof ServeConfig;
  help: string;
  min?: number;
  max?: number;
  choices?: readonly string[];
}

const FLAGS: FlagSpec[] = [
  {
    names: ['-m', '--model'],
    env: 'LLAMA_ARG_MODEL',
    kind: 'string',
    key: 'model',
    help: 'GGUF model file (default: a generated demo model with random weights)',
  },
  {
    names: ['-a', '--alias'],
    env: 'LLAMA_ARG_ALIAS',
    kind: 'string',
    key: 'alias',
    help: 'model id reported by the API (default: the file name)',
  },
  {
    names: ['--host'],
    env: 'LLAMA_ARG_HOST',
    kind: 'string',
    key: 'host',
    help: 'address to listen on (default 127.0.0.1)',
  },
  {
    names: ['--port'],
    env: 'LLAMA_ARG_PORT',
    kind: 'int',
    key: 'port',
    min: 0,
    max: 65535,
    help: 'port (default 8090)',
  },
  {
    names: ['-c', '--ctx-size'],
    env: 'LLAMA_ARG_CTX_SIZE',
    kind: 'int',
    key: 'ctxSize',
    min: 64,
    max: 1 << 24,
    help: "total context over all slots (default 4096 per slot, at most the model's training context)",
  },
  {
    names: ['-np', '--parallel'],
    env: 'LLAMA_ARG_N_PARALLEL',
    kind: 'int',
    key: 'parallel',
    min: 1,
    max: 256,
    help: 'slots: requests decoded together (default 4)',
  },
  {
    names: ['-ngl', '--n-gpu-layers', '--gpu-layers'],
    env: 'LLAMA_ARG_N_GPU_LAYERS',
    kind: 'int',
    key: 'gpuLayers',
    min: -1,
    max: 100000,
    help: 'layers to offload to the GPU (default -1: all)',
  },
  {
    names: ['-b', '--batch-size'],
    env: 'LLAMA_ARG_BATCH',
    kind: 'int',
    key: 'batchSize',
    min: 1,
    max: 1 << 20,
    help: 'tokens per decoding step (default 512)',
  },
  {
    names: ['-ub', '--ubatch-size'],
    env: 'LLAMA_ARG_UBATCH',
    kind: 'int',
    key: 'ubatchSize',
    min: 1,
    max: 1 << 20,
    help: 'physical batch size (default 512)',
  },
  {
    names: ['-t', '--threads'],
    env: 'LLAMA_ARG_THREADS',
    kind: 'int',
    key: 'threads',
    min: 1,
    max: 1024,
    help: 'CPU threads (default: all cores)',
  },
  {
    names: ['-fa', '--flash-attn'],
    env: 'LLAMA_ARG_FLASH_ATTN',
    kind: 'enum',
    key: 'flashAttn',
    choices: ['auto', 'on', 'off'],
    help: 'flash attention: auto|on|off (default auto)',
  },
  {
    names: ['-ctk', '--cache-type'],
    env: 'LLAMA_ARG_CACHE_TYPE_K',
    kind: 'enum',
    key: 'kvType',
    choices: ['f16', 'q8_0'],
    help: 'KV cache type: f16|q8_0 (default f16)',
  },
  {
    names: ['--api-key'],
    env: 'LLAMA_API_KEY',
    kind: 'list',
    key: 'apiKeys',
    help: 'require this Bearer key (repeat, or comma-separate in the env var, for several)',
  },
  {
    names: ['--objective-priority'],
    env: 'LLAMA_ARG_OBJECTIVE_PRIORITY',
    kind: 'list',
    key: 'objectivePriorities',
    help: 'NAME=P: requests whose x-llm-d-inference-objective (or x-gateway-inference-objective) header is NAME get priority P (higher first; repeat, or comma-separate)',
  },
  {
    names: ['--trust-proxy'],
    env: 'LLAMA_ARG_TRUST_PROXY',
    kind: 'list',
    key: 'trustProxy',
    help: "proxy addresses (or CIDRs) whose X-Forwarded-For gives the client's address, the last-resort fairness key",
  },
  {
    names: ['--max-queue'],
    env: 'LLAMA_ARG_MAX_QUEUE',
    kind: 'int',
    key: 'maxQueue',
    min: 0,
    max: 1 << 20,
    help: 'requests waiting for a slot before answering 429 (default 64)',
  },
  {
    names: ['--max-queue-tokens'],
    env: 'LLAMA_ARG_MAX_QUEUE_TOKENS',
    kind: 'int',
    key: 'maxQueueTokens',
    min: 1,
    max: 1 << 30,
    help: 'prompt tokens waiting for a slot before answering 429 (default 16 slot contexts)',
  },
  {
    names: ['--timeout'],
    env: 'LLAMA_ARG_TIMEOUT',
    kind: 'int',
    key: 'timeoutSeconds',
    min: 1,
    max: 86400,
    help: 'seconds a request may take, queue included (default 600)',
  },
  {
    names: ['--shutdown-grace'],
    env: 'LLAMA_ARG_SHUTDOWN_GRACE',
    kind: 'int',
    key: 'shutdownGraceSeconds',
    min: 0,
    max: 3600,
    help: 'seconds in-flight requests get to finish on SIGTERM/SIGINT (default 10)',
  },
  {
    names: ['--body-limit'],
    env: 'LLAMA_ARG_BODY_LIMIT',
    kind: 'int',
    key: 'bodyLimitBytes',
    min: 1024,
    max: 1 << 30,
    help: 'largest request body in bytes (default 1048576)',
  },
  { names: ['--mlock'], env: 'LLAMA_ARG_MLOCK', kind: 'bool', key: 'mlock', help: 'lock the model in RAM' },
  {
    names: ['--no-mmap'],
    env: 'LLAMA_ARG_NO_MMAP',
    kind: 'bool',
    key: 'mmap',
    help: 'read the model instead of memory-mapping it',
  },
  {
    names: ['--no-webui', '--no-ui'],
    env: 'LLAMA_ARG_NO_WEBUI',
    kind: 'bool',
    key: 'webui',
    help: 'do not serve the web page (chat and live view) at /',
  },
  {
    names: ['--vram-budget'],
    env: 'LLAMA_ARG_VRAM_BUDGET',
    kind: 'size',
    key: 'vramBudgetBytes',
    help: 'fit the model into this much VRAM (e.g. 1GiB): plans -ngl, -c, -np, -ub, -ctk; flags you give are kept',
  },
  {
    names: ['--log-level'],
    env: 'LLAMA_ARG_LOG_LEVEL',
    kind: 'enum',
    key: 'logLevel',
    choices: ['error', 'warn', 'info', 'debug'],
    help: 'server log level (default info)',
  },
  {
    names: ['--chat-template'],
    env: 'LLAMA_ARG_CHAT_TEMPLATE',
    kind: 'string',
    key: 'chatTemplate',
    help: "Jinja chat template, or a built-in name (chatml, llama3, gemma, ...) (default: the model's, chatml when it has none)",
  },
  {
    names: ['--chat-template-file'],
    env: 'LLAMA_ARG_CHAT_TEMPLATE_FILE',
    kind: 'string',
    key: 'chatTemplateFile',
    help: 'file holding a Jinja chat template',
  },
  {
    names: ['--jinja'],
    negatedBy: ['--no-jinja'],
    env: 'LLAMA_ARG_JINJA',
    kind: 'bool',
    key: 'jinja',
    help: "render chat templates with llama.cpp's Jinja engine (default); --no-jinja: its legacy renderer (no tools)",
  },
  {
    names: ['--reasoning-format'],
    env: 'LLAMA_ARG_THINK',
    kind: 'enum',
    key: 'reasoningFormat',
    choices: ['none', 'deepseek', 'deepseek-legacy', 'auto'],
    help: 'where thoughts go: none (left in content) | deepseek (message.reasoning_content) | deepseek-legacy | auto (default deepseek)',
  },
  {
    names: ['-rea', '--reasoning'],
    env: 'LLAMA_ARG_REASONING',
    kind: 'enum',
    key: 'reasoning',
    choices: ['on', 'off', 'auto'],
    help: 'thinking on templates that support it: on|off|auto (default auto: as the template decides)',
  },
  {
    names: ['--chat-template-kwargs'],
    env: 'LLAMA_CHAT_TEMPLATE_KWARGS',
    kind: 'string',
    key: 'chatTemplateKwargs',
    help: 'JSON object of template variables for every request, e.g. \'{"enable_thinking":false}\'',
  },
  { names: ['-h', '--help'], env: '', kind: 'bool', key: 'help', help: 'show this help' },
];

export function defaultServeConfig(): ServeConfig {
  return {
    model: undefined,
    alias: undefined,
    host: '127.0.0.1',
    port: 8090,
    ctxSize: undefined,
    parallel: 4,
    gpuLayers: -1,
    batchSize: 512,
    ubatchSize: 512,
    threads: availableParallelism(),
    flashAttn: 'auto',
    kvType: 'f16',
    apiKeys: [],
    objectivePriorities: [],
    trustProxy: [],
    maxQueue: 64,
    maxQueueTokens: undefined,
    timeoutSeconds: 600,
    shutdownGraceSeconds: 10,
    bodyLimitBytes: 1 << 20,
    mlock: false,
    mmap: true,
    webui: true,
    logLevel: 'info',
    chatTemplate: undefined,
    chatTemplateFile: undefined,
    jinja: true,
    reasoningFormat: 'deepseek',
    reasoning: 'auto',
    chatTemplateKwargs: undefined,
    vramBudgetBytes: undefined,
    help: false,
    explicit: new Set(),
  };
}

function convert(spec: FlagSpec, raw: string, from: string): unknown {
  switch (spec.kind) {
    case 'string':
      if (raw === '') throw new ConfigError(`${from} needs a value`);
      return raw;
    case 'int': {
      const n = Number(raw);
      if (raw.trim() === '' || !Number.isInteger(n)) throw new ConfigError(`${from} must be an integer, got '${raw}'`);
      if ((spec.min !== undefined && n < spec.min) || (spec.max !== undefined && n > spec.max)) {
        throw new ConfigError(`${from} must be between ${spec.min} and ${spec.max}, got ${n}`);
      }
      return n;
    }
    case 'enum':
      if (!spec.choices?.includes(raw))
        throw new ConfigError(`${from} must be one of ${spec.choices?.join(', ')}, got '${raw}'`);
      return raw;
    case 'bool':
      if (['1', 'true', 'on', 'yes', ''].includes(raw.toLowerCase())) return true;
      if (['0', 'false', 'off', 'no'].includes(raw.toLowerCase())) return false;
      throw new ConfigError(`${from} must be true or false, got '${raw}'`);
    case 'list':
      return raw
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean);
    case 'size':
      try {
        return parseSize(raw);
      } catch (err) {
        throw new ConfigError(`${from}: ${(err as Error).message}`);
      }
  }
}

function assign(config: ServeConfig, spec: FlagSpec, value: unknown): void {
  (config.explicit as Set<keyof ServeConfig>).add(spec.key);
  // --no-mmap and --no-webui set their key to false; every other boolean flag sets its key to true.
  if (spec.key === 'mmap' || spec.key === 'webui')
    (config as unknown as Record<string, unknown>)[spec.key] = !(value as boolean);
  else if (spec.kind === 'list') {
    const list = config as unknown as Record<string, string[]>;
    list[spec.key] = [...(list[spec.key] ?? []), ...(value as string[])];
  } else (config as unknown as Record<string, unknown>)[spec.key] = value;
}

export function parseServeConfig(
  argv: readonly string[],
  env: Readonly<Record<string, string | undefined>> = process.env,
): ServeConfig {
  const config = { ...defaultServeConfig(), explicit: new Set<keyof ServeConfig>() };
  for (const spec of FLAGS) {
    const raw = spec.env ? env[spec.env] : undefined;
    if (raw !== undefined && raw !== '') assign(config, spec, convert(spec, raw, `environment variable ${spec.env}`));
  }
  const fromFlags = new Set<keyof ServeConfig>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] ?? '';
    const eq = arg.startsWith('--') ? arg.indexOf('=') : -1;
    const name = eq > 0 ? arg.slice(0, eq) : arg;
    const spec = FLAGS.find((f) => f.names.includes(name) || f.negatedBy?.includes(name));
    if (!spec) throw new ConfigError(`unknown option '${arg}' (see --help)`);
    let raw: string;
    if (spec.negatedBy?.includes(name)) {
      if (eq > 0) throw new ConfigError(`${name} takes no value`);
      raw = 'false';
    } else if (eq > 0) raw = arg.slice(eq + 1);
    else if (spec.kind === 'bool') raw = 'true';
    else {
      const next = argv[i + 1];
      if (next === undefined) throw new ConfigError(`${name} needs a value`);
      raw = next;
      i++;
    }
    // Flags replace what the environment said (lists from flags replace those from the env too).
    if (spec.kind === 'list' && !fromFlags.has(spec.key))
      (config as unknown as Record<string, string[]>)[spec.key] = [];
    fromFlags.add(spec.key);
    assign(config, spec, convert(spec, raw, name));
  }
  if (config.ubatchSize > config.batchSize) config.ubatchSize = config.batchSize;
  if (config.batchSize < config.parallel)
    throw new ConfigError(`--batch-size (${config.batchSize}) must be at least --parallel (${config.parallel})`);
  try {
    parseObjectivePriorities(config.objectivePriorities);
  } catch (err) {
    throw new ConfigError(`--objective-priority: ${(err as Error).message}`);
  }
  if (config.kvType === 'q8_0' && config.flashAttn === 'off')
    throw new ConfigError('--cache-type q8_0 needs flash attention (--flash-attn auto or on)');
  if (config.chatTemplateKwargs !== undefined) {
    let kwargs: unknown;
    try {
      kwargs = JSON.parse(config.chatTemplateKwargs);
    } catch (err) {
      throw new ConfigError(`--chat-template-kwargs is not valid JSON: ${(err as Error).message}`);
    }
    if (typeof kwargs !== 'object' || kwargs === null || Array.isArray(kwargs))
      throw new ConfigError('--chat-template-kwargs must be a JSON object');
  }
  return config;
}

/** Context per slot: -c split over the slots, else 4096, never above what the model was trained on. */
export function slotContext(config: Pick<ServeConfig, 'ctxSize' | 'parallel'>, nCtxTrain: number): number {
  const wanted = config.ctxSize !== undefined ? Math.floor(config.ctxSize / config.parallel) : 4096;
  return Math.max(64, Math.min(wanted, nCtxTrain > 0 ? nCtxTrain : wanted));
}

export function serveUsage(): string {
  const rows = FLAGS.map((f) => {
    const value =
      f.kind === 'bool'
        ? ''
        : f.kind === 'enum'
          ? ` ${f.choices?.join('|')}`
          : f.kind === 'int'
            ? ' N'
            : f.kind === 'size'
              ? ' SIZE'
              : ' VALUE';
    const left = `  ${[...f.names, ...(f.negatedBy ?? [])].join(', ')}${value}`;
    return `${left.padEnd(44)} ${f.help}${f.env ? ` [env ${f.env}]` : ''}`;
  });
  return `Usage: npm start -- [options]\n\nServes an OpenAI-compatible API (POST /v1/chat/completions, /v1/completions; GET /v1/models, /health, /slots, /metrics).\n\nOptions:\n${rows.join('\n')}\n`;
}
