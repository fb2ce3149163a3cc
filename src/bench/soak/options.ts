// `npm run soak` flags. Every error names its flag (exit code 2).
import type { Command } from '../../flags/command.ts';
import { FlagError, type FlagSpec, parseFlags } from '../../flags/parse.ts';
import { normalizeBaseUrl } from '../loadgen/options.ts';

export interface SoakOptions {
  /** A running server (started with --metrics); null: start one (--model). */
  url: string | null;
  /** The model of the server the soak starts; null: the generated demo model. */
  model: string | null;
  minutes: number;
  /** Samples before this are the warm-up; null: a tenth of the run. */
  warmupMinutes: number | null;
  /** Clients, each a closed loop of mixed requests. */
  concurrency: number;
  /** Slots and queue of the server the soak starts (a small queue makes 429s). */
  parallel: number;
  maxQueue: number;
  ctxSize: number;
  maxTokens: number;
  sampleSeconds: number;
  /** RSS may grow this much (percent) from the end of the warm-up to the end. */
  maxRssGrowthPercent: number;
  apiKey: string | null;
  jsonFile: string | null;
  seed: number;
}

type Key = keyof SoakOptions;

const FLAGS: readonly FlagSpec<Key>[] = [
  {
    names: ['--url'],
    kind: 'string',
    key: 'url',
    value: 'URL',
    parse: (v) => normalizeBaseUrl(v as string),
    help: 'a running server, started with --metrics (default: start one with --model)',
  },
  {
    names: ['--model'],
    kind: 'string',
    key: 'model',
    value: 'FILE',
    help: 'GGUF for the server the soak starts (default: the generated demo model)',
  },
  { names: ['--minutes'], kind: 'float', key: 'minutes', above: 0, default: '30', help: 'how long the load runs' },
  {
    names: ['--warmup-minutes'],
    kind: 'float',
    key: 'warmupMinutes',
    min: 0,
    help: 'the first minutes, not counted in the RSS growth (default: a tenth of the run)',
  },
  { names: ['--concurrency'], kind: 'int', key: 'concurrency', min: 1, max: 1024, default: '12', help: 'clients' },
  {
    names: ['-np', '--parallel'],
    kind: 'int',
    key: 'parallel',
    min: 1,
    max: 64,
    default: '4',
    help: 'slots of the server the soak starts',
  },
  {
    names: ['--max-queue'],
    kind: 'int',
    key: 'maxQueue',
    min: 0,
    default: '4',
    help: 'queue of the server the soak starts (small: clients beyond slots + queue get 429)',
  },
  {
    names: ['-c', '--ctx-size'],
    kind: 'int',
    key: 'ctxSize',
    min: 64,
    default: '2048',
    help: 'KV cells of the server the soak starts',
  },
  { names: ['--max-tokens'], kind: 'int', key: 'maxTokens', min: 1, default: '48', help: 'largest max_tokens sent' },
  {
    names: ['--sample-seconds'],
    kind: 'float',
    key: 'sampleSeconds',
    above: 0,
    default: '5',
    help: 'how often RSS, event-loop lag, handles and slots are read',
  },
  {
    names: ['--max-rss-growth'],
    kind: 'float',
    key: 'maxRssGrowthPercent',
    above: 0,
    default: '5',
    help: 'the verdict fails if RSS grows more than this (percent) after the warm-up',
  },
  { names: ['--api-key'], kind: 'string', key: 'apiKey', value: 'KEY', help: 'sent as Authorization: Bearer KEY' },
  {
    names: ['--json'],
    kind: 'string',
    key: 'jsonFile',
    value: 'FILE',
    help: 'write samples, counts and verdict as JSON',
  },
  { names: ['--seed'], kind: 'int', key: 'seed', min: 0, max: 0x7fffffff, default: '1', help: 'seed of the mix' },
];

export const SOAK_COMMAND: Command = {
  name: 'soak',
  synopsis: `Usage: npm run soak -- [--minutes M] [--url URL | --model FILE] [options]

Mixed load for a long time (complete, streamed, aborted mid-stream, bad bodies, 429s from a small queue)
against a server; samples its RSS, event-loop lag, open handles and busy slots from /metrics and /slots;
prints a verdict (RSS growth after the warm-up, leaked slots, 5xx answers) and writes JSON.`,
  footer: 'Exit codes: 0 the verdict passed, 1 it failed or the server could not be reached, 2 bad arguments.',
  flags: FLAGS,
};

export function parseSoakArgs(argv: readonly string[]): SoakOptions {
  const v = parseFlags(FLAGS, argv, {}).values as Partial<SoakOptions> &
    Pick<
      SoakOptions,
      | 'minutes'
      | 'concurrency'
      | 'parallel'
      | 'maxQueue'
      | 'ctxSize'
      | 'maxTokens'
      | 'sampleSeconds'
      | 'maxRssGrowthPercent'
      | 'seed'
    >;
  if (v.url !== undefined && v.model !== undefined)
    throw new FlagError('--url and --model: give one (a running server, or a model to serve)');
  if (typeof v.warmupMinutes === 'number' && v.warmupMinutes >= v.minutes)
    throw new FlagError(`--warmup-minutes (${v.warmupMinutes}) must be shorter than --minutes (${v.minutes})`);
  return {
    url: v.url ?? null,
    model: v.model ?? null,
    minutes: v.minutes,
    warmupMinutes: v.warmupMinutes ?? null,
    concurrency: v.concurrency,
    parallel: v.parallel,
    maxQueue: v.maxQueue,
    ctxSize: v.ctxSize,
    maxTokens: v.maxTokens,
    sampleSeconds: v.sampleSeconds,
    maxRssGrowthPercent: v.maxRssGrowthPercent,
    apiKey: v.apiKey ?? null,
    jsonFile: v.jsonFile ?? null,
    seed: v.seed,
  };
}
