// Command-line options of `npm run bench:router`. Pure: parsing only; every error names its flag.
import type { Command } from '../../flags/command.ts';
import { FlagError, type FlagSpec, parseFlags } from '../../flags/parse.ts';
import type { CachedModel } from '../../tools/model-cache.ts';

export const ROUTER_TARGETS = ['ours', 'llama-server'] as const;
export type RouterTarget = (typeof ROUTER_TARGETS)[number];

export type RouterBenchQuant = CachedModel['quant'];
const QUANT_CHOICES: readonly RouterBenchQuant[] = ['F16', 'Q8_0', 'Q4_K_M'];

export interface RouterBenchOptions {
  /** The servers measured, in this order within each run. */
  targets: RouterTarget[];
  /** Runs of every target, alternating; figures are medians over them. */
  runs: number;
  /** max_tokens of every request. */
  tokens: number;
  /** Concurrent clients of each phase: all on model A in phase one, half on A and half on B in phase two. */
  clients: number;
  /** Requests each client sends, one after the other, in each phase. */
  requests: number;
  /** llama-server's binary; null: build-tools/bin/llama-server (built when missing). */
  llamaServer: string | null;
  /** An existing models directory; null: two generated models of --preset, cached outside the repository. */
  modelsDir: string | null;
  /** The ids of models A and B; null: the generated pair, or the first two the server lists. */
  models: [string, string] | null;
  /** What the generated models are made of (make-model's preset and quantization). */
  preset: string;
  quant: RouterBenchQuant;
  ctxSize: number;
  parallel: number;
  threads: number;
  /** Pass --ignore-eos to both servers: every answer is --tokens long. */
  ignoreEos: boolean;
  /** Further flags both servers get. */
  flags: string[];
  /** Per request and per load or unload, seconds. */
  timeoutS: number;
  json: string | null;
}

const FLAGS: readonly FlagSpec<keyof RouterBenchOptions>[] = [
  {
    names: ['--targets'],
    kind: 'list',
    key: 'targets',
    value: 'ours,llama-server',
    default: 'ours,llama-server',
    parse: (v) => {
      const list = v as string[];
      for (const t of list)
        if (!(ROUTER_TARGETS as readonly string[]).includes(t))
          throw new RangeError(`'${t}' is not one of ${ROUTER_TARGETS.join(', ')}`);
      if (new Set(list).size !== list.length) throw new RangeError('names a target twice');
      return list;
    },
    help: 'the servers measured, one after the other (never both at once)',
  },
  {
    names: ['--runs'],
    kind: 'int',
    key: 'runs',
    min: 1,
    max: 100,
    default: '3',
    help: 'runs of each target, alternating; figures are medians',
  },
  { names: ['--tokens'], kind: 'int', key: 'tokens', min: 1, default: '48', help: 'max_tokens of every request' },
  {
    names: ['--clients'],
    kind: 'int',
    key: 'clients',
    min: 2,
    default: '4',
    help: 'concurrent clients: all on model A (phase one), then half on A and half on B (phase two)',
  },
  {
    names: ['--requests'],
    kind: 'int',
    key: 'requests',
    min: 1,
    default: '3',
    help: 'requests each client sends in each phase, one after the other',
  },
  {
    names: ['--llama-server'],
    kind: 'string',
    key: 'llamaServer',
    value: 'PATH',
    help: 'llama-server binary (default: build-tools/bin/llama-server, built when missing)',
  },
  {
    names: ['--models-dir'],
    kind: 'string',
    key: 'modelsDir',
    value: 'DIR',
    help: 'an existing models directory (default: two generated --preset models with seeds 1 and 2, cached under ~/.cache)',
  },
  {
    names: ['--models'],
    kind: 'list',
    key: 'models',
    value: 'A,B',
    parse: (v) => {
      const list = v as string[];
      if (list.length !== 2 || list[0] === list[1]) throw new RangeError('must name two different models');
      return list;
    },
    help: 'model ids A and B (default: the generated pair, or the first two the server lists)',
  },
  {
    names: ['--preset'],
    kind: 'string',
    key: 'preset',
    default: 'gemma3-1b',
    help: 'make-model preset of the generated models (tiny-gemma3 for a quick try)',
  },
  {
    names: ['--quant'],
    kind: 'enum',
    key: 'quant',
    choices: QUANT_CHOICES,
    default: 'Q4_K_M',
    help: 'quantization of the generated models',
  },
  { names: ['-c', '--ctx-size'], kind: 'int', key: 'ctxSize', min: 64, default: '4096', help: '-c of both servers' },
  { names: ['-np', '--parallel'], kind: 'int', key: 'parallel', min: 1, default: '2', help: '-np of both servers' },
  { names: ['-t', '--threads'], kind: 'int', key: 'threads', min: 1, default: '2', help: '-t of both servers' },
  {
    names: ['--ignore-eos'],
    negated: ['--no-ignore-eos'],
    kind: 'bool',
    key: 'ignoreEos',
    default: 'true',
    help: 'pass --ignore-eos to both servers, so every answer is --tokens long',
  },
  {
    names: ['--flags'],
    kind: 'string',
    key: 'flags',
    value: 'FLAGS',
    parse: (v) => (v as string).split(/\s+/).filter((a) => a !== ''),
    help: "further flags for both servers, e.g. '-fa on'",
  },
  {
    names: ['--timeout'],
    kind: 'int',
    key: 'timeoutS',
    value: 'S',
    min: 1,
    default: '600',
    help: 'seconds for each request, load or unload',
  },
  { names: ['--json'], kind: 'string', key: 'json', value: 'FILE', help: 'write every run and the medians as JSON' },
];

export const ROUTER_BENCH_COMMAND: Command = {
  name: 'bench:router',
  synopsis: `Usage: npm run bench:router -- [options]

Several models in one server: starts each target in router mode (--models-dir DIR -c -np -t, the same flags for
both), loads models A and B, then measures
  phase one: --clients clients on A alone;  phase two: half of them on A and half on B at once;
  the switch: B unloaded, then one request to B (its first token against B's load time + its cold first token).
Targets: phase two tokens/s >= 0.9x phase one; switch first token <= 1.1x (load + cold first token).`,
  flags: FLAGS,
};

export function parseRouterBenchArgs(argv: readonly string[]): RouterBenchOptions {
  const v = parseFlags(FLAGS, argv, {}).values as Omit<
    RouterBenchOptions,
    'llamaServer' | 'modelsDir' | 'models' | 'flags' | 'json'
  > &
    Partial<RouterBenchOptions>;
  if (v.targets.length === 0) throw new FlagError('--targets needs at least one target');
  return {
    ...v,
    llamaServer: v.llamaServer ?? null,
    modelsDir: v.modelsDir ?? null,
    models: v.models ?? null,
    flags: v.flags ?? [],
    json: v.json ?? null,
  };
}

/** Phase two's clients: the first half on A, the rest on B. */
export function twoModelClients(clients: number, a: string, b: string): string[] {
  const onA = Math.ceil(clients / 2);
  return Array.from({ length: clients }, (_, k) => (k < onA ? a : b));
}

/** The router-mode flags both servers get, before the host and port. */
export function routerArgs(o: RouterBenchOptions, modelsDir: string): string[] {
  return [
    '--models-dir',
    modelsDir,
    '-c',
    String(o.ctxSize),
    '-np',
    String(o.parallel),
    '-t',
    String(o.threads),
    ...(o.ignoreEos ? ['--ignore-eos'] : []),
    ...o.flags,
  ];
}
