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
import { type Command, readCommandLine } from '../cli/command.ts';
import { FlagError, type FlagSpec, parseFlags } from '../cli/flags.ts';
import { defaultServeConfig } from '../config.ts';
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
  { names: ['--json'], kind: 'string', key: 'json', value: 'FILE', help: 'write every report as JSON' },
];

export const COMPARE_COMMAND: Command = {
  name: 'bench:compare',
  synopsis: `Usage: npm run bench:compare -- --model FILE [options]

Runs the same load against this server and against llama.cpp's llama-server on the same model, slots, context and
threads, one after the other, and prints tables side by side with the ratios ours/theirs.`,
  flags: COMPARE_FLAGS,
};

/** Parses bench:compare's flags; throws a FlagError that names the flag. */
export function parseCompareArgs(argv: readonly string[]): CompareOptions {
  const v = parseFlags(COMPARE_FLAGS, argv, {}).values as Omit<CompareOptions, 'ranks' | 'rate' | 'json'> &
    Partial<CompareOptions>;
  if (v.multiTurn && v.rate !== undefined) {
    throw new FlagError('--multi-turn needs the closed loop: a turn is sent once the reply to the one before it is in');
  }
  return { ...v, ranks: v.ranks ?? [v.parallel], rate: v.rate ?? null, json: v.json ?? null };
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
interface Target {
  label: string;
  /** The command line, as the report prints it. */
  describe: string;
  start(port: number): Promise<Running>;
}

function targets(o: CompareOptions, llamaServer: string): Target[] {
  const shape = ['-m', o.model, '-c', String(o.ctxSize), '-np', String(o.parallel), '-t', String(o.threads)];
  // Ours with its KV pool shared by the slots (-kvu; without -np that is its default, as llama-server's): the pool,
  // admission and preemption are what it is measured for. llama-server's headline column keeps its defaults.
  const oursArgs = [
    ...shape,
    '-kvu',
    '--max-queue',
    String(Math.max(64, o.ranks.reduce((a, b) => Math.max(a, b), 0) * 2)),
  ];
  const ours = defaultServeConfig();
  // llama-server with this server's settings where they differ: -b 2048 there, and the shared pool (-kvu). Both
  // keep an 8 GiB host prompt cache.
  const matched = [...shape, '-b', String(ours.batchSize), '-ub', String(ours.ubatchSize), '-kvu'];
  const net = (port: number) => ['--host', '127.0.0.1', '--port', String(port)];
  const list: Target[] = [
    {
      label: 'ours',
      describe: `llama-slots-server ${oursArgs.join(' ')}`,
      start: (port) =>
        launch(
          process.execPath,
          [
            '--import',
            'tsx',
            join(projectRoot, 'src', 'cli.ts'),
            'serve',
            ...oursArgs,
            ...net(port),
            '--log-level',
            'warn',
          ],
          port,
          'our server',
        ),
    },
  ];
  if (o.peer !== 'matched') {
    list.push({
      label: 'llama-server',
      describe: `llama-server ${shape.join(' ')}`,
      start: (port) => launch(llamaServer, [...shape, ...net(port)], port, 'llama-server'),
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

async function measure(server: Running, load: LoadgenOptions, what: string, file: string): Promise<LoadgenReport> {
  process.stderr.write(`[compare] ${what}\n`);
  const code = await runLoadgen({ ...load, jsonFile: file }, { stdout: quiet, stderr: process.stderr });
  if (code !== 0)
    throw new Error(`the load against ${what} failed (exit ${code}); server log:\n${server.log().slice(-3000)}`);
  return (JSON.parse(await readFile(file, 'utf8')) as { report: LoadgenReport }).report;
}

export type Phase = 'cold' | 'warm';

export interface CompareRun {
  target: string;
  ranks: number;
  phase: Phase;
  report: LoadgenReport;
}

export interface CompareResult {
  options: CompareOptions;
  commands: Record<string, string>;
  runs: CompareRun[];
}

export async function runCompare(o: CompareOptions): Promise<CompareResult> {
  const llamaServer = await ensureLlamaTool('llama-server', (l) =>
    process.stderr.write(`[llama-tools] ${l.slice(0, 160)}\n`),
  );
  const dir = await mkdtemp(join(tmpdir(), 'bench-compare-'));
  const list = targets(o, llamaServer);
  const runs: CompareRun[] = [];
  try {
    for (const ranks of o.ranks) {
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
          const load = loadOptions(server.url, o, ranks, null);
          for (const phase of o.warm ? (['cold', 'warm'] as const) : (['cold'] as const)) {
            const file = join(dir, `${runs.length}.json`);
            const what = `${target.label}: ${phase}, ${ranks} ranks x ${o.requestsPerRank} requests, ${o.parallel} slots`;
            runs.push({ target: target.label, ranks, phase, report: await measure(server, load, what, file) });
          }
        } finally {
          await stop(server);
        }
      }
    }
    return { options: o, commands: Object.fromEntries(list.map((t) => [t.label, t.describe])), runs };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

const fmt = (v: number | null | undefined, d: number) => (v === null || v === undefined ? '-' : v.toFixed(d));
const ratio = (a: number | null | undefined, b: number | null | undefined) =>
  a !== null && a !== undefined && b ? (a / b).toFixed(3) : '-';

/** One table per load (rank count and phase): a column per server, and ours/theirs after each peer's. */
export function formatCompare(r: CompareResult): string {
  const o = r.options;
  const labels = Object.keys(r.commands);
  const [ourLabel, ...peers] = labels;
  const out: string[] = [
    `model ${o.model} | -c ${o.ctxSize} | -np ${o.parallel} | -t ${o.threads} | ${o.requestsPerRank} requests per rank | max_tokens ${o.maxTokens} | ~${o.promptTokens} prompt tokens` +
      (o.systemTokens > 0 ? ` after a shared ~${o.systemTokens}-token system prompt` : '') +
      (o.multiTurn ? ' | multi-turn (each rank one conversation)' : ''),
    ...labels.map((l) => `- ${l}: \`${r.commands[l]}\``),
    '',
  ];
  const loads = [...new Set(r.runs.map((run) => `${run.ranks}:${run.phase}`))];
  for (const load of loads) {
    const [ranks, phase] = load.split(':');
    const of = (label: string | undefined) =>
      r.runs.find((run) => run.target === label && `${run.ranks}:${run.phase}` === load)?.report;
    const ours = of(ourLabel);
    if (!ours) continue;
    const columns = peers.map((p) => ({ label: p, report: of(p) }));
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
    out.push(`### ${phase}, ${ranks} ranks`, '');
    out.push(`| metric | ${ourLabel} | ${columns.map((c) => `${c.label} | ours/theirs`).join(' | ')} |`);
    out.push(`|---|---:|${columns.map(() => '---:|---:').join('|')}|`);
    for (const [name, pick, d] of metrics) {
      const a = pick(ours);
      out.push(
        `| ${name} | ${fmt(a, d)} | ${columns.map((c) => (c.report ? `${fmt(pick(c.report), d)} | ${ratio(a, pick(c.report))}` : '- | -')).join(' | ')} |`,
      );
    }
    const errors = (x: LoadgenReport | undefined) => (x ? `${x.ok} / ${x.errors}` : '-');
    out.push(`| ok / errors | ${errors(ours)} | ${columns.map((c) => `${errors(c.report)} | `).join(' | ')} |`, '');
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
