// Command-line options of the load generator. Every error names the flag it is about (exit code 2).
import type { Command } from '../../flags/command.ts';
import { FlagError, type FlagSpec, parseFlags } from '../../flags/parse.ts';

export interface LoadgenOptions {
  /** Server base URL without a trailing slash or /v1. */
  url: string;
  ranks: number;
  /** Total across ranks. */
  requests: number;
  maxTokens: number;
  promptTokens: number;
  /** ~tokens of a system prompt all requests share (0: none). */
  systemTokens: number;
  /** Each rank is one growing conversation (closed loop only). */
  multiTurn: boolean;
  /** Open loop at this many requests/s overall; null: closed loop. */
  rate: number | null;
  apiKey: string | null;
  /** null: the first model the server lists at /v1/models. */
  model: string | null;
  jsonFile: string | null;
  htmlFile: string | null;
  sloTtftMs: number | null;
  sloTpotMs: number | null;
  seed: number;
  /** Per request, from send to the end of its stream. */
  timeoutMs: number;
  /** Each rank is an MPI process (mpi.ts); rank 0 coordinates and reports. */
  mpi: boolean;
  /** Rank 0's address for the other MPI ranks (--coordinator), null: the default. */
  coordinator: string | null;
  /** --ranks was given (under MPI it must agree with the world size). */
  ranksGiven: boolean;
}

export const DEFAULT_URL = 'http://127.0.0.1:8090';

/** Accepts http(s)://host[:port][/prefix][/v1][/]; returns it without /v1 and trailing slashes. */
export function normalizeBaseUrl(value: string): string {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new RangeError(`must be an http:// or https:// URL, got '${value}'`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:')
    throw new RangeError(`must be an http:// or https:// URL, got '${value}'`);
  if (url.search || url.hash) throw new RangeError(`must not have a query or fragment, got '${value}'`);
  const path = url.pathname.replace(/\/+$/, '').replace(/\/v1$/, '');
  return `${url.origin}${path}`;
}

/** The shape of the load, shared with bench:compare (which runs this load against two servers). */
export const LOAD_SHAPE_FLAGS: readonly FlagSpec<
  'maxTokens' | 'promptTokens' | 'systemTokens' | 'multiTurn' | 'rate'
>[] = [
  {
    names: ['--max-tokens'],
    kind: 'int',
    key: 'maxTokens',
    value: 'K',
    min: 1,
    default: '64',
    help: 'max_tokens of each request',
  },
  {
    names: ['--prompt-tokens'],
    kind: 'int',
    key: 'promptTokens',
    value: 'P',
    min: 1,
    default: '128',
    help: 'approximate prompt length in tokens, at ~4 characters per token',
  },
  {
    names: ['--system-tokens'],
    kind: 'int',
    key: 'systemTokens',
    value: 'S',
    min: 0,
    default: '0',
    help: 'a system prompt of ~S tokens that every request starts with, the same for all ranks (a shared prefix)',
  },
  {
    names: ['--multi-turn'],
    kind: 'bool',
    key: 'multiTurn',
    default: 'false',
    help: "each rank is one conversation: its every request resends the rank's earlier turns and the replies it got (closed loop)",
  },
  {
    names: ['--rate'],
    kind: 'float',
    key: 'rate',
    value: 'R',
    above: 0,
    help: 'open loop: Poisson arrivals at R requests/s overall (default: closed loop, each rank sends its next request when the previous one ends)',
  },
];

type Key = Exclude<keyof LoadgenOptions, 'ranksGiven'>;

const LOADGEN_FLAGS: readonly FlagSpec<Key>[] = [
  {
    names: ['--url'],
    kind: 'string',
    key: 'url',
    value: 'URL',
    default: DEFAULT_URL,
    parse: (v) => normalizeBaseUrl(v as string),
    help: 'server base URL (a trailing /v1 is accepted)',
  },
  { names: ['--ranks'], kind: 'int', key: 'ranks', min: 1, default: '2', help: 'concurrent client processes' },
  {
    names: ['--requests'],
    kind: 'int',
    key: 'requests',
    value: 'M',
    min: 1,
    default: '10',
    help: 'requests in total, split evenly across ranks',
  },
  ...LOAD_SHAPE_FLAGS,
  { names: ['--api-key'], kind: 'string', key: 'apiKey', value: 'KEY', help: 'sent as Authorization: Bearer KEY' },
  {
    names: ['--model'],
    kind: 'string',
    key: 'model',
    value: 'ID',
    help: 'model field of the requests (default: the first model at /v1/models)',
  },
  {
    names: ['--json'],
    kind: 'string',
    key: 'jsonFile',
    value: 'FILE',
    help: "write all figures and every request's timings as JSON",
  },
  {
    names: ['--html'],
    kind: 'string',
    key: 'htmlFile',
    value: 'FILE',
    help: 'write a self-contained HTML report (CDFs, tokens/s over time, rank timelines)',
  },
  {
    names: ['--slo-ttft'],
    kind: 'float',
    key: 'sloTtftMs',
    value: 'MS',
    above: 0,
    help: 'goodput counts requests with TTFT <= MS',
  },
  {
    names: ['--slo-tpot'],
    kind: 'float',
    key: 'sloTpotMs',
    value: 'MS',
    above: 0,
    help: 'goodput counts requests with TPOT <= MS',
  },
  {
    names: ['--seed'],
    kind: 'int',
    key: 'seed',
    value: 'S',
    min: 0,
    max: 0xffffffff,
    default: '1',
    help: 'seed of the prompt text and of the arrival times',
  },
  {
    names: ['--timeout'],
    kind: 'float',
    key: 'timeoutMs',
    value: 'S',
    above: 0,
    default: '600',
    parse: (v) => (v as number) * 1000,
    help: 'per-request timeout in seconds',
  },
  {
    names: ['--mpi'],
    kind: 'bool',
    key: 'mpi',
    default: 'false',
    help: "one rank per MPI process (rank and size from mpirun's environment); rank 0 coordinates over TCP and prints the one merged report",
  },
  {
    names: ['--coordinator'],
    kind: 'string',
    key: 'coordinator',
    value: 'H:P',
    help: "rank 0's address as the other ranks reach it (default 127.0.0.1:29517: every rank on one host; across hosts, the host mpirun puts rank 0 on, e.g. node0:29517)",
  },
];

export const LOADGEN_COMMAND: Command = {
  name: 'bench',
  synopsis: `Usage: npm run bench -- [--url URL] [--ranks N] [--requests M] [--max-tokens K] [--prompt-tokens P]
       [--rate R] [--api-key KEY] [--model ID] [--json FILE] [--html FILE]
       [--slo-ttft MS] [--slo-tpot MS] [--seed S] [--timeout S]
       mpirun -np N npm run -s bench -- --mpi [--coordinator HOST:PORT] [options]

Streams chat completions from N client processes (ranks) released together, then prints latency
(TTFT, E2E, TPOT, ITL) and throughput.`,
  flags: LOADGEN_FLAGS,
};

/** Parses the load generator's flags; throws a FlagError that names the flag. */
export function parseLoadgenArgs(argv: readonly string[]): LoadgenOptions {
  const { values, explicit } = parseFlags(LOADGEN_FLAGS, argv, {});
  const v = values as Pick<
    LoadgenOptions,
    | 'url'
    | 'ranks'
    | 'requests'
    | 'maxTokens'
    | 'promptTokens'
    | 'systemTokens'
    | 'multiTurn'
    | 'seed'
    | 'timeoutMs'
    | 'mpi'
  > &
    Partial<LoadgenOptions>;
  if (v.coordinator !== undefined && !v.mpi) throw new FlagError('--coordinator is for --mpi runs');
  if (v.multiTurn && v.rate !== undefined) {
    throw new FlagError('--multi-turn needs the closed loop: a turn is sent once the reply to the one before it is in');
  }
  // Under MPI the world size is the rank count; runLoadgen checks it against --requests.
  if (!v.mpi && v.ranks > v.requests) {
    throw new FlagError(
      `--ranks (${v.ranks}) must not exceed --requests (${v.requests}): every rank sends at least one request`,
    );
  }
  return {
    url: v.url,
    ranks: v.ranks,
    requests: v.requests,
    maxTokens: v.maxTokens,
    promptTokens: v.promptTokens,
    systemTokens: v.systemTokens,
    multiTurn: v.multiTurn,
    rate: v.rate ?? null,
    apiKey: v.apiKey ?? null,
    model: v.model ?? null,
    jsonFile: v.jsonFile ?? null,
    htmlFile: v.htmlFile ?? null,
    sloTtftMs: v.sloTtftMs ?? null,
    sloTpotMs: v.sloTpotMs ?? null,
    seed: v.seed,
    timeoutMs: v.timeoutMs,
    mpi: v.mpi,
    coordinator: v.coordinator ?? null,
    ranksGiven: explicit.has('ranks'),
  };
}
