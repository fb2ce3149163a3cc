// The generated haproxy.cfg: what each part promises (balance, health, affinity, retries, drain), HAProxy's
// own `haproxy -c` accepts it, and real haproxy with it retries exactly what the policy says (stand-in
// replicas that refuse with 503, or take a request and drop it).
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { type HaproxyConfigInput, haproxyConfig } from '../../src/replicas/haproxy-config.ts';
import { findHaproxy } from '../../src/replicas/supervisor.ts';
import { FAIRNESS_HEADERS } from '../../src/server/client-key.ts';
import { closedPort } from '../bench/loadgen/fake-server.ts';

const input: HaproxyConfigInput = {
  bindHost: '0.0.0.0',
  bindPort: 8090,
  servers: [
    { name: 'replica0', host: '127.0.0.1', port: 8101 },
    { name: 'replica1', host: '127.0.0.1', port: 8102 },
  ],
  sessionHeader: 'X-Session-Id',
  tenantHeaders: FAIRNESS_HEADERS,
  statsSocket: '/tmp/replicas-test/haproxy.sock',
  serverTimeoutSeconds: 610,
  drainSeconds: 15,
};

/** The lines of one section, indentation removed. */
function section(text: string, header: string): string[] {
  const lines = text.split('\n');
  const start = lines.indexOf(header);
  if (start < 0) throw new Error(`no section '${header}'`);
  const out: string[] = [];
  for (const line of lines.slice(start + 1)) {
    if (!line.startsWith(' ')) break;
    out.push(line.trim());
  }
  return out;
}

t.test('the configuration says what the launcher promises', async (t) => {
  const text = haproxyConfig(input);
  t.equal(haproxyConfig(input), text, 'pure: the same input, the same text');
  const front = section(text, 'frontend llm');
  t.ok(front.includes('bind 0.0.0.0:8090'));
  t.ok(front.includes('option forwardfor'), "the replicas learn the client's address");
  const back = section(text, 'backend replicas');
  t.ok(back.includes('balance leastconn'), 'fewest outstanding requests');
  t.ok(back.includes('option httpchk GET /health'));
  t.ok(back.includes('http-check expect status 200'), 'a 503 (loading, draining) takes a replica out');
  t.match(back.join('\n'), /default-server check inter 1s fall 1 /);
  t.same(
    back.filter((l) => l.startsWith('server ')),
    ['server replica0 127.0.0.1:8101', 'server replica1 127.0.0.1:8102'],
  );
  // Affinity: the session header first, then the tenant headers, each only when nothing came before.
  t.same(
    back.filter((l) => l.startsWith('http-request set-var')),
    [
      'http-request set-var(txn.affinity) req.hdr(x-session-id)',
      'http-request set-var(txn.affinity) req.hdr(x-llm-d-inference-fairness-id) if !{ var(txn.affinity) -m found }',
      'http-request set-var(txn.affinity) req.hdr(x-gateway-inference-fairness-id) if !{ var(txn.affinity) -m found }',
    ],
  );
  t.ok(back.includes('stick on var(txn.affinity)'));
  const defaults = section(text, 'defaults');
  const retryOn = defaults.filter((l) => l.startsWith('retry-on'));
  t.same(retryOn, ['retry-on conn-failure 503'], 'retried: never reached a replica, or refused before any work');
  t.ok(defaults.includes('option redispatch 1'), 'each retry goes to another replica');
  t.ok(defaults.includes('timeout server 610s'));
  const global = section(text, 'global');
  t.ok(global.includes('hard-stop-after 15s'), 'a soft stop ends after the drain time');
  t.ok(global.includes('stats socket /tmp/replicas-test/haproxy.sock mode 600 level admin'));
});

t.test('names that would break the file are refused', async (t) => {
  t.throws(() => haproxyConfig({ ...input, servers: [] }), /at least one server/);
  t.throws(() => haproxyConfig({ ...input, sessionHeader: 'x-a b' }), /header 'x-a b'/);
  t.throws(() => haproxyConfig({ ...input, statsSocket: '/tmp/a dir/s.sock' }), /stats socket/);
  t.throws(() => haproxyConfig({ ...input, bindHost: '0.0.0.0 #' }), /bind host/);
});

const haproxy = findHaproxy();
t.test(
  'haproxy -c accepts it',
  { skip: haproxy === undefined ? 'haproxy is not installed (Debian/Ubuntu: apt-get install haproxy)' : false },
  async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'haproxy-cfg-'));
    t.teardown(() => rmSync(dir, { recursive: true, force: true }));
    const file = join(dir, 'haproxy.cfg');
    writeFileSync(file, haproxyConfig({ ...input, statsSocket: join(dir, 'haproxy.sock') }));
    const check = spawnSync(haproxy ?? 'haproxy', ['-c', '-f', file], { encoding: 'utf8' });
    t.equal(check.status, 0, `${check.stdout}${check.stderr}`);
    t.match(check.stdout + check.stderr, /Configuration file is valid/);
    t.notMatch(check.stdout + check.stderr, /WARNING/, 'without a warning');
    // And haproxy -c does catch a broken one, so the check above means something.
    writeFileSync(file, haproxyConfig(input).replace('balance leastconn', 'balance fewest'));
    t.not(spawnSync(haproxy ?? 'haproxy', ['-c', '-f', file]).status, 0);
  },
);

/** A stand-in replica: /health 200, and generation answered by `answer`; counts the generation requests. */
async function fakeReplica(
  answer: (req: IncomingMessage, res: ServerResponse) => void,
): Promise<{ port: number; hits: number; close: () => Promise<void> }> {
  const state = { port: 0, hits: 0, close: async () => {} };
  const server = createServer((req, res) => {
    if (req.url === '/health') {
      res.writeHead(200, { 'content-type': 'application/json' }).end('{"status":"ok"}');
      return;
    }
    state.hits++;
    req.resume();
    req.on('end', () => answer(req, res));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  state.port = (server.address() as AddressInfo).port;
  state.close = () =>
    new Promise((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    });
  return state;
}

/** haproxy in the foreground with the generated configuration over `servers`; resolves once it answers. */
async function runHaproxy(
  t: Test,
  servers: Array<{ port: number }>,
): Promise<{ url: string; stop: () => Promise<void> }> {
  const dir = mkdtempSync(join(tmpdir(), 'haproxy-run-'));
  const port = await closedPort();
  const file = join(dir, 'haproxy.cfg');
  writeFileSync(
    file,
    haproxyConfig({
      ...input,
      bindHost: '127.0.0.1',
      bindPort: port,
      servers: servers.map((s, i) => ({ name: `replica${i}`, host: '127.0.0.1', port: s.port })),
      statsSocket: join(dir, 'haproxy.sock'),
    }),
  );
  const child = spawn(haproxy ?? 'haproxy', ['-db', '-f', file], { stdio: 'ignore' });
  const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
  const url = `http://127.0.0.1:${port}`;
  for (;;) {
    const res = await fetch(`${url}/health`).catch(() => undefined);
    if (res?.status === 200) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  const stop = async () => {
    child.kill('SIGTERM');
    await exited;
    rmSync(dir, { recursive: true, force: true });
  };
  t.teardown(stop);
  return { url, stop };
}

const post = (url: string) =>
  fetch(`${url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });

t.test(
  'retries: a 503 (draining, loading) goes to the other replica; a request a replica took is never re-sent',
  { skip: haproxy === undefined ? 'haproxy is not installed (Debian/Ubuntu: apt-get install haproxy)' : false },
  async (t) => {
    const draining = await fakeReplica((_req, res) => res.writeHead(503, { connection: 'close' }).end('{}'));
    const broken = await fakeReplica((_req, res) => res.socket?.destroy());
    const healthy = await fakeReplica((_req, res) => res.writeHead(200).end('{"ok":true}'));
    t.teardown(() => Promise.all([draining.close(), broken.close(), healthy.close()]).then(() => {}));

    const a = await runHaproxy(t, [draining, healthy]);
    const statuses: number[] = [];
    for (let i = 0; i < 6; i++) statuses.push((await post(a.url)).status);
    t.same(statuses, [200, 200, 200, 200, 200, 200], 'every answer comes from the healthy replica');
    t.ok(draining.hits >= 2, `the draining replica was tried (${draining.hits} times) and its 503 retried`);
    await a.stop();

    // A replica that received the request and dropped the connection may have started the work: HAProxy
    // leaves the retry to the client (a 502, or on a kept-alive connection the connection closed, which
    // clients retry the same way), so every request reached exactly one replica.
    const before = { broken: broken.hits, healthy: healthy.hits };
    const b = await runHaproxy(t, [broken, healthy]);
    const answers: Array<number | 'closed'> = [];
    for (let i = 0; i < 6; i++)
      answers.push(
        await post(b.url).then(
          (r) => r.status,
          () => 'closed' as const,
        ),
      );
    const brokenHits = broken.hits - before.broken;
    const healthyHits = healthy.hits - before.healthy;
    t.ok(brokenHits >= 1, 'the broken replica got requests');
    t.equal(answers.filter((s) => s === 200).length, healthyHits, 'the healthy replica answered its own');
    t.equal(answers.filter((s) => s === 502 || s === 'closed').length, brokenHits, "the broken one's came back failed");
    t.equal(brokenHits + healthyHits, 6, 'no request was sent twice');
  },
);
