// The router bench's figures from its request records, and the table and JSON line it prints. Pure: no clock, no I/O.
import { median } from '../compare.ts';
import { requestTimings } from '../loadgen/stats.ts';
import type { RequestRecord } from '../loadgen/types.ts';
import type { RouterBenchOptions, RouterTarget } from './options.ts';

/** The issue's targets: two models at once keep 0.9x one model's tokens/s; a switch costs <= 1.1x load + cold TTFT. */
export const TWO_OVER_ONE_TARGET = 0.9;
export const SWITCH_RATIO_TARGET = 1.1;

/** One request as the figures need it. */
export interface TimedRequest {
  model: string;
  /** It was served: it succeeded, or only llama.cpp's chat parser refused its finished output (see timedRequest). */
  ok: boolean;
  /** Served, but the stream ended with the chat parser's error instead of usage and [DONE]. */
  parserError: boolean;
  /** null when no content arrived. */
  ttftMs: number | null;
  /** Completion tokens of a served request (usage, else content chunks); 0 for a failed one. */
  tokens: number;
  error: string | null;
}

/**
 * Random weights write invalid UTF-8 now and then (a lone byte token), which llama.cpp's chat parser refuses once the
 * answer is complete ("The model produced output that does not match the expected peg-native format"), in both
 * servers: the tokens were generated and streamed, so such a request counts as served, its tokens from its chunks.
 */
export function isParserRefusal(r: RequestRecord): boolean {
  return (
    !r.ok &&
    r.errorKind === 'stream' &&
    r.chunkMs.length > 0 &&
    /does not match the expected \S+ format/.test(r.error ?? '')
  );
}

export function timedRequest(model: string, r: RequestRecord): TimedRequest {
  const parserError = isParserRefusal(r);
  const served = r.ok || parserError;
  return {
    model,
    ok: served,
    parserError,
    ttftMs: served ? requestTimings(r).ttftMs : null,
    tokens: served ? r.outputTokens : 0,
    error: r.error,
  };
}

/** Concurrent clients' requests: wall time from the start to the end of the last response. */
export interface PhaseRecord {
  wallMs: number;
  requests: TimedRequest[];
}

export function phaseRecord(startMs: number, records: ReadonlyArray<{ model: string; record: RequestRecord }>) {
  const end = records.reduce((m, { record }) => Math.max(m, record.endMs), startMs);
  return { wallMs: end - startMs, requests: records.map(({ model, record }) => timedRequest(model, record)) };
}

export interface ModelFigures {
  tokensPerSecond: number | null;
  ttftP50Ms: number | null;
}

export interface PhaseFigures extends ModelFigures {
  ok: number;
  errors: number;
  /** Served requests the chat parser refused at the end (counted in ok). */
  parserErrors: number;
  /** The first failed request's message. */
  firstError: string | null;
  /** Each model's tokens over the whole phase's wall time, and its requests' median TTFT. */
  perModel: Record<string, ModelFigures>;
}

function modelFigures(requests: readonly TimedRequest[], wallMs: number): ModelFigures {
  const ok = requests.filter((r) => r.ok);
  const tokens = ok.reduce((n, r) => n + r.tokens, 0);
  return {
    tokensPerSecond: wallMs > 0 && ok.length > 0 ? (tokens * 1000) / wallMs : null,
    ttftP50Ms: median(ok.flatMap((r) => (r.ttftMs === null ? [] : [r.ttftMs]))),
  };
}

export function phaseFigures(p: PhaseRecord): PhaseFigures {
  const models = [...new Set(p.requests.map((r) => r.model))];
  const failed = p.requests.filter((r) => !r.ok);
  return {
    ...modelFigures(p.requests, p.wallMs),
    ok: p.requests.length - failed.length,
    errors: failed.length,
    parserErrors: p.requests.filter((r) => r.parserError).length,
    firstError: failed[0]?.error ?? null,
    perModel: Object.fromEntries(
      models.map((m) => [
        m,
        modelFigures(
          p.requests.filter((r) => r.model === m),
          p.wallMs,
        ),
      ]),
    ),
  };
}

/** One run of one target: everything measured on one fresh server, or why it stopped. */
export interface RunResult {
  target: RouterTarget;
  /** 1-based. */
  run: number;
  command: string | null;
  error: string | null;
  /** Model ids A and B. */
  models: [string, string] | null;
  /** POST /models/load to 'loaded', A then B. */
  loadMs: [number, number] | null;
  /** The first request to each model after its load. */
  coldTtftMs: [number | null, number | null] | null;
  one: PhaseFigures | null;
  two: PhaseFigures | null;
  /** POST /models/unload B to 'unloaded'. */
  unloadMs: number | null;
  /** The first token of a request to B after its unload: the load it triggers plus its prefill. */
  switchTtftMs: number | null;
  /** A stream on A while B loads: its inter-token gaps outside and during the load. */
  loadGaps: LoadGaps | null;
}

export interface LoadGaps {
  /** Median gap between A's tokens away from B's load. */
  usualMs: number;
  /** Median and largest gap that overlaps B's load. */
  duringP50Ms: number;
  duringMaxMs: number;
}

/**
 * The gaps between a stream's chunks (epoch ms), split by whether they overlap [loadStart, loadEnd]; the first two
 * chunks are left out (the role chunk and the first token: TTFT, not a gap). Null without gaps on both sides.
 */
export function loadGaps(chunkMs: readonly number[], loadStart: number, loadEnd: number): LoadGaps | null {
  const usual: number[] = [];
  const during: number[] = [];
  for (let i = 2; i < chunkMs.length; i++) {
    const from = chunkMs[i - 1] as number;
    const to = chunkMs[i] as number;
    (to > loadStart && from < loadEnd ? during : usual).push(to - from);
  }
  if (usual.length === 0 || during.length === 0) return null;
  const median = (v: number[]) => {
    const sorted = [...v].sort((a, b) => a - b);
    const mid = Math.floor(sorted.length / 2);
    return sorted.length % 2 === 1
      ? (sorted[mid] as number)
      : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
  };
  return { usualMs: median(usual), duringP50Ms: median(during), duringMaxMs: Math.max(...during) };
}

export function emptyRun(target: RouterTarget, run: number): RunResult {
  return {
    target,
    run,
    command: null,
    error: null,
    models: null,
    loadMs: null,
    coldTtftMs: null,
    one: null,
    two: null,
    unloadMs: null,
    switchTtftMs: null,
    loadGaps: null,
  };
}

const ratio = (a: number | null | undefined, b: number | null | undefined): number | null =>
  a === null || a === undefined || b === null || b === undefined || b === 0 ? null : a / b;

/** B's load plus its cold TTFT: what a switch to B should cost. */
export function switchExpectedMs(r: RunResult): number | null {
  const load = r.loadMs?.[1];
  const cold = r.coldTtftMs?.[1];
  return load === undefined || cold === undefined || cold === null ? null : load + cold;
}

export interface Metric {
  key: string;
  label: string;
  pick: (r: RunResult) => number | null | undefined;
  digits: number;
}

const perModel = (p: PhaseFigures | null, model: string | undefined) =>
  model === undefined ? undefined : p?.perModel[model]?.tokensPerSecond;

export const METRICS: readonly Metric[] = [
  { key: 'loadAMs', label: 'load A (ms)', pick: (r) => r.loadMs?.[0], digits: 0 },
  { key: 'loadBMs', label: 'load B (ms)', pick: (r) => r.loadMs?.[1], digits: 0 },
  {
    key: 'coldTtftAMs',
    label: 'cold TTFT A, first request after load (ms)',
    pick: (r) => r.coldTtftMs?.[0],
    digits: 1,
  },
  {
    key: 'coldTtftBMs',
    label: 'cold TTFT B, first request after load (ms)',
    pick: (r) => r.coldTtftMs?.[1],
    digits: 1,
  },
  { key: 'oneTokensPerSecond', label: 'one: tokens/s, A alone', pick: (r) => r.one?.tokensPerSecond, digits: 2 },
  { key: 'oneTtftP50Ms', label: 'one: TTFT p50 (ms)', pick: (r) => r.one?.ttftP50Ms, digits: 1 },
  { key: 'twoTokensPerSecond', label: 'two: tokens/s, A + B at once', pick: (r) => r.two?.tokensPerSecond, digits: 2 },
  { key: 'twoTokensPerSecondA', label: 'two: tokens/s of A', pick: (r) => perModel(r.two, r.models?.[0]), digits: 2 },
  { key: 'twoTokensPerSecondB', label: 'two: tokens/s of B', pick: (r) => perModel(r.two, r.models?.[1]), digits: 2 },
  { key: 'twoTtftP50Ms', label: 'two: TTFT p50 (ms)', pick: (r) => r.two?.ttftP50Ms, digits: 1 },
  {
    key: 'twoOverOne',
    label: `**two / one tokens/s** (target >= ${TWO_OVER_ONE_TARGET})`,
    pick: (r) => ratio(r.two?.tokensPerSecond, r.one?.tokensPerSecond),
    digits: 3,
  },
  { key: 'unloadBMs', label: 'unload B (ms)', pick: (r) => r.unloadMs, digits: 0 },
  {
    key: 'switchTtftMs',
    label: 'switch: TTFT of a request to unloaded B (ms)',
    pick: (r) => r.switchTtftMs,
    digits: 1,
  },
  { key: 'switchExpectedMs', label: 'load B + cold TTFT B (ms)', pick: switchExpectedMs, digits: 1 },
  {
    key: 'switchRatio',
    label: `**switch / (load + cold TTFT)** (target <= ${SWITCH_RATIO_TARGET})`,
    pick: (r) => ratio(r.switchTtftMs, switchExpectedMs(r)),
    digits: 3,
  },
  { key: 'gapUsualMs', label: 'stream on A: inter-token gap p50 (ms)', pick: (r) => r.loadGaps?.usualMs, digits: 1 },
  {
    key: 'gapDuringP50Ms',
    label: 'stream on A while B loads: gap p50 (ms)',
    pick: (r) => r.loadGaps?.duringP50Ms,
    digits: 1,
  },
  {
    key: 'gapDuringMaxMs',
    label: 'stream on A while B loads: largest gap (ms)',
    pick: (r) => r.loadGaps?.duringMaxMs,
    digits: 1,
  },
  {
    key: 'gapRatio',
    label: 'gap p50 during the load / usual (issue: < 2)',
    pick: (r) => ratio(r.loadGaps?.duringP50Ms, r.loadGaps?.usualMs),
    digits: 3,
  },
];

/** A metric over a target's runs: median, min, max of the runs that have it. */
export interface Spread {
  median: number | null;
  min: number | null;
  max: number | null;
  n: number;
}

export function spreadOf(values: ReadonlyArray<number | null | undefined>): Spread {
  const v = values.filter((x): x is number => typeof x === 'number' && Number.isFinite(x));
  return {
    median: median(v),
    min: v.length ? Math.min(...v) : null,
    max: v.length ? Math.max(...v) : null,
    n: v.length,
  };
}

export interface TargetSummary {
  target: RouterTarget;
  runs: number;
  failed: number;
  errors: string[];
  metrics: Record<string, Spread>;
}

/** Medians over the runs that completed; failed runs are counted and their errors kept. */
export function summarize(target: RouterTarget, runs: readonly RunResult[]): TargetSummary {
  const mine = runs.filter((r) => r.target === target);
  const done = mine.filter((r) => r.error === null);
  return {
    target,
    runs: mine.length,
    failed: mine.length - done.length,
    errors: mine.flatMap((r) => (r.error === null ? [] : [`run ${r.run}: ${r.error}`])),
    metrics: Object.fromEntries(METRICS.map((m) => [m.key, spreadOf(done.map(m.pick))])),
  };
}

export interface RouterBenchResult {
  options: RouterBenchOptions;
  modelsDir: string;
  runs: RunResult[];
}

const fmt = (v: number | null, d: number) => (v === null ? '-' : v.toFixed(d));

export function formatSpread(s: Spread, digits: number): string {
  if (s.median === null) return '-';
  const m = fmt(s.median, digits);
  return s.n > 1 ? `${m} (${fmt(s.min, digits)}-${fmt(s.max, digits)})` : m;
}

/** ours / llama-server of a metric's medians; null unless both targets have it. */
export function oursOverLlama(summaries: readonly TargetSummary[], key: string): number | null {
  const of = (t: RouterTarget) => summaries.find((s) => s.target === t)?.metrics[key]?.median;
  return ratio(of('ours'), of('llama-server'));
}

/** An error's first line, with the next one when the first only introduces it ("... exited (2) while starting:"). */
export function headline(error: string): string {
  const lines = error
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '');
  const [first = '', next] = lines;
  return first.endsWith(':') && next !== undefined ? `${first} ${next}` : first;
}

function verdict(value: number | null, target: number, atMost: boolean): string {
  if (value === null) return 'n/a';
  const met = atMost ? value <= target : value >= target;
  return `${value.toFixed(3)} ${met ? 'MET' : 'NOT MET'}`;
}

/** The markdown report: a column per target with medians (min-max), ours/llama-server, then the targets' verdicts. */
export function formatRouterBench(r: RouterBenchResult): string {
  const o = r.options;
  const summaries = o.targets.map((t) => summarize(t, r.runs));
  const both = o.targets.includes('ours') && o.targets.includes('llama-server');
  const models = r.runs.find((x) => x.models !== null)?.models;
  const out: string[] = [
    `## Router bench: two models in one server`,
    '',
    `models dir ${r.modelsDir}${models ? ` | A = ${models[0]}, B = ${models[1]}` : ''} | -c ${o.ctxSize} -np ${o.parallel} -t ${o.threads}` +
      `${o.ignoreEos ? ' --ignore-eos' : ''}${o.flags.length ? ` ${o.flags.join(' ')}` : ''} | ${o.clients} clients x ${o.requests} requests | max_tokens ${o.tokens}` +
      ` | ${o.runs} run${o.runs > 1 ? 's' : ''} per target, alternating${o.runs > 1 ? ': median (min-max)' : ''}`,
    `one: ${o.clients} clients on A; two: ${Math.ceil(o.clients / 2)} on A and ${Math.floor(o.clients / 2)} on B at once; tokens/s = completion tokens / wall time`,
  ];
  for (const t of o.targets) {
    const command = r.runs.find((x) => x.target === t && x.command !== null)?.command;
    if (command) out.push(`- ${t}: \`${command}\``);
  }
  out.push(
    '',
    `| metric | ${o.targets.join(' | ')}${both ? ' | ours/llama-server' : ''} |`,
    `|---|${o.targets.map(() => '---:').join('|')}${both ? '|---:' : ''}|`,
  );
  for (const m of METRICS) {
    const cells = summaries.map((s) => formatSpread(s.metrics[m.key] as Spread, m.digits));
    if (both) cells.push(fmt(oursOverLlama(summaries, m.key), 3));
    out.push(`| ${m.label} | ${cells.join(' | ')} |`);
  }
  const phaseCount = (s: TargetSummary, pick: (p: PhaseFigures) => number) =>
    r.runs
      .filter((x) => x.target === s.target)
      .reduce((n, x) => n + (x.one ? pick(x.one) : 0) + (x.two ? pick(x.two) : 0), 0);
  const errors = (s: TargetSummary) => phaseCount(s, (p) => p.errors);
  const refused = (s: TargetSummary) => phaseCount(s, (p) => p.parserErrors);
  out.push(
    `| runs completed / failed | ${summaries.map((s) => `${s.runs - s.failed} / ${s.failed}`).join(' | ')}${both ? ' |' : ''} |`,
    `| failed requests in phases | ${summaries.map(errors).join(' | ')}${both ? ' |' : ''} |`,
    `| served, but refused by the chat parser (random weights) | ${summaries.map(refused).join(' | ')}${both ? ' |' : ''} |`,
    '',
  );
  for (const s of summaries) {
    out.push(
      `- ${s.target}: two/one ${verdict(s.metrics.twoOverOne?.median ?? null, TWO_OVER_ONE_TARGET, false)} (>= ${TWO_OVER_ONE_TARGET}); ` +
        `switch ${verdict(s.metrics.switchRatio?.median ?? null, SWITCH_RATIO_TARGET, true)} (<= ${SWITCH_RATIO_TARGET})`,
    );
    for (const e of s.errors) out.push(`  - FAILED ${headline(e)}`);
  }
  if (both)
    out.push(`- ours/llama-server, phase two tokens/s: ${fmt(oursOverLlama(summaries, 'twoTokensPerSecond'), 3)}`);
  return `${out.join('\n')}\n`;
}

/** One line of JSON with the medians, the verdicts and the errors (the --json file has every run). */
export function routerBenchJsonLine(r: RouterBenchResult): string {
  const summaries = r.options.targets.map((t) => summarize(t, r.runs));
  const medians = (s: TargetSummary) =>
    Object.fromEntries(METRICS.map((m) => [m.key, s.metrics[m.key]?.median ?? null]));
  return JSON.stringify({
    bench: 'router',
    modelsDir: r.modelsDir,
    models: r.runs.find((x) => x.models !== null)?.models ?? null,
    options: r.options,
    targets: Object.fromEntries(
      summaries.map((s) => {
        const m = medians(s);
        const two = m.twoOverOne ?? null;
        const sw = m.switchRatio ?? null;
        return [
          s.target,
          {
            runs: s.runs,
            failed: s.failed,
            medians: m,
            twoOverOneMet: two === null ? null : two >= TWO_OVER_ONE_TARGET,
            switchMet: sw === null ? null : sw <= SWITCH_RATIO_TARGET,
            errors: s.errors.map(headline),
          },
        ];
      }),
    ),
    oursOverLlamaServerTwoTokensPerSecond: oursOverLlama(summaries, 'twoTokensPerSecond'),
  });
}
