// scripts/run_2ranks.sh: the seed's run (2 ranks, 10 requests, max_tokens 64) through npm run bench.
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { closedPort, startFakeServer } from './loadgen/fake-server.ts';

const script = fileURLToPath(new URL('../../scripts/run_2ranks.sh', import.meta.url));

/** Runs the script with a stand-in `npm` first on PATH that prints the arguments it was given. */
function run(args: string[]): Promise<{ status: number | null; stdout: string; stderr: string }> {
  const bin = t.testdir({});
  const npm = join(bin, 'npm');
  writeFileSync(npm, '#!/bin/sh\necho "npm $*"\n');
  chmodSync(npm, 0o755);
  // spawnSync would block the event loop that the fake server answers on.
  return new Promise((resolve) => {
    const child = spawn('bash', [script, ...args], { env: { ...process.env, PATH: `${bin}:${process.env.PATH}` } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.on('close', (status) => resolve({ status, stdout, stderr }));
  });
}

t.test('no server: says so, and how to start one', async (t) => {
  const url = `http://127.0.0.1:${await closedPort()}`;
  const r = await run(['--url', url]);
  t.equal(r.status, 1);
  t.match(r.stderr, `no server is answering at ${url}`);
  t.match(r.stderr, /npm start/);
  t.equal(r.stdout, '', 'the load generator is not started');
});

t.test('server up: npm run bench with the seed settings, extra arguments passed through', async (t) => {
  const server = await startFakeServer(() => ({ kind: 'status', status: 500, body: '{}' }), 0);
  t.teardown(() => server.close());
  const r = await run([`--url=${server.url}`, '--json', 'out.json']);
  t.equal(r.status, 0, r.stderr);
  t.equal(
    r.stdout.trim(),
    `npm run --silent bench -- --url ${server.url} --ranks 2 --requests 10 --max-tokens 64 --url=${server.url} --json out.json`,
  );
  t.ok(spawnSync('bash', ['-n', script]).status === 0, 'valid bash');
});
