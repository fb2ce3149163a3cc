// `npm run bench:compare`: the same load against this server and against llama.cpp's llama-server on
// the same model, slots, context and threads, one after the other (never both at once: they would share
// the CPU), then one table side by side with ratios ours/theirs.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Command, readCommandLine } from '../cli/command.ts';
import { type FlagSpec, parseFlags } from '../cli/flags.ts';
import { projectRoot } from '../paths.ts';
import { ensureLlamaTool } from './llama-tools.ts';
import { runLoadgen } from './loadgen/cli.ts';
import { LOAD_SHAPE_FLAGS, type LoadgenOptions } from './loadgen/options.ts';
import type { LoadgenReport, Summary } from './loadgen/stats.ts';

export interface CompareOptions {
  model: string;
  parallel: number;
  ranks: number;
  requests: number;
  maxTokens: number;
  promptTokens: number;
  ctxPerSlot: number;
  threads: number;
  rate: number | null;
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
  { names: ['--parallel'], kind: 'int', key: 'parallel', min: 1, default: '2', help: 'slots of each server' },
  { names: ['--ranks'], kind: 'int', key: 'ranks', min: 1, help: 'concurrent clients (default: --parallel)' },
  {
    names: ['--requests'],
    kind: 'int',
    key: 'requests',
    value: 'M',
    min: 1,
    help: 'requests in total (default: 4 per rank)',
  },
  ...LOAD_SHAPE_FLAGS,
  {
    names: ['--ctx-per-slot'],
    kind: 'int',
    key: 'ctxPerSlot',
    value: 'C',
    min: 64,
    default: '1024',
    help: 'context of each slot (-c is this times --parallel)',
  },
  {
    names: ['--threads'],
    kind: 'int',
    key: 'threads',
    value: 'T',
    min: 1,
    default: String(availableParallelism()),
    help: 'CPU threads of each server',
  },
  { names: ['--json'], kind: 'string', key: 'json', value: 'FILE', help: 'write both reports as JSON' },
];

export const COMPARE_COMMAND: Command = {
  name: 'bench:compare',
  synopsis: `Usage: npm run bench:compare -- --model FILE [options]

Runs the same load against this server and against llama.cpp's llama-server on the same model, slots, context and
threads, one after the other, and prints one table side by side with the ratios ours/theirs.`,
  flags: COMPARE_FLAGS,
};

/** Parses bench:compare's flags; throws a FlagError that names the flag. */
export function parseCompareArgs(argv: readonly string[]): CompareOptions {
  const v = parseFlags(COMPARE_FLAGS, argv, {}).values as Omit<CompareOptions, 'ranks' | 'requests' | 'rate' | 'json'> &
    Partial<CompareOptions>;
  const ranks = v.ranks ?? v.parallel;
  return { ...v, ranks, requests: v.requests ?? ranks * 4, rate: v.rate ?? null, json: v.json ?? null };
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

async function measure(label: string, server: Running, o: CompareOptions, dir: string): Promise<LoadgenReport> {
  const file = join(dir, `${label}.json`);
  const warmup: LoadgenOptions = {
    url: server.url,
    ranks: 1,
    requests: 1,
    maxTokens: 4,
    promptTokens: 16,
    rate: null,
    apiKey: null,
    model: null,
    jsonFile: null,
    htmlFile: null,
    sloTtftMs: null,
    sloTpotMs: null,
    seed: 999,
    timeoutMs: 600_000,
    mpi: false,
    coordinator: null,
    ranksGiven: true,
  };
  const quiet = { write: () => true } as unknown as NodeJS.WriteStream;
  await runLoadgen(warmup, { stdout: quiet, stderr: quiet });
  process.stderr.write(`[compare] ${label}: ${o.ranks} ranks, ${o.requests} requests, ${o.parallel} slots\n`);
  const code = await runLoadgen(
    {
      ...warmup,
      ranks: o.ranks,
      requests: o.requests,
      maxTokens: o.maxTokens,
      promptTokens: o.promptTokens,
      rate: o.rate,
      seed: 1,
      jsonFile: file,
    },
    { stdout: quiet, stderr: process.stderr },
  );
  if (code !== 0)
    throw new Error(`the load against ${label} failed (exit ${code}); server log:\n${server.log().slice(-3000)}`);
  return (JSON.parse(await readFile(file, 'utf8')) as { report: LoadgenReport }).report;
}

export interface CompareResult {
  options: CompareOptions;
  ours: LoadgenReport;
  llama: LoadgenReport;
}

export async function runCompare(o: CompareOptions): Promise<CompareResult> {
  const llamaServer = await ensureLlamaTool('llama-server', (l) =>
    process.stderr.write(`[llama-tools] ${l.slice(0, 160)}\n`),
  );
  const dir = await mkdtemp(join(tmpdir(), 'bench-compare-'));
  const ctx = String(o.ctxPerSlot * o.parallel);
  try {
    const portOurs = await freePort();
    const ours = await launch(
      process.execPath,
      [
        '--import',
        'tsx',
        join(projectRoot, 'src', 'cli.ts'),
        'serve',
        '-m',
        o.model,
        '-c',
        ctx,
        '-np',
        String(o.parallel),
        '-t',
        String(o.threads),
        '--host',
        '127.0.0.1',
        '--port',
        String(portOurs),
        '--max-queue',
        String(Math.max(64, o.requests)),
        '--log-level',
        'warn',
        // Matched with the llama-server row below: one KV stream per slot.
        '--no-kv-unified',
      ],
      portOurs,
      'our server',
    );
    let oursReport: LoadgenReport;
    try {
      oursReport = await measure('ours', ours, o, dir);
    } finally {
      await stop(ours);
    }
    const portLlama = await freePort();
    // Same slots, context and threads; one KV stream per slot like ours; the same built-in chat template
    // path (no Jinja); no host-RAM prompt cache (ours has none).
    const llama = await launch(
      llamaServer,
      [
        '-m',
        o.model,
        '-c',
        ctx,
        '-np',
        String(o.parallel),
        '-t',
        String(o.threads),
        '-tb',
        String(o.threads),
        '--no-kv-unified',
        '--no-jinja',
        '--cache-ram',
        '0',
        '--host',
        '127.0.0.1',
        '--port',
        String(portLlama),
        '--no-webui',
      ],
      portLlama,
      'llama-server',
    );
    let llamaReport: LoadgenReport;
    try {
      llamaReport = await measure('llama-server', llama, o, dir);
    } finally {
      await stop(llama);
    }
    return { options: o, ours: oursReport, llama: llamaReport };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

export function formatCompare(r: CompareResult): string {
  const f = (v: number | null | undefined, d = 1) => (v === null || v === undefined ? '-' : v.toFixed(d));
  const ratio = (a: number | null | undefined, b: number | null | undefined) => (a && b ? (a / b).toFixed(3) : '-');
  const rows: Array<[string, number | null, number | null]> = [
    ['output tokens/s', r.ours.outputTokensPerSecond, r.llama.outputTokensPerSecond],
    ['requests/s', r.ours.requestsPerSecond, r.llama.requestsPerSecond],
  ];
  const add = (name: string, a: Summary, b: Summary) => {
    rows.push(
      [`${name} mean (ms)`, a.mean, b.mean],
      [`${name} p50 (ms)`, a.p50, b.p50],
      [`${name} p95 (ms)`, a.p95, b.p95],
      [`${name} p99 (ms)`, a.p99, b.p99],
    );
  };
  add('TTFT', r.ours.ttftMs, r.llama.ttftMs);
  add('E2E', r.ours.e2eMs, r.llama.e2eMs);
  rows.push(
    ['TPOT mean (ms)', r.ours.tpotMs.mean, r.llama.tpotMs.mean],
    ['ITL mean (ms)', r.ours.itlMs.mean, r.llama.itlMs.mean],
  );
  rows.push(['ok / errors', r.ours.ok, r.llama.ok]);
  const o = r.options;
  const lines = [
    `model ${o.model} | slots ${o.parallel} | ranks ${o.ranks} | requests ${o.requests} | max_tokens ${o.maxTokens} | ~${o.promptTokens} prompt tokens | threads ${o.threads}`,
    '| metric | ours | llama-server | ours/theirs |',
    '|---|---:|---:|---:|',
    ...rows.map(([name, a, b]) =>
      name === 'ok / errors'
        ? `| ok / errors | ${r.ours.ok} / ${r.ours.errors} | ${r.llama.ok} / ${r.llama.errors} | |`
        : `| ${name} | ${f(a, name.includes('/s') ? 2 : 1)} | ${f(b, name.includes('/s') ? 2 : 1)} | ${ratio(a, b)} |`,
    ),
  ];
  return `${lines.join('\n')}\n`;
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
