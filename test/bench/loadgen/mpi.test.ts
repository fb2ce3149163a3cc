// The load generator under MPI: rank and size from the launchers' variables, the coordinator address,
// the TCP rendezvous with a remote rank whose clock is off (its records land in rank 0's clock), and the
// documented command under real mpirun, compared with --ranks on the same fake server.
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { Writable } from 'node:stream';
import t from 'tap';
import { runLoadgenCli } from '../../../src/bench/loadgen/cli.ts';
import {
  DEFAULT_COORDINATOR_PORT,
  MpiError,
  mpiWorld,
  parseCoordinator,
  runRemoteRank,
} from '../../../src/bench/loadgen/mpi.ts';
import { planRanks } from '../../../src/bench/loadgen/plan.ts';
import { epochNow } from '../../../src/bench/loadgen/types.ts';
import { projectRoot } from '../../../src/paths.ts';
import { closedPort, startFakeServer } from './fake-server.ts';

class Capture extends Writable {
  text = '';
  isTTY = false;
  override _write(chunk: Buffer, _encoding: BufferEncoding, done: () => void): void {
    this.text += chunk.toString();
    done();
  }
}

interface JsonRun {
  run: { ranks: number; requests: number };
  report: { ok: number; errors: number; wallMs: number };
  requests: Array<{ id: number; rank: number; ok: boolean; sendMs: number; endMs: number }>;
}

t.test('rank and size: Open MPI, PMI, PMIx (size from --ranks), Slurm; errors say what is missing', async (t) => {
  t.same(mpiWorld({ OMPI_COMM_WORLD_RANK: '2', OMPI_COMM_WORLD_SIZE: '4' }, null), {
    rank: 2,
    size: 4,
    source: 'Open MPI',
  });
  t.same(mpiWorld({ PMI_RANK: '0', PMI_SIZE: '2' }, 2), { rank: 0, size: 2, source: 'PMI' });
  t.same(mpiWorld({ PMIX_RANK: '1' }, 3), { rank: 1, size: 3, source: 'PMIx' });
  t.same(mpiWorld({ SLURM_PROCID: '5', SLURM_NTASKS: '8' }, null), { rank: 5, size: 8, source: 'Slurm' });
  const bad: Array<[Record<string, string>, number | null, RegExp]> = [
    [{}, null, /no MPI rank in the environment .*run it under mpirun/],
    [{ PMIX_RANK: '1' }, null, /world size is not \(PMIx\): pass --ranks N/],
    [{ OMPI_COMM_WORLD_RANK: '0', OMPI_COMM_WORLD_SIZE: '4' }, 3, /--ranks 3 disagrees with the MPI world size 4/],
    [{ OMPI_COMM_WORLD_RANK: '4', OMPI_COMM_WORLD_SIZE: '4' }, null, /rank 4 is outside a world of 4/],
    [{ PMI_RANK: 'x', PMI_SIZE: '2' }, null, /PMI_RANK='x' is not a rank number/],
  ];
  for (const [env, ranks, message] of bad) t.throws(() => mpiWorld(env, ranks), { constructor: MpiError, message });
});

t.test('--coordinator: HOST:PORT, HOST, :PORT, [v6]:PORT; default 127.0.0.1', async (t) => {
  t.same(parseCoordinator(null), { host: '127.0.0.1', port: DEFAULT_COORDINATOR_PORT });
  t.same(parseCoordinator('node0:4000'), { host: 'node0', port: 4000 });
  t.same(parseCoordinator('node0'), { host: 'node0', port: DEFAULT_COORDINATOR_PORT });
  t.same(parseCoordinator(':4001'), { host: '127.0.0.1', port: 4001 });
  t.same(parseCoordinator('[fd00::1]:4002'), { host: 'fd00::1', port: 4002 });
  for (const bad of ['node0:0', 'node0:99999', 'a:b:c', 'node0:x'])
    t.throws(() => parseCoordinator(bad), { constructor: MpiError, message: /--coordinator must be HOST:PORT/ });
});

t.test('rank 0 and a remote rank with a clock 5 s ahead: one report, in rank 0 clock', async (t) => {
  const server = await startFakeServer(() => ({ kind: 'stream', ttftMs: 20, itlMs: 5, tokens: 4 }));
  t.teardown(() => server.close());
  const port = await closedPort();
  const dir = t.testdir({});
  const json = join(dir, 'r.json');
  const args = ['--mpi', '--coordinator', `127.0.0.1:${port}`, '--url', server.url, '--requests', '6', '--rate', '2'];
  const stdout = new Capture();
  const stderr = new Capture() as Capture & NodeJS.WriteStream;
  const log: string[] = [];
  const [code, remote] = await Promise.all([
    runLoadgenCli([...args, '--json', json], {
      stdout,
      stderr,
      env: { OMPI_COMM_WORLD_RANK: '0', OMPI_COMM_WORLD_SIZE: '2' },
    }),
    runRemoteRank(
      { rank: 1, size: 2, source: 'test' },
      { host: '127.0.0.1', port },
      10_000,
      (line) => log.push(line),
      () => epochNow() + 5000,
    ),
  ]);
  t.equal(code, 0, stderr.text);
  t.equal(remote, 0, log.join('\n'));
  t.match(stderr.text, /bench: 2 ranks \(MPI: 2 processes, Open MPI; coordinator 127\.0\.0\.1:\d+\)/);
  const r = JSON.parse(readFileSync(json, 'utf8')) as JsonRun;
  t.equal(r.report.ok, 6);
  t.same(
    r.requests.map((q) => q.rank),
    [0, 1, 0, 1, 0, 1],
    'three requests each, interleaved as with --ranks',
  );
  // Open loop: each request leaves at its planned time after the go signal, measured in rank 0's clock.
  // Unconverted, rank 1 would start 5 s early (all at once) and its times would read 5 s late.
  const planned = new Map(
    planRanks({ requests: 6, ranks: 2, rate: 2, seed: 1 }).flatMap((p) => p.requests.map((q) => [q.id, q.atMs ?? 0])),
  );
  for (const q of r.requests) {
    const at = planned.get(q.id) ?? Number.NaN;
    t.ok(Math.abs(q.sendMs - at) < 150, `request ${q.id} (rank ${q.rank}) sent at ${q.sendMs} ms, planned ${at}`);
  }
  t.ok(r.report.wallMs < 3000, `wall time ${r.report.wallMs} ms, not 5 s more`);
});

t.test('a remote rank with nobody at the coordinator address gives up with a clear message', async (t) => {
  const port = await closedPort();
  const log: string[] = [];
  const code = await runRemoteRank({ rank: 1, size: 2, source: 'test' }, { host: '127.0.0.1', port }, 600, (l) =>
    log.push(l),
  );
  t.equal(code, 1);
  t.match(log.join('\n'), new RegExp(`rank 1: cannot reach rank 0 at 127\\.0\\.0\\.1:${port} .*--coordinator`));
});

const mpirun = (process.env.PATH ?? '')
  .split(delimiter)
  .map((d) => join(d, 'mpirun'))
  .find((p) => existsSync(p));

function run(command: string, args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(command, args, { cwd: projectRoot, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/** The report's section headings, in order. */
function sections(report: string): string[] {
  return report
    .split('\n')
    .filter((l) => /^===|^latency \(ms\)|^throughput$|^requests \d+:/.test(l))
    .map((l) => l.replace(/\d+/g, 'N').replace(/\s+/g, ' ').trim());
}

t.test(
  'mpirun -np 3 npm run -s bench -- --mpi: the same report as --ranks 3',
  { skip: mpirun === undefined ? 'mpirun is not installed (Debian/Ubuntu: apt-get install openmpi-bin)' : false },
  async (t) => {
    const server = await startFakeServer(() => ({ kind: 'stream', ttftMs: 20, itlMs: 5, tokens: 6 }), 1000);
    t.teardown(() => server.close());
    const dir = t.testdir({});
    const common = ['--url', server.url, '--requests', '9', '--max-tokens', '6'];
    const port = await closedPort();
    // Open MPI refuses root unless told; CI runs as root.
    const root = process.getuid?.() === 0 ? ['--allow-run-as-root'] : [];
    const mpi = await run(mpirun ?? 'mpirun', [
      ...root,
      '--oversubscribe',
      '-np',
      '3',
      'npm',
      'run',
      '-s',
      'bench',
      '--',
      '--mpi',
      '--coordinator',
      `127.0.0.1:${port}`,
      ...common,
      '--json',
      join(dir, 'mpi.json'),
    ]);
    t.equal(mpi.code, 0, mpi.stderr);
    const forked = await run('npm', [
      'run',
      '-s',
      'bench',
      '--',
      '--ranks',
      '3',
      ...common,
      '--json',
      join(dir, 'ranks.json'),
    ]);
    t.equal(forked.code, 0, forked.stderr);

    t.equal(mpi.stdout.match(/=== llama-server latency \(ms\) ===/g)?.length, 1, 'one report, from rank 0 alone');
    t.same(sections(mpi.stdout), sections(forked.stdout), 'the same sections');
    t.ok(sections(mpi.stdout).length >= 5);
    t.match(mpi.stdout, /^=== llama-server latency \(ms\) ===\nmean=/, 'the seed block first');
    const a = JSON.parse(readFileSync(join(dir, 'mpi.json'), 'utf8')) as JsonRun;
    const b = JSON.parse(readFileSync(join(dir, 'ranks.json'), 'utf8')) as JsonRun;
    t.equal(a.run.ranks, 3);
    t.equal(b.run.ranks, 3);
    t.same([a.report.ok, a.report.errors], [9, 0]);
    t.same([b.report.ok, b.report.errors], [9, 0]);
    const byRank = (r: JsonRun) => [0, 1, 2].map((k) => r.requests.filter((q) => q.rank === k).map((q) => q.id));
    t.same(byRank(a), byRank(b), 'each rank sent the same requests');
    t.same(byRank(a), [
      [0, 3, 6],
      [1, 4, 7],
      [2, 5, 8],
    ]);
  },
);
