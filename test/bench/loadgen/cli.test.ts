// End to end: the CLI against a fake streaming server with known delays, ranks as real processes.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { forkRank } from '../../../src/bench/loadgen/barrier.ts';
import { runLoadgenCli } from '../../../src/bench/loadgen/cli.ts';
import { planRanks } from '../../../src/bench/loadgen/plan.ts';
import { closedPort, startFakeServer } from './fake-server.ts';

class Capture extends Writable {
  text = '';
  isTTY = false;
  override _write(chunk: Buffer, _encoding: BufferEncoding, done: () => void): void {
    this.text += chunk.toString();
    done();
  }
}

function io() {
  const stdout = new Capture();
  const stderr = new Capture() as Capture & NodeJS.WriteStream;
  return { stdout, stderr };
}

const SEED_BLOCK =
  /^=== llama-server latency \(ms\) ===\nmean=(\d+\.\d{3}) p50=(\d+\.\d{3}) p95=(\d+\.\d{3}) p99=(\d+\.\d{3})\n\n=== throughput ===\ntokens=(\d+) tokens\/sec=(\d+\.\d{2}) ok=(\d+) err=(\d+)\n\n=== details ===\n/;

interface JsonSummary {
  n: number;
  mean: number;
  p50: number;
}
interface JsonReport {
  run: { ranks: number; requests: number; model: string };
  report: {
    ok: number;
    errors: number;
    rejected: number;
    ttftMs: JsonSummary;
    e2eMs: JsonSummary;
    tpotMs: JsonSummary;
    itlMs: JsonSummary;
    outputTokens: number;
    goodput: { requests: number } | null;
    errorsByCause: Array<{ cause: string; count: number }>;
  };
  requests: Array<{
    id: number;
    rank: number;
    ok: boolean;
    status: number;
    sendMs: number;
    endMs: number;
    chunkMs: number[];
    ttftMs: number | null;
  }>;
}

t.test('--help, bad arguments (2), unreachable server (1)', async (t) => {
  const help = io();
  t.equal(await runLoadgenCli(['--help'], help), 0);
  t.match(help.stdout.text, /^Usage: npm run bench -- /);

  const bad = io();
  t.equal(await runLoadgenCli(['--ranks', 'x'], bad), 2);
  t.match(bad.stderr.text, /^bench: --ranks must be an integer, got 'x'\n/);
  t.equal(bad.stdout.text, '');

  const port = await closedPort();
  const down = io();
  t.equal(await runLoadgenCli(['--url', `http://127.0.0.1:${port}`, '--requests', '2'], down), 1);
  t.match(
    down.stderr.text,
    new RegExp(`cannot reach the server at http://127\\.0\\.0\\.1:${port} \\(.*ECONNREFUSED.*\\)`),
  );
  t.match(down.stderr.text, /npm start/);
  t.equal(down.stdout.text, '');
});

t.test(
  'closed loop, 2 ranks: the seed block, figures matching the server delays, 429s apart, JSON and HTML',
  async (t) => {
    const TTFT = 80;
    const ITL = 30;
    const TOKENS = 5;
    // Chat requests 3 and 6 (in arrival order) are refused as a full queue would be.
    const server = await startFakeServer(
      (index) =>
        index === 3 || index === 6
          ? {
              kind: 'status',
              status: 429,
              body: JSON.stringify({ error: { message: 'queue full', type: 'server_error' } }),
              headers: { 'retry-after': '1' },
            }
          : { kind: 'stream', ttftMs: TTFT, itlMs: ITL, tokens: TOKENS, promptTokens: 40 },
      8,
    );
    t.teardown(() => server.close());
    const dir = t.testdir({});
    const out = io();
    const code = await runLoadgenCli(
      [
        '--url',
        server.url,
        '--ranks',
        '2',
        '--requests',
        '8',
        '--max-tokens',
        '5',
        '--prompt-tokens',
        '16',
        '--api-key',
        'sk-1',
        '--json',
        join(dir, 'r.json'),
        '--html',
        join(dir, 'r.html'),
        '--slo-ttft',
        '1000',
        '--slo-tpot',
        '1000',
      ],
      out,
    );
    t.equal(code, 0, out.stderr.text);

    const m = SEED_BLOCK.exec(out.stdout.text);
    t.ok(m, 'stdout starts with the seed block, then the details');
    t.same(
      m?.slice(5, 9).map((x, k) => (k === 1 ? 'tps' : x)),
      [String(6 * TOKENS), 'tps', '6', '2'],
      'tokens, ok, err',
    );
    for (const formula of [
      'TTFT = first content chunk - send',
      'E2E = last chunk - send',
      'TPOT = (E2E - TTFT) / (n - 1)',
      'ITL = gaps between consecutive content chunks',
      'linear interpolation',
    ]) {
      t.ok(out.stdout.text.includes(formula), `prints '${formula}'`);
    }
    t.match(out.stdout.text, /HTTP 429 \(rejected, counted apart\)\s+2\s+e\.g\. HTTP 429: queue full/);
    t.match(out.stderr.text, /bench: done in/, 'progress on stderr');

    t.equal(server.seen.length, 8);
    t.ok(
      server.seen.every(
        (s) => s.headers.authorization === 'Bearer sk-1' && s.body.model === 'fake-model' && s.body.max_tokens === 5,
      ),
    );

    const json = JSON.parse(await readFile(join(dir, 'r.json'), 'utf8')) as JsonReport;
    const r = json.report;
    t.same([r.ok, r.errors, r.rejected, r.outputTokens], [6, 2, 2, 30]);
    t.same(r.errorsByCause, [{ cause: 'HTTP 429', count: 2, example: 'HTTP 429: queue full' }]);
    // Lower bounds are the server's sleeps; upper bounds leave room for a busy 2-core machine.
    const within = (name: string, value: number, low: number, high: number) =>
      t.ok(value >= low && value <= high, `${name} ${value.toFixed(1)} in [${low}, ${high}]`);
    within('TTFT mean', r.ttftMs.mean, TTFT - 2, TTFT + 80);
    within('ITL p50', r.itlMs.p50, ITL - 2, ITL + 30);
    within('TPOT mean', r.tpotMs.mean, ITL - 2, ITL + 30);
    within('E2E mean', r.e2eMs.mean, TTFT + (TOKENS - 1) * ITL - 2, TTFT + (TOKENS - 1) * ITL + 150);
    t.same([r.ttftMs.n, r.itlMs.n, r.tpotMs.n], [6, 6 * (TOKENS - 1), 6]);
    t.equal(r.goodput?.requests, 6);

    t.same(
      json.requests.map((q) => q.id),
      [0, 1, 2, 3, 4, 5, 6, 7],
      'every request recorded',
    );
    t.same(
      json.requests.map((q) => q.rank),
      [0, 1, 0, 1, 0, 1, 0, 1],
    );
    for (const rank of [0, 1]) {
      const mine = json.requests.filter((q) => q.rank === rank).sort((a, b) => a.sendMs - b.sendMs);
      t.ok(
        mine.every((q, k) => k === 0 || q.sendMs >= (mine[k - 1]?.endMs ?? Infinity)),
        `rank ${rank}: closed loop, one request at a time`,
      );
      t.ok(
        (mine[0]?.sendMs ?? Infinity) < 50,
        `rank ${rank}: first request right after go (${mine[0]?.sendMs.toFixed(1)} ms)`,
      );
    }

    const html = await readFile(join(dir, 'r.html'), 'utf8');
    t.match(html, /^<!doctype html>/);
    t.equal((html.match(/<svg /g) ?? []).length, 5, 'three CDFs, tokens/s over time, rank timelines');
    t.match(html, /rank 0<\/text>.*rank 1<\/text>/s);
    t.notMatch(html, /<script|<link|<img|<iframe|src=|url\(|@import/i, 'self-contained');
    t.match(html, /=== llama-server latency \(ms\) ===/);
  },
);

t.test('open loop: Poisson arrivals, requests overlap within a rank', async (t) => {
  const server = await startFakeServer(() => ({ kind: 'stream', ttftMs: 50, itlMs: 20, tokens: 5 }), 8);
  t.teardown(() => server.close());
  const dir = t.testdir({});
  const out = io();
  const argv = [
    '--url',
    server.url,
    '--ranks',
    '2',
    '--requests',
    '8',
    '--rate',
    '40',
    '--seed',
    '3',
    '--json',
    join(dir, 'r.json'),
  ];
  t.equal(await runLoadgenCli(argv, out), 0, out.stderr.text);
  t.match(out.stdout.text, /open loop, Poisson arrivals at 40 requests\/s/);
  const json = JSON.parse(await readFile(join(dir, 'r.json'), 'utf8')) as JsonReport;
  t.equal(json.report.ok, 8);
  const plans = planRanks({ requests: 8, ranks: 2, rate: 40, seed: 3 });
  let overlaps = 0;
  for (const plan of plans) {
    const mine = plan.requests.map(({ id, atMs }) => ({ atMs: atMs ?? 0, q: json.requests.find((q) => q.id === id) }));
    for (const { atMs, q } of mine) {
      const late = (q?.sendMs ?? Infinity) - atMs;
      t.ok(late >= -5 && late < 100, `request ${q?.id} sent ${late.toFixed(1)} ms after its planned arrival`);
    }
    for (let k = 1; k < mine.length; k++)
      if ((mine[k]?.q?.sendMs ?? Infinity) < (mine[k - 1]?.q?.endMs ?? 0)) overlaps++;
  }
  t.ok(overlaps > 0, `${overlaps} requests left before the previous one of their rank ended`);
});

t.test('a rank that cannot start: exit 1, nothing sent', async (t) => {
  const server = await startFakeServer(() => ({ kind: 'stream', ttftMs: 0, itlMs: 0, tokens: 1 }), 4);
  t.teardown(() => server.close());
  const out = io();
  const dead = fileURLToPath(new URL('fixtures/dead-rank.mjs', import.meta.url));
  t.equal(await runLoadgenCli(['--url', server.url, '--requests', '4'], { ...out, startRank: forkRank(dead) }), 1);
  t.match(
    out.stderr.text,
    /the ranks did not start, nothing was sent: rank \d: exited with code 3 before it was ready/,
  );
  t.equal(server.seen.length, 0);
  t.equal(out.stdout.text, '');
});
