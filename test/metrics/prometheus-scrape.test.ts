// A real Prometheus scrapes the real server process (API key as the scrape's bearer credentials); what it
// stores is what the responses reported.
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import t from 'tap';
import { modelPath } from '../helpers/models.ts';
import { startServer } from '../helpers/server-process.ts';

const PROMETHEUS = '/usr/bin/prometheus';
const skip = existsSync(PROMETHEUS)
  ? false
  : `${PROMETHEUS} is not installed (Debian/Ubuntu: apt-get install prometheus)`;
const KEY = 'sk-scrape-test';
/** How long Prometheus gets to start, and then to see a value (scrapes are 1 s apart). */
const WAIT_MS = 30_000;

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const address = s.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      s.close(() => resolve(port));
    });
  });
}

/** Polls `probe` until it returns something other than undefined, for at most `ms`. */
async function until<T>(
  what: string,
  ms: number,
  probe: () => Promise<T | undefined>,
  detail: () => string = () => '',
): Promise<T> {
  const deadline = Date.now() + ms;
  let last: unknown;
  for (;;) {
    try {
      const v = await probe();
      if (v !== undefined) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline)
      throw new Error(
        `timed out after ${ms} ms waiting for ${what}${last ? ` (last error: ${String(last)})` : ''}\n${detail()}`,
      );
    await new Promise((r) => setTimeout(r, 200));
  }
}

async function getJson(url: string): Promise<unknown> {
  const res = await fetch(url, { signal: AbortSignal.timeout(5000) });
  if (res.status !== 200) throw new Error(`${url}: ${res.status}`);
  return res.json();
}

/** Ends a child process: SIGTERM, then SIGKILL if it has not exited within `ms`. */
async function terminate(child: ChildProcess, ms = 10_000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), ms);
  await exited;
  clearTimeout(timer);
}

interface Vector {
  status: string;
  data: { resultType: string; result: Array<{ metric: Record<string, string>; value: [number, string] }> };
}

t.test('Prometheus scrapes /metrics with the API key and stores what the responses reported', { skip }, async (t) => {
  const server = await startServer([
    '-m',
    await modelPath('tiny'),
    '-np',
    '2',
    '-c',
    '1024',
    '--api-key',
    KEY,
    '--metrics',
  ]);
  t.teardown(() => server.stop());
  const target = new URL(server.url).host;

  const dir = t.testdir();
  const config = join(dir, 'prometheus.yml');
  writeFileSync(
    config,
    [
      'global:',
      '  scrape_interval: 1s',
      '  scrape_timeout: 1s',
      '  evaluation_interval: 1s',
      'scrape_configs:',
      '  - job_name: llama-slots-server',
      '    metrics_path: /metrics',
      '    authorization:',
      '      type: Bearer',
      `      credentials: ${KEY}`,
      '    static_configs:',
      `      - targets: ['${target}']`,
      '',
    ].join('\n'),
  );
  const port = await freePort();
  const prometheus = spawn(
    PROMETHEUS,
    [
      `--config.file=${config}`,
      `--storage.tsdb.path=${join(dir, 'data')}`,
      `--web.listen-address=127.0.0.1:${port}`,
      '--log.level=warn',
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let log = '';
  prometheus.stdout.on('data', (d: Buffer) => (log += d.toString()));
  prometheus.stderr.on('data', (d: Buffer) => (log += d.toString()));
  t.teardown(() => terminate(prometheus));
  const api = `http://127.0.0.1:${port}`;
  const detail = () => `prometheus output:\n${log}\nserver output:\n${server.output().slice(-2000)}`;
  await until(
    'Prometheus to be ready',
    WAIT_MS,
    async () => {
      if (prometheus.exitCode !== null) throw new Error(`prometheus exited (${prometheus.exitCode})`);
      const res = await fetch(`${api}/-/ready`, { signal: AbortSignal.timeout(2000) });
      return res.status === 200 ? true : undefined;
    },
    detail,
  );

  // Traffic: the numbers Prometheus must end up with.
  let completion = 0;
  let prompt = 0;
  const n = 3;
  for (let i = 0; i < n; i++) {
    const res = await fetch(`${server.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${KEY}` },
      body: JSON.stringify({
        messages: [{ role: 'user', content: `Say something, ${i}` }],
        temperature: 0,
        max_tokens: 5 + i,
      }),
      signal: AbortSignal.timeout(30_000),
    });
    t.equal(res.status, 200);
    const body = (await res.json()) as { usage: { prompt_tokens: number; completion_tokens: number } };
    completion += body.usage.completion_tokens;
    prompt += body.usage.prompt_tokens;
  }
  t.ok(completion > 0, `${completion} completion tokens, ${prompt} prompt tokens`);

  const query = async (q: string): Promise<number | undefined> => {
    const v = (await getJson(`${api}/api/v1/query?query=${encodeURIComponent(q)}`)) as Vector;
    const value = v.data.result[0]?.value[1];
    return value === undefined ? undefined : Number(value);
  };
  const predicted = await until(
    `llamacpp:tokens_predicted_total = ${completion}`,
    WAIT_MS,
    async () => ((await query('llamacpp:tokens_predicted_total')) === completion ? completion : undefined),
    detail,
  );
  t.equal(predicted, completion, 'llamacpp:tokens_predicted_total in Prometheus = sum of usage.completion_tokens');
  // Scraped together with it, so already there.
  t.equal(
    await query('llamacpp:prompt_tokens_total + llamacpp:prompt_tokens_cached_total'),
    prompt,
    'prompt tokens, cached or not = sum of usage.prompt_tokens',
  );
  t.equal(await query('llama_slots_request_duration_seconds_count'), n, 'our histograms are stored too');
  t.equal(await query('sum(llama_slots_requests_total)'), n);
  t.equal(await query('llama_slots_rejections_total{cause="auth"}'), 0, "Prometheus's scrapes carry the key");

  const targets = (await getJson(`${api}/api/v1/targets`)) as {
    data: {
      activeTargets: Array<{ health: string; lastError: string; scrapeUrl: string; labels: Record<string, string> }>;
    };
  };
  t.equal(targets.data.activeTargets.length, 1);
  const [active] = targets.data.activeTargets;
  t.equal(active?.health, 'up', 'the target is healthy');
  t.equal(active?.lastError, '');
  t.equal(active?.scrapeUrl, `http://${target}/metrics`);
  t.equal(active?.labels.job, 'llama-slots-server');

  // Prometheus took llama-server's types from our TYPE lines.
  const metadata = (await getJson(`${api}/api/v1/metadata`)) as {
    data: Record<string, Array<{ type: string; help: string }>>;
  };
  t.equal(metadata.data['llamacpp:tokens_predicted_total']?.[0]?.type, 'counter');
  t.equal(metadata.data['llamacpp:n_tokens_max']?.[0]?.type, 'counter');
  t.equal(metadata.data['llamacpp:requests_processing']?.[0]?.type, 'gauge');
  t.equal(metadata.data.llama_slots_time_to_first_token_seconds?.[0]?.type, 'histogram');

  await terminate(prometheus);
  t.equal(await server.stop(), 0, 'the server stops cleanly');
});
