// `npm run bench:compare`: the same load against this server and against llama.cpp's llama-server on
// the same model, slots, context and threads, one after the other (never both at once: they would share
// the CPU), then tables side by side with ratios ours/theirs. llama-server runs as its users run it (only
// the flags that shape the workload: -m, -c, -np, -t) for the headline column; a second, labelled column runs
// it with this server's defaults where the two differ (batch sizes, KV layout).
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { defaultServeConfig } from '../entry/config/index.ts';
import { type Command, readCommandLine } from '../flags/command.ts';
import { FlagError, type FlagSpec, parseFlags } from '../flags/parse.ts';
import { projectRoot } from '../paths.ts';
import { ensureLlamaTool } from './llama-tools.ts';
import { runLoadgen } from './loadgen/cli.ts';
import { LOAD_SHAPE_FLAGS, type LoadgenOptions } from './loadgen/options.ts';
import type { LoadgenReport, Summary } from './loadgen/stats.ts';

/** Which llama-server configurations run: its defaults, this server's settings, or both. */
export type PeerChoice = 'defaults' | 'matched' | 'both';

export interface CompareOptions {
  model: string;
  parallel: number;
  /** One fresh pair of servers per rank count. */
  ranks: number[];
  requestsPerRank: number;
  maxTokens: number;
  promptTokens: number;
  systemTokens: number;
  multiTurn: boolean;
  /** -c of both servers: the KV cells of all slots together. */
  ctxSize: number;
  threads: number;
  rate: number | null;
  /** After each cold run, the same load again on the same server (prompts it has seen). */
  warm: boolean;
  /**
   * Which loads run, each on a fresh pair of servers. 'ranks': each --ranks value (cold, then warm with --warm).
   * 'returning': three phases on one server with the same seed, so later phases send earlier prompts again exactly —
   * `parallel` ranks x 3 requests each (cold), twice as many ranks as slots x 2 each (most prompts seen), `parallel`
   * ranks x 3 again (all seen).
   */
  workloads: Array<'ranks' | 'returning'>;
  /** The whole comparison this many times, the servers alternating; figures are medians with their range. */
  repeat: number;
  /**
   * Speculative decoding flags both servers get (-md, --spec-type, --spec-synth-len, ...); with them this server also
   * runs once without, as a third column (ours with drafts / ours without).
   */
  spec: string[];
  /** Flags only this server gets (e.g. --spec-policy max). */
  oursArgs: string[];
  /** -kvu for both servers: one KV pool for all slots. */
  kvUnified: boolean;
  peer: PeerChoice;
  json: string | null;
}

const COMPARE_FLAGS: readonly FlagSpec<keyof CompareOptions>[] = [
  {
    names: ['-m', '--model'],
    kind: 'string',
    key: 'model',
    value: 'FILE',
    required: true,
    help: 'GGUF model both servers load',
  },
  { names: ['--parallel'], kind: 'int', key: 'parallel', min: 1, default: '8', help: 'slots of each server (-np)' },
  {
    names: ['--ranks'],
    kind: 'list',
    items: 'int',
    key: 'ranks',
    value: 'N,N,...',
    min: 1,
    help: 'concurrent clients; one run with fresh servers per value (default: --parallel)',
  },
  {
    names: ['--requests-per-rank'],
    kind: 'int',
    key: 'requestsPerRank',
    value: 'R',
    min: 1,
    default: '3',
    help: 'requests each rank sends (the turns of its conversation with --multi-turn)',
  },
  ...LOAD_SHAPE_FLAGS,
  {
    names: ['-c', '--ctx-size'],
    kind: 'int',
    key: 'ctxSize',
    value: 'C',
    min: 64,
    default: '8192',
    help: 'context of each server: KV cells of all slots together',
  },
  {
    names: ['--threads'],
    kind: 'int',
    key: 'threads',
    value: 'T',
    min: 1,
    default: String(availableParallelism()),
    help: 'CPU threads of each server (-t)',
  },
  {
    names: ['--warm'],
    kind: 'bool',
    key: 'warm',
    default: 'false',
    help: 'after each cold run, the same load again on the same servers (prompts they have seen: prompt caches)',
  },
  {
    names: ['--workloads'],
    kind: 'list',
    key: 'workloads',
    value: 'ranks,returning',
    default: 'ranks,returning',
    parse: (v) => {
      for (const w of v as string[])
        if (w !== 'ranks' && w !== 'returning') throw new RangeError(`'${w}' is not one of ranks, returning`);
      return v;
    },
    help: 'ranks: the --ranks loads; returning: 3 phases on one server (P ranks x 3, 2P x 2, P x 3) repeating earlier prompts',
  },
  {
    names: ['--kv-unified'],
    kind: 'bool',
    key: 'kvUnified',
    default: 'false',
    help: 'pass -kvu to both servers: one KV pool of -c cells for all slots (default: each at its default, per slot with -np)',
  },
  {
    names: ['--repeat'],
    kind: 'int',
    key: 'repeat',
    min: 1,
    max: 100,
    default: '1',
    help: 'run everything this many times, the servers alternating; figures are medians (min-max)',
  },
  {
    names: ['--peer'],
    kind: 'string',
    key: 'peer',
    value: 'defaults|matched|both',
    default: 'both',
    parse: (v) => {
      if (v !== 'defaults' && v !== 'matched' && v !== 'both')
        throw new RangeError(`must be defaults, matched or both, got '${v}'`);
      return v;
    },
    help: "llama-server at its defaults, with this server's batch sizes and KV layout, or both",
  },
  {
    names: ['--spec'],
    kind: 'string',
    key: 'spec',
    value: 'FLAGS',
    parse: (v) => splitArgs(v as string),
    help: "speculative flags for both servers, e.g. '-md DRAFT --spec-type draft-simple --spec-synth-len 3'; this server also runs without them",
  },
  {
    names: ['--ours-args'],
    kind: 'string',
    key: 'oursArgs',
    value: 'FLAGS',
    parse: (v) => splitArgs(v as string),
    help: "flags for this server only, e.g. '--spec-policy max'",
  },
  { names: ['--json'], kind: 'string', key: 'json', value: 'FILE', help: 'write every report as JSON' },
];

function splitArgs(v: string): string[] {
  return v.split(/\s+/).filter((a) => a !== '');
}

export const COMPARE_COMMAND: Command = {
  name: 'bench:compare',
  synopsis: `Usage: npm run bench:compare -- --model FILE [options]

Runs the same load against this server and against llama.cpp's llama-server on the same model, slots, context and
threads, one after the other, and prints tables side by side with the ratios ours/theirs.`,
  flags: COMPARE_FLAGS,
};

/** Parses bench:compare's flags; throws a FlagError that names the flag. */
export function parseCompareArgs(argv: readonly string[]): CompareOptions {
  const v = parseFlags(COMPARE_FLAGS, argv, {}).values as Omit<
    CompareOptions,
    'ranks' | 'rate' | 'json' | 'spec' | 'oursArgs'
  > &
    Partial<CompareOptions>;
  if (v.multiTurn && v.rate !== undefined) {
    throw new FlagError('--multi-turn needs the closed loop: a turn is sent once the reply to the one before it is in');
  }
  return {
    ...v,
    ranks: v.ranks ?? [v.parallel],
    rate: v.rate ?? null,
    spec: v.spec ?? [],
    oursArgs: v.oursArgs ?? [],
    json: v.json ?? null,
  };
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const address = s.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      s.close(() => resolve(port));
    });
    s.on('error', reject);
  });
}

interface Running {
  child: ChildProcess;
  url: string;
  log: () => string;
}

async function launch(cmd: string, args: string[], port: number, label: string): Promise<Running> {
  const child = spawn(cmd, args, { cwd: projectRoot, stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  child.stdout?.on('data', (c: Buffer) => (log = (log + c.toString()).slice(-20000)));
  child.stderr?.on('data', (c: Buffer) => (log = (log + c.toString()).slice(-20000)));
  const url = `http://127.0.0.1:${port}`;
  for (let k = 0; k < 1200; k++) {
    if (child.exitCode !== null)
      throw new Error(`${label} exited (${child.exitCode}) while starting:\n${log.slice(-3000)}`);
    const r = await fetch(`${url}/health`).catch(() => undefined);
    if (r?.status === 200) return { child, url, log: () => log };
    await new Promise((r) => setTimeout(r, 100));
  }
  child.kill('SIGKILL');
  throw new Error(`${label} did not become healthy within 120 s:\n${log.slice(-3000)}`);
}

async function stop(r: Running): Promise<void> {
  if (r.child.exitCode !== null) return;
  const exited = new Promise((resolve) => r.child.on('exit', resolve));
  r.child.kill('SIGTERM');
  const timer = setTimeout(() => r.child.kill('SIGKILL'), 15_000);
  await exited;
  clearTimeout(timer);
}

/** One server configuration in the comparison. */
export interface Target {
  label: string;
  /** The command line, as the report prints it. */
  describe: string;
  start(port: number): Promise<Running>;
}

/** The servers of a comparison, ours first (the report's ratios are ours / each other). */
export function compareTargets(o: CompareOptions, llamaServer: string): Target[] {
  const shape = ['-m', o.model, '-c', String(o.ctxSize), '-np', String(o.parallel), '-t', String(o.threads)];
  // Both at their defaults, with only the flags that shape the workload: with -np each slot has -c/-np cells in
  // both servers (a unified pool is the default only without -np). The queue is raised so no rank count gets 429s.
  // --kv-unified adds -kvu to both: one pool, which ours admits into and preempts in.
  const unified = o.kvUnified ? ['-kvu'] : [];
  const maxRanks = Math.max(...o.ranks, o.workloads.includes('returning') ? 2 * o.parallel : 0);
  const plainArgs = [...shape, ...unified, '--max-queue', String(Math.max(64, maxRanks * 2)), ...o.oursArgs];
  const oursArgs = [...plainArgs, ...o.spec];
  const ours = defaultServeConfig();
  // llama-server with this server's settings where they differ (batch sizes). Both keep an 8 GiB host prompt cache.
  const matched = [...shape, ...unified, '-b', String(ours.batchSize), '-ub', String(ours.ubatchSize), ...o.spec];
  const peerArgs = [...shape, ...unified, ...o.spec];
  const net = (port: number) => ['--host', '127.0.0.1', '--port', String(port)];
  const oursTarget = (label: string, args: string[]): Target => ({
    label,
    describe: `llama-slots-server ${args.join(' ')}`,
    start: (port) =>
      launch(
        process.execPath,
        ['--import', 'tsx', join(projectRoot, 'src', 'entry', 'main.ts'), 'serve', ...args, ...net(port)].concat([
          '--log-level',
          'warn',
        ]),
        port,
        label,
      ),
  });
  const list: Target[] = [oursTarget('ours', oursArgs)];
  if (o.spec.length > 0) list.push(oursTarget('ours, no drafts', plainArgs));
  if (o.peer !== 'matched') {
    list.push({
      label: 'llama-server',
      describe: `llama-server ${peerArgs.join(' ')}`,
      start: (port) => launch(llamaServer, [...peerArgs, ...net(port)], port, 'llama-server'),
    });
  }
  if (o.peer !== 'defaults') {
    list.push({
      label: 'llama-server (matched)',
      describe: `llama-server ${matched.join(' ')}`,
      start: (port) => launch(llamaServer, [...matched, ...net(port)], port, 'llama-server (matched)'),
    });
  }
  return list;
}

function loadOptions(url: string, o: CompareOptions, ranks: number, file: string | null): LoadgenOptions {
  return {
    url,
    ranks,
    requests: ranks * o.requestsPerRank,
    maxTokens: o.maxTokens,
    promptTokens: o.promptTokens,
    systemTokens: o.systemTokens,
    multiTurn: o.multiTurn,
    rate: o.rate,
    apiKey: null,
    model: null,
    jsonFile: file,
    htmlFile: null,
    sloTtftMs: null,
    sloTpotMs: null,
    seed: 1,
    timeoutMs: 600_000,
    mpi: false,
    coordinator: null,
    ranksGiven: true,
  };
}

const quiet = { write: () => true } as unknown as NodeJS.WriteStream;

/** One load on a running server. */
export interface LoadStep {
  label: string;
  ranks: number;
  requests: number;
}

/** Loads run one after the other on one fresh server of each target. */
export interface Workload {
  name: string;
  steps: LoadStep[];
}

export function workloadsOf(o: CompareOptions): Workload[] {
  const list: Workload[] = (o.workloads.includes('ranks') ? o.ranks : []).map((ranks) => ({
    name: `${ranks} ranks`,
    steps: (o.warm ? ['cold', 'warm'] : ['cold']).map((label) => ({
      label,
      ranks,
      requests: ranks * o.requestsPerRank,
    })),
  }));
  if (o.workloads.includes('returning')) {
    const p = o.parallel;
    list.push({
      name: 'returning',
      steps: [
        { label: `1 cold, ${p} ranks`, ranks: p, requests: 3 * p },
        { label: `2 most seen, ${2 * p} ranks`, ranks: 2 * p, requests: 4 * p },
        { label: `3 all seen, ${p} ranks`, ranks: p, requests: 3 * p },
      ],
    });
  }
  return list;
}

/** A request's server-side timings, as the loadgen's JSON keeps them. */
export interface ServerTimingsRecord {
  ok: boolean;
  ttftMs: number | null;
  serverTimings: Record<string, number> | null;
}

export interface CompareRun {
  target: string;
  workload: string;
  step: string;
  ranks: number;
  /** 1-based: which repetition of the whole comparison. */
  repeat: number;
  report: LoadgenReport;
  requests: ServerTimingsRecord[];
}

export interface CompareResult {
  options: CompareOptions;
  commands: Record<string, string>;
  runs: CompareRun[];
}

async function measure(
  server: Running,
  load: LoadgenOptions,
  what: string,
  file: string,
): Promise<{ report: LoadgenReport; requests: ServerTimingsRecord[] }> {
  process.stderr.write(`[compare] ${what}\n`);
  const code = await runLoadgen({ ...load, jsonFile: file }, { stdout: quiet, stderr: process.stderr });
  if (code !== 0)
    throw new Error(`the load against ${what} failed (exit ${code}); server log:\n${server.log().slice(-3000)}`);
  return JSON.parse(await readFile(file, 'utf8')) as { report: LoadgenReport; requests: ServerTimingsRecord[] };
}

export async function runCompare(o: CompareOptions): Promise<CompareResult> {
  const llamaServer = await ensureLlamaTool('llama-server', (l) =>
    process.stderr.write(`[llama-tools] ${l.slice(0, 160)}\n`),
  );
  const dir = await mkdtemp(join(tmpdir(), 'bench-compare-'));
  const list = compareTargets(o, llamaServer);
  const runs: CompareRun[] = [];
  try {
    for (let repeat = 1; repeat <= o.repeat; repeat++) {
      for (const workload of workloadsOf(o)) {
        for (const target of list) {
          const server = await target.start(await freePort());
          try {
            // A short request first: page the weights in and open the connection pool; not measured.
            const warmup = {
              ...loadOptions(server.url, o, 1, null),
              requests: 1,
              maxTokens: 4,
              promptTokens: 16,
              systemTokens: 0,
              multiTurn: false,
              rate: null,
              seed: 999,
            };
            await runLoadgen(warmup, { stdout: quiet, stderr: quiet });
            for (const step of workload.steps) {
              const load = { ...loadOptions(server.url, o, step.ranks, null), requests: step.requests };
              const file = join(dir, `${runs.length}.json`);
              const what = `${target.label}: ${workload.name}, ${step.label} (${step.requests} requests, ${o.parallel} slots), run ${repeat}/${o.repeat}`;
              const measured = await measure(server, load, what, file);
              runs.push({
                target: target.label,
                workload: workload.name,
                step: step.label,
                ranks: step.ranks,
                repeat,
                ...measured,
              });
            }
          } finally {
            await stop(server);
          }
        }
      }
    }
    return { options: o, commands: Object.fromEntries(list.map((t) => [t.label, t.describe])), runs };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

const fmt = (v: number | null | undefined, d: number) => (v === null || v === undefined ? '-' : v.toFixed(d));

export function median(values: readonly number[]): number | null {
  if (values.length === 0) return null;
  const v = [...values].sort((x, y) => x - y);
  const mid = Math.floor(v.length / 2);
  return v.length % 2 === 1 ? (v[mid] as number) : ((v[mid - 1] as number) + (v[mid] as number)) / 2;
}

/** The median of the values, with their range when there are several: "12.3 (11.9-13.0)". */
function spread(values: readonly (number | null)[], d: number): string {
  const v = values.filter((x): x is number => x !== null && Number.isFinite(x));
  const m = median(v);
  if (m === null) return '-';
  return v.length > 1 ? `${fmt(m, d)} (${fmt(Math.min(...v), d)}-${fmt(Math.max(...v), d)})` : fmt(m, d);
}

const mean = (values: readonly number[]): number | null =>
  values.length === 0 ? null : values.reduce((a, b) => a + b, 0) / values.length;

/** Where the time to the first token went, by the server's own timings, averaged over a run's successful requests. */
export interface FirstTokenBreakdown {
  ttftMs: number | null;
  /** llama-server's prompt_ms: from the slot's start to the first token. */
  promptMs: number | null;
  /** TTFT less prompt_ms: waiting for a slot, admission, the network. */
  beforeMs: number | null;
  /** Share of prompt tokens served from a cache (cache_n / (cache_n + prompt_n)). */
  cachedShare: number | null;
  /** This server's own fields (src/server/generation/types.ts); null for llama-server. */
  queueMs: number | null;
  prepareMs: number | null;
  restoredShare: number | null;
  prefillSteps: number | null;
  prefillStepsMs: number | null;
}

export function firstTokenBreakdown(requests: readonly ServerTimingsRecord[]): FirstTokenBreakdown {
  const ok = requests.filter((r) => r.ok && r.ttftMs !== null && r.serverTimings !== null);
  const field = (name: string) =>
    mean(ok.flatMap((r) => (r.serverTimings?.[name] !== undefined ? [r.serverTimings[name] as number] : [])));
  const sum = (name: string) => ok.reduce((n, r) => n + (r.serverTimings?.[name] ?? 0), 0);
  const prompt = sum('prompt_n') + sum('cache_n');
  const ours = ok.some((r) => r.serverTimings?.queue_ms !== undefined);
  const ttft = mean(ok.map((r) => r.ttftMs as number));
  const promptMs = field('prompt_ms');
  return {
    ttftMs: ttft,
    promptMs,
    beforeMs: ttft !== null && promptMs !== null ? ttft - promptMs : null,
    cachedShare: prompt > 0 ? sum('cache_n') / prompt : null,
    queueMs: ours ? field('queue_ms') : null,
    prepareMs: ours ? field('prepare_ms') : null,
    restoredShare: ours && prompt > 0 ? sum('restored_n') / prompt : null,
    prefillSteps: ours ? field('prefill_steps') : null,
    prefillStepsMs: ours ? field('prefill_steps_ms') : null,
  };
}

/**
 * One table per load (workload and step): a column per server with the median over repeats (and its range), and
 * after each peer the median of the per-repeat ratios ours/theirs (and its range). Then where the first token's
 * time went on each server.
 */
export function formatCompare(r: CompareResult): string {
  const o = r.options;
  const labels = Object.keys(r.commands);
  const [ourLabel, ...peers] = labels;
  const out: string[] = [
    `model ${o.model} | -c ${o.ctxSize} | -np ${o.parallel} | -t ${o.threads} | ${o.requestsPerRank} requests per rank | max_tokens ${o.maxTokens} | ~${o.promptTokens} prompt tokens` +
      (o.systemTokens > 0 ? ` after a shared ~${o.systemTokens}-token system prompt` : '') +
      (o.multiTurn ? ' | multi-turn (each rank one conversation)' : '') +
      (o.repeat > 1 ? ` | ${o.repeat} alternating runs: median (min-max)` : ''),
    ...labels.map((l) => `- ${l}: \`${r.commands[l]}\``),
    '',
  ];
  const loads = [...new Map(r.runs.map((run) => [`${run.workload}\u0000${run.step}`, run])).values()];
  for (const load of loads) {
    const runsOf = (label: string | undefined) =>
      r.runs
        .filter((run) => run.target === label && run.workload === load.workload && run.step === load.step)
        .sort((a, b) => a.repeat - b.repeat);
    const ours = runsOf(ourLabel);
    if (ours.length === 0) continue;
    const columns = peers.map((p) => ({ label: p, runs: runsOf(p) }));
    const metrics: Array<[string, (x: LoadgenReport) => number | null, number]> = [
      ['output tokens/s', (x) => x.outputTokensPerSecond, 2],
      ['requests/s', (x) => x.requestsPerSecond, 3],
    ];
    const add = (name: string, pick: (x: LoadgenReport) => Summary) => {
      metrics.push(
        [`${name} mean (ms)`, (x) => pick(x).mean, 1],
        [`${name} p50 (ms)`, (x) => pick(x).p50, 1],
        [`${name} p95 (ms)`, (x) => pick(x).p95, 1],
        [`${name} p99 (ms)`, (x) => pick(x).p99, 1],
      );
    };
    add('TTFT', (x) => x.ttftMs);
    add('E2E', (x) => x.e2eMs);
    metrics.push(['ITL mean (ms)', (x) => x.itlMs.mean, 1], ['TPOT mean (ms)', (x) => x.tpotMs.mean, 1]);
    const title =
      load.workload === `${load.ranks} ranks` ? `${load.step}, ${load.ranks} ranks` : `${load.workload}: ${load.step}`;
    out.push(`### ${title}`, '');
    out.push(`| metric | ${ourLabel} | ${columns.map((c) => `${c.label} | ours/theirs`).join(' | ')} |`);
    out.push(`|---|---:|${columns.map(() => '---:|---:').join('|')}|`);
    for (const [name, pick, d] of metrics) {
      const cells = columns.map((c) => {
        if (c.runs.length === 0) return '- | -';
        const ratios = ours.flatMap((run, k) => {
          const a = pick(run.report);
          const theirs = c.runs[k];
          const b = theirs ? pick(theirs.report) : null;
          return a !== null && b ? [a / b] : [];
        });
        return `${spread(
          c.runs.map((x) => pick(x.report)),
          d,
        )} | ${spread(ratios, 3)}`;
      });
      out.push(
        `| ${name} | ${spread(
          ours.map((x) => pick(x.report)),
          d,
        )} | ${cells.join(' | ')} |`,
      );
    }
    const errors = (runs: CompareRun[]) =>
      runs.length === 0
        ? '-'
        : `${runs.reduce((n, x) => n + x.report.ok, 0)} / ${runs.reduce((n, x) => n + x.report.errors, 0)}`;
    out.push(`| ok / errors | ${errors(ours)} | ${columns.map((c) => `${errors(c.runs)} | `).join(' | ')} |`, '');
    // Where the first token's time went, each server by its own timings.
    const rows: Array<[string, (b: FirstTokenBreakdown) => number | null, number]> = [
      ['TTFT mean, client (ms)', (b) => b.ttftMs, 1],
      ['prompt_ms mean: slot start to first token (ms)', (b) => b.promptMs, 1],
      ['TTFT less prompt_ms: waiting, admission, network (ms)', (b) => b.beforeMs, 1],
      ['prompt tokens from a cache (%)', (b) => (b.cachedShare === null ? null : 100 * b.cachedShare), 1],
      ['of which restored from host RAM (%)', (b) => (b.restoredShare === null ? null : 100 * b.restoredShare), 1],
      ['queue_ms mean: waiting for admission (ms)', (b) => b.queueMs, 1],
      ['prepare_ms mean: saves and restores before it starts (ms)', (b) => b.prepareMs, 1],
      ['prefill steps mean', (b) => b.prefillSteps, 2],
      ['prefill steps ms mean', (b) => b.prefillStepsMs, 1],
    ];
    const all = [{ label: ourLabel ?? 'ours', runs: ours }, ...columns];
    out.push(`| first token | ${all.map((c) => c.label).join(' | ')} |`, `|---|${all.map(() => '---:').join('|')}|`);
    for (const [name, pick, d] of rows)
      out.push(
        `| ${name} | ${all
          .map((c) =>
            spread(
              c.runs.map((x) => pick(firstTokenBreakdown(x.requests))),
              d,
            ),
          )
          .join(' | ')} |`,
      );
    out.push('');
  }
  return `${out.join('\n')}\n`;
}

export async function runCompareCli(argv: readonly string[]): Promise<number> {
  const line = readCommandLine(COMPARE_COMMAND, argv, process, parseCompareArgs);
  if ('exit' in line) return line.exit;
  const o = line.args;
  const result = await runCompare(o);
  process.stdout.write(formatCompare(result));
  if (o.json) {
    const { writeFile } = await import('node:fs/promises');
    await writeFile(o.json, `${JSON.stringify(result, null, 2)}\n`);
  }
  return 0;
}
