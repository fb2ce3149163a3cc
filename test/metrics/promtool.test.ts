// `promtool check metrics` on our /metrics after traffic. promtool parses the exposition (exit 1 on any error)
// and lints it (exit 3 when it has remarks). It remarks on llama-server's llamacpp:* names, which we keep as
// llama-server has them so its dashboards work: those remarks must be exactly the ones promtool makes on
// llama-server's own /metrics, and everything else (our llama_slots_* metrics, the process metrics) must
// pass without a remark. The same holds for vLLM's vllm:* names, kept as vLLM has them for the routers that
// read them (the Gateway API Inference Extension's Endpoint Picker).
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import t from 'tap';
import { loadModel } from '../helpers/models.ts';
import { LLAMA_SERVER_METRICS, makeMetricsApp, parseExposition, VLLM_METRICS } from './helpers.ts';

const promtool = (process.env.PATH ?? '')
  .split(delimiter)
  .map((dir) => join(dir, 'promtool'))
  .find((p) => existsSync(p));
const skip = promtool === undefined ? 'promtool is not installed (Debian/Ubuntu: apt-get install prometheus)' : false;

/** Exit 0: no problem. Exit 3: lint remarks only (`promtool check metrics` in Prometheus 2.x). Exit 1: unreadable. */
const LINT_EXIT = 3;

function check(exposition: string): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(promtool ?? 'promtool', ['check', 'metrics'], {
      stdio: ['pipe', 'pipe', 'pipe'],
      timeout: 30_000,
    });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, output }));
    child.stdin.on('error', () => {});
    child.stdin.end(exposition);
  });
}

/** `<metric> <text>` per remark. */
function remarks(output: string): Array<{ metric: string; text: string }> {
  return output
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => {
      const i = l.indexOf(' ');
      return { metric: l.slice(0, i), text: l.slice(i + 1) };
    });
}

/** The exposition without the families `drop` names (samples follow their family's HELP/TYPE lines). */
function withoutFamilies(text: string, drop: (name: string) => boolean): string {
  let family = '';
  return text
    .split('\n')
    .filter((line) => {
      const meta = /^# (?:HELP|TYPE) (\S+)/.exec(line);
      if (meta?.[1]) family = meta[1];
      return line.trim() === '' || !drop(family);
    })
    .join('\n');
}

const COLON = "metric names should not contain ':'";
/** prom-client's default metrics: gauges of Node's active handles, requests and resources named *_total. */
const PROM_CLIENT_GAUGES = [
  'nodejs_active_handles_total',
  'nodejs_active_requests_total',
  'nodejs_active_resources_total',
];
const TOTAL_ON_GAUGE = 'non-counter metrics should not have "_total" suffix';

t.test('promtool check metrics: only the remarks llama-server gets too', { skip }, async (t) => {
  const model = await loadModel('tiny');
  t.teardown(() => model.dispose());
  const { app } = makeMetricsApp(t, model, { config: { apiKeys: ['sk-lint'] } });
  const headers = { authorization: 'Bearer sk-lint' };
  const messages = [{ role: 'user', content: 'hi' }];
  for (const stream of [false, true]) {
    const res = await app.inject({
      method: 'POST',
      url: '/v1/chat/completions',
      headers,
      payload: { messages, temperature: 0, max_tokens: 4, stream },
    });
    t.equal(res.statusCode, 200);
  }
  t.equal((await app.inject({ method: 'POST', url: '/v1/chat/completions', payload: { messages } })).statusCode, 401);
  const res = await app.inject({ method: 'GET', url: '/metrics', headers });
  t.equal(res.statusCode, 200);
  const exposition = res.body;
  const families = parseExposition(exposition);
  t.ok(families.has('llama_slots_request_duration_seconds') && families.has('process_resident_memory_bytes'));

  const whole = await check(exposition);
  t.equal(
    whole.code,
    LINT_EXIT,
    `the whole exposition parses; lint remarks only (exit ${LINT_EXIT}, not 1):\n${whole.output}`,
  );
  const found = remarks(whole.output);
  const llamacpp = found.filter((r) => r.metric.startsWith('llamacpp:'));
  // Exactly what promtool says about llama-server's /metrics: a ':' in every name (Prometheus reserves colons
  // for recording rules), and n_tokens_max, a counter in llama-server, lacks _total.
  const expected = [
    ...LLAMA_SERVER_METRICS.map((m) => `${m.name} ${COLON}`),
    `llamacpp:n_tokens_max counter metrics should have "_total" suffix`,
  ];
  t.same(
    llamacpp.map((r) => `${r.metric} ${r.text}`).sort(),
    expected.sort(),
    "llamacpp:* remarks are llama-server's own",
  );
  t.same(
    found
      .filter((r) => r.metric.startsWith('vllm:'))
      .map((r) => `${r.metric} ${r.text}`)
      .sort(),
    VLLM_METRICS.map((name) => `${name} ${COLON}`).sort(),
    "vllm:* remarks: the colon, as on vLLM's own /metrics",
  );
  const rest = found.filter((r) => !r.metric.startsWith('llamacpp:') && !r.metric.startsWith('vllm:'));
  for (const r of rest)
    t.ok(
      PROM_CLIENT_GAUGES.includes(r.metric) && r.text === TOTAL_ON_GAUGE,
      `only prom-client's own names otherwise: ${r.metric} ${r.text}`,
    );
  t.notOk(
    found.some((r) => r.metric.startsWith('llama_slots_')),
    'no remark on our llama_slots_* metrics',
  );

  const ours = withoutFamilies(
    exposition,
    (name) => name.startsWith('llamacpp:') || name.startsWith('vllm:') || PROM_CLIENT_GAUGES.includes(name),
  );
  t.ok(parseExposition(ours).has('llama_slots_requests_total'));
  const clean = await check(ours);
  t.equal(clean.code, 0, `everything else passes (exit 0):\n${clean.output}`);
  t.equal(clean.output.trim(), '', 'without a remark');
});

t.test('promtool tells a broken exposition (exit 1) from lint remarks (exit 3)', { skip }, async (t) => {
  const broken = await check('llama_slots_busy{slot=1} 0\n');
  t.equal(broken.code, 1);
  t.match(broken.output, /error while linting/);
  const linted = await check('# HELP a:b x\n# TYPE a:b gauge\na:b 1\n');
  t.equal(linted.code, LINT_EXIT);
  t.equal(linted.output.trim(), `a:b ${COLON}`);
});
