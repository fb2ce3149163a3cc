// Command-line options of the load generator. Every error names the flag it is about (exit code 2).
import { parseArgs } from 'node:util';

export interface LoadgenOptions {
  /** Server base URL without a trailing slash or /v1. */
  url: string;
  ranks: number;
  /** Total across ranks. */
  requests: number;
  maxTokens: number;
  promptTokens: number;
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

export const LOADGEN_USAGE = `Usage: npm run bench -- [--url URL] [--ranks N] [--requests M] [--max-tokens K] [--prompt-tokens P]
       [--rate R] [--api-key KEY] [--model ID] [--json FILE] [--html FILE]
       [--slo-ttft MS] [--slo-tpot MS] [--seed S] [--timeout S]
       mpirun -np N npm run -s bench -- --mpi [--coordinator HOST:PORT] [options]

Streams chat completions from N client processes (ranks) released together, then prints latency
(TTFT, E2E, TPOT, ITL) and throughput.

  --url URL            server base URL (default ${DEFAULT_URL}; a trailing /v1 is accepted)
  --ranks N            concurrent client processes (default 2)
  --requests M         requests in total, split evenly across ranks (default 10)
  --max-tokens K       max_tokens of each request (default 64)
  --prompt-tokens P    approximate prompt length in tokens, at ~4 characters per token (default 128)
  --rate R             open loop: Poisson arrivals at R requests/s overall (default: closed loop,
                       each rank sends its next request when the previous one ends)
  --api-key KEY        sent as Authorization: Bearer KEY
  --model ID           model field of the requests (default: the first model at /v1/models)
  --json FILE          write all figures and every request's timings as JSON
  --html FILE          write a self-contained HTML report (CDFs, tokens/s over time, rank timelines)
  --slo-ttft MS        goodput counts requests with TTFT <= MS
  --slo-tpot MS        goodput counts requests with TPOT <= MS
  --seed S             seed of the prompt text and of the arrival times (default 1)
  --timeout S          per-request timeout in seconds (default 600)
  --mpi                one rank per MPI process (rank and size from mpirun's environment); rank 0
                       coordinates over TCP and prints the one merged report
  --coordinator H:P    rank 0's address as the other ranks reach it (default 127.0.0.1:29517: every rank
                       on one host; across hosts, the host mpirun puts rank 0 on, e.g. node0:29517)
`;

/** A bad command line: the message names the flag. */
export class UsageError extends Error {
  override name = 'UsageError';
}

function integer(flag: string, value: string | undefined, fallback: number, min: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (value.trim() === '' || !Number.isInteger(n) || n < min) {
    throw new UsageError(`--${flag} must be an integer >= ${min}, got '${value}'`);
  }
  return n;
}

function positive(flag: string, value: string | undefined): number | null {
  if (value === undefined) return null;
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n) || n <= 0) {
    throw new UsageError(`--${flag} must be a number > 0, got '${value}'`);
  }
  return n;
}

function nonEmpty(flag: string, value: string | undefined): string | null {
  if (value === undefined) return null;
  if (value.trim() === '') throw new UsageError(`--${flag} must not be empty`);
  return value;
}

/** Accepts http(s)://host[:port][/prefix][/v1][/]; returns it without /v1 and trailing slashes. */
export function normalizeBaseUrl(value: string): string {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new UsageError(`--url must be an http:// or https:// URL, got '${value}'`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new UsageError(`--url must be an http:// or https:// URL, got '${value}'`);
  }
  if (url.search || url.hash) throw new UsageError(`--url must not have a query or fragment, got '${value}'`);
  const path = url.pathname.replace(/\/+$/, '').replace(/\/v1$/, '');
  return `${url.origin}${path}`;
}

export function parseLoadgenArgs(argv: readonly string[]): LoadgenOptions {
  let values;
  try {
    ({ values } = parseArgs({
      args: [...argv],
      options: {
        url: { type: 'string' },
        ranks: { type: 'string' },
        requests: { type: 'string' },
        'max-tokens': { type: 'string' },
        'prompt-tokens': { type: 'string' },
        rate: { type: 'string' },
        'api-key': { type: 'string' },
        model: { type: 'string' },
        json: { type: 'string' },
        html: { type: 'string' },
        'slo-ttft': { type: 'string' },
        'slo-tpot': { type: 'string' },
        seed: { type: 'string' },
        timeout: { type: 'string' },
        mpi: { type: 'boolean' },
        coordinator: { type: 'string' },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const ranks = integer('ranks', values.ranks, 2, 1);
  const requests = integer('requests', values.requests, 10, 1);
  const mpi = values.mpi === true;
  if (values.coordinator !== undefined && !mpi) throw new UsageError('--coordinator is for --mpi runs');
  // Under MPI the world size is the rank count; runLoadgen checks it against --requests.
  if (!mpi && ranks > requests) {
    throw new UsageError(
      `--ranks (${ranks}) must not exceed --requests (${requests}): every rank sends at least one request`,
    );
  }
  const seed = integer('seed', values.seed, 1, 0);
  if (seed > 0xffffffff) throw new UsageError(`--seed must be at most ${0xffffffff}, got '${values.seed}'`);
  return {
    url: normalizeBaseUrl(values.url ?? DEFAULT_URL),
    ranks,
    requests,
    maxTokens: integer('max-tokens', values['max-tokens'], 64, 1),
    promptTokens: integer('prompt-tokens', values['prompt-tokens'], 128, 1),
    rate: positive('rate', values.rate),
    apiKey: nonEmpty('api-key', values['api-key']),
    model: nonEmpty('model', values.model),
    jsonFile: nonEmpty('json', values.json),
    htmlFile: nonEmpty('html', values.html),
    sloTtftMs: positive('slo-ttft', values['slo-ttft']),
    sloTpotMs: positive('slo-tpot', values['slo-tpot']),
    seed,
    timeoutMs: (positive('timeout', values.timeout) ?? 600) * 1000,
    mpi,
    coordinator: nonEmpty('coordinator', values.coordinator),
    ranksGiven: values.ranks !== undefined,
  };
}
