// GET /metrics after known traffic through the real app (tiny model, BatchDecoder, Scheduler): the exposition
// parses, llama-server's metrics are there as llama-server has them, and every figure agrees with what the
// responses reported.

import type { LightMyRequestResponse } from 'fastify';
import t, { type Test } from 'tap';
import { loadModel } from '../helpers/models.ts';
import { sseEvents } from '../server/sse-events.ts';
import {
  type Family,
  histogramOf,
  LLAMA_SERVER_METRICS,
  makeMetricsApp,
  parseExposition,
  sampleValue,
} from './helpers.ts';

const model = await loadModel('tiny');
t.teardown(() => model.dispose());

const CHAT = '/v1/chat/completions';
const KEY = 'sk-metrics-test';
const AUTH = { authorization: `Bearer ${KEY}` };
/** Bans end-of-generation (token 2 in the llama SPM vocabulary) so lengths are exact. */
const NO_EOS = { '2': -100 };
/** " Hello": biased, greedy decoding repeats it, so a stop string is certain to match. */
const HELLO = 15043;
const SLOTS = 2;
const CTX = 1024;

interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
  prompt_tokens_details: { cached_tokens: number };
}
interface Answer {
  finish: string;
  usage: Usage;
}

/** A finished response's finish_reason and usage, streamed (include_usage) or not. */
function answerOf(res: LightMyRequestResponse): Answer {
  if (res.statusCode !== 200) throw new Error(`status ${res.statusCode}: ${res.body}`);
  if (/^text\/event-stream/.test(String(res.headers['content-type']))) {
    const events = sseEvents(res.body) as Array<
      { choices?: Array<{ finish_reason: string | null }>; usage?: Usage | null } | string
    >;
    if (events.at(-1) !== '[DONE]') throw new Error('stream without [DONE]');
    let finish: string | undefined;
    let usage: Usage | undefined;
    for (const e of events) {
      if (typeof e === 'string') continue;
      finish = e.choices?.[0]?.finish_reason ?? finish;
      if (e.usage) usage = e.usage;
    }
    if (finish === undefined || usage === undefined)
      throw new Error(`stream without finish_reason or usage: ${res.body}`);
    return { finish, usage };
  }
  const body = res.json() as { choices: Array<{ finish_reason: string }>; usage: Usage };
  const finish = body.choices[0]?.finish_reason;
  if (finish === undefined) throw new Error(`no choice: ${res.body}`);
  return { finish, usage: body.usage };
}

function checkLlamaServerMetrics(t: Test, families: Map<string, Family>): void {
  for (const m of LLAMA_SERVER_METRICS) {
    const f = families.get(m.name);
    if (!t.ok(f, `${m.name} present`) || f === undefined) continue;
    t.equal(f.type, m.type, `${m.name}: type ${m.type}, as llama-server`);
    t.equal(f.help, m.help, `${m.name}: llama-server's help text`);
    t.same(
      f.samples.map((s) => [s.name, s.labels]),
      [[m.name, {}]],
      `${m.name}: one unlabelled sample, as llama-server`,
    );
  }
  // A family with no samples yet is not printed by llama-server (the per-position speculative counter, before any draft).
  const ours = [...families.entries()]
    .filter(([n, f]) => n.startsWith('llamacpp:') && f.samples.length > 0)
    .map(([n]) => n)
    .sort();
  t.same(ours, LLAMA_SERVER_METRICS.map((m) => m.name).sort(), 'no llamacpp:* names llama-server does not have');
}

t.test('after known traffic, /metrics agrees with the responses', async (t) => {
  const { app, scheduler, gate } = makeMetricsApp(t, model, {
    slots: SLOTS,
    ctxPerSlot: CTX,
    config: { apiKeys: [KEY], bodyLimitBytes: 64 * 1024 },
    // No queue: while both slots are busy, one more request is refused with 429.
    scheduler: { maxQueuedRequests: 0 },
  });
  const answers: Answer[] = [];
  const chat = async (payload: object): Promise<Answer> => {
    const res = await app.inject({ method: 'POST', url: CHAT, headers: AUTH, payload });
    const answer = answerOf(res);
    answers.push(answer);
    return answer;
  };
  const scrape = async (): Promise<{ res: LightMyRequestResponse; families: Map<string, Family> }> => {
    const res = await app.inject({ method: 'GET', url: '/metrics', headers: AUTH });
    t.equal(res.statusCode, 200, 'GET /metrics with the key');
    return { res, families: parseExposition(res.body) };
  };

  // --- completions ---
  const terse = [
    { role: 'system', content: 'You are terse. Answer in as few words as you can, and never repeat yourself.' },
    { role: 'user', content: 'hi' },
  ];
  let a = await chat({ messages: terse, temperature: 0, max_tokens: 6, logit_bias: NO_EOS });
  t.same(
    [a.finish, a.usage.completion_tokens, a.usage.prompt_tokens_details.cached_tokens],
    ['length', 6, 0],
    'max_tokens reached',
  );
  a = await chat({ messages: terse, temperature: 0, max_tokens: 6, logit_bias: NO_EOS });
  t.ok(
    a.usage.prompt_tokens_details.cached_tokens > 0,
    `repeated prompt: ${a.usage.prompt_tokens_details.cached_tokens} cached tokens`,
  );
  a = await chat({
    messages: terse,
    temperature: 0,
    max_tokens: 5,
    logit_bias: NO_EOS,
    stream: true,
    stream_options: { include_usage: true },
  });
  t.same([a.finish, a.usage.completion_tokens], ['length', 5], 'streamed, max_tokens reached');
  t.ok(a.usage.prompt_tokens_details.cached_tokens > 0, 'streamed, repeated prompt: cached tokens');
  const hello = {
    messages: [{ role: 'user', content: 'hi' }],
    temperature: 0,
    max_tokens: 20,
    logit_bias: { [HELLO]: 100 },
  };
  a = await chat({ ...hello, stop: 'lo He' });
  t.same([a.finish, a.usage.completion_tokens], ['stop', 2], 'stop string');
  a = await chat({ ...hello, stop: ['lo He'], stream: true, stream_options: { include_usage: true } });
  t.same([a.finish, a.usage.completion_tokens], ['stop', 2], 'streamed, stop string');
  a = await chat({
    messages: [{ role: 'user', content: 'Tell me a story about a lighthouse.' }],
    temperature: 0,
    max_tokens: 12,
    logit_bias: NO_EOS,
  });
  t.same([a.finish, a.usage.completion_tokens], ['length', 12]);
  a = await chat({
    messages: [{ role: 'user', content: 'Count to ten.' }],
    temperature: 0,
    max_tokens: 9,
    logit_bias: NO_EOS,
    stream: true,
    stream_options: { include_usage: true },
  });
  t.same([a.finish, a.usage.completion_tokens], ['length', 9]);

  // --- both slots busy: the gauges show it, and a third request is refused (429, queue_full) ---
  gate.close();
  const busy = ['alpha', 'beta'].map((word) =>
    chat({ messages: [{ role: 'user', content: word }], temperature: 0, max_tokens: 16, logit_bias: NO_EOS }),
  );
  const deadline = Date.now() + 10_000;
  while (scheduler.busySlots + scheduler.queueLength < 2 && Date.now() < deadline)
    await new Promise((r) => setTimeout(r, 2));
  let { families } = await scrape();
  const processing = sampleValue(families, 'llamacpp:requests_processing');
  const deferred = sampleValue(families, 'llamacpp:requests_deferred');
  t.equal(processing + deferred, 2, `held: ${processing} processing + ${deferred} deferred`);
  t.ok(processing >= 1);
  t.equal(sampleValue(families, 'llama_slots_busy'), processing);
  t.equal(sampleValue(families, 'llama_slots_queue_length'), deferred);
  const full = await app.inject({
    method: 'POST',
    url: CHAT,
    headers: AUTH,
    payload: { messages: [{ role: 'user', content: 'gamma' }], max_tokens: 4 },
  });
  t.equal(full.statusCode, 429, 'queue full');
  gate.open();
  for (const b of await Promise.all(busy))
    t.same([b.finish, b.usage.completion_tokens], ['length', 16], 'the held requests finish');

  // --- refusals ---
  const refusals: Record<string, number> = {
    queue_full: 1,
    auth: 0,
    invalid: 0,
    context_exceeded: 0,
    shutting_down: 0,
    too_large: 0,
  };
  const refuse = async (
    cause: string,
    status: number,
    opts: { headers?: Record<string, string>; payload?: string | object; url?: string; method?: 'GET' | 'POST' },
  ) => {
    const res = await app.inject({
      method: opts.method ?? 'POST',
      url: opts.url ?? CHAT,
      headers: { 'content-type': 'application/json', ...opts.headers },
      ...(opts.payload !== undefined ? { payload: opts.payload } : {}),
    });
    t.equal(res.statusCode, status, `${cause}: ${status} (${res.body.slice(0, 120)})`);
    refusals[cause] = (refusals[cause] ?? 0) + 1;
  };
  const ok = { messages: [{ role: 'user', content: 'hi' }], max_tokens: 2 };
  await refuse('invalid', 400, { headers: AUTH, payload: '{"messages": [' });
  await refuse('invalid', 400, { headers: AUTH, payload: { ...ok, n: 17 } });
  await refuse('invalid', 400, { headers: AUTH, payload: { max_tokens: 2 } });
  await refuse('auth', 401, { headers: { authorization: 'Bearer sk-wrong' }, payload: ok });
  await refuse('auth', 401, { payload: ok });
  await refuse('auth', 401, { method: 'GET', url: '/metrics' });
  await refuse('auth', 401, { method: 'GET', url: '/metrics', headers: { authorization: 'Bearer sk-wrong' } });
  await refuse('context_exceeded', 400, {
    headers: AUTH,
    payload: { messages: [{ role: 'user', content: 'hello '.repeat(CTX + 100) }] },
  });
  await refuse('too_large', 413, {
    headers: AUTH,
    payload: { ...ok, messages: [{ role: 'user', content: 'x'.repeat(70 * 1024) }] },
  });

  // --- the exposition, idle ---
  const scraped = await scrape();
  families = scraped.families;
  t.match(scraped.res.headers['content-type'], /^text\/plain; version=0\.0\.4; charset=utf-8/);
  for (const f of families.values()) {
    t.ok(f.help !== undefined && f.help !== '', `${f.name} has HELP`);
    t.ok(f.type !== undefined, `${f.name} has TYPE`);
  }
  checkLlamaServerMetrics(t, families);

  const sum = (f: (a: Answer) => number) => answers.reduce((n, a) => n + f(a), 0);
  const prompt = sum((a) => a.usage.prompt_tokens);
  const cached = sum((a) => a.usage.prompt_tokens_details.cached_tokens);
  const completion = sum((a) => a.usage.completion_tokens);
  t.ok(cached > 0, `${cached} cached prompt tokens in all`);
  t.equal(
    sampleValue(families, 'llamacpp:prompt_tokens_total') +
      sampleValue(families, 'llamacpp:prompt_tokens_cached_total'),
    prompt,
    'prompt + cached = sum of usage.prompt_tokens',
  );
  t.equal(
    sampleValue(families, 'llamacpp:prompt_tokens_cached_total'),
    cached,
    'cached = sum of usage.prompt_tokens_details.cached_tokens',
  );
  t.equal(
    sampleValue(families, 'llamacpp:tokens_predicted_total'),
    completion,
    'predicted = sum of usage.completion_tokens',
  );
  t.equal(
    sampleValue(families, 'llamacpp:n_tokens_max'),
    Math.max(...answers.map((a) => a.usage.total_tokens)),
    'n_tokens_max = largest total_tokens',
  );
  t.ok(sampleValue(families, 'llamacpp:prompt_seconds_total') > 0);
  t.ok(sampleValue(families, 'llamacpp:tokens_predicted_seconds_total') > 0);
  t.ok(sampleValue(families, 'llamacpp:prompt_tokens_seconds') > 0, 'prompt throughput');
  t.ok(sampleValue(families, 'llamacpp:predicted_tokens_seconds') > 0, 'generation throughput');
  for (const n of ['draft_tokens', 'accepted_tokens', 'drafts'])
    t.equal(sampleValue(families, `llamacpp:spec_decode_num_${n}_total`), 0, `no speculative ${n}`);

  const decodes = sampleValue(families, 'llamacpp:n_decode_total');
  t.ok(decodes > 0, `${decodes} decodes`);
  t.equal(histogramOf(families, 'llama_slots_step_seconds').count, decodes, 'one step observed per decode');
  const perDecode = sampleValue(families, 'llamacpp:n_busy_slots_per_decode');
  t.ok(
    perDecode > 1 && perDecode <= SLOTS,
    `n_busy_slots_per_decode ${perDecode} in (1, ${SLOTS}]: two requests were decoded together`,
  );

  const byFinish: Record<string, number> = {};
  for (const a of answers) byFinish[a.finish] = (byFinish[a.finish] ?? 0) + 1;
  t.same(byFinish, { length: 7, stop: 2 });
  const requests = families.get('llama_slots_requests_total');
  t.equal(requests?.type, 'counter');
  t.same(
    Object.fromEntries((requests?.samples ?? []).map((s) => [s.labels.finish_reason, s.value])),
    byFinish,
    'requests by finish_reason match the responses',
  );
  const rejections = families.get('llama_slots_rejections_total');
  t.equal(rejections?.type, 'counter');
  t.same(
    Object.fromEntries((rejections?.samples ?? []).map((s) => [s.labels.cause, s.value])),
    refusals,
    'rejections by cause match the refusals',
  );

  const n = answers.length;
  for (const name of [
    'llama_slots_time_to_first_token_seconds',
    'llama_slots_request_duration_seconds',
    'llama_slots_queue_time_seconds',
    'llama_slots_prompt_tokens',
    'llama_slots_generated_tokens',
  ]) {
    t.equal(histogramOf(families, name).count, n, `${name}: one observation per finished request (${n})`);
  }
  t.equal(histogramOf(families, 'llama_slots_prompt_tokens').sum, prompt, 'prompt tokens per request sum to usage');
  t.equal(
    histogramOf(families, 'llama_slots_generated_tokens').sum,
    completion,
    'generated tokens per request sum to usage',
  );
  const e2e = histogramOf(families, 'llama_slots_request_duration_seconds');
  const ttft = histogramOf(families, 'llama_slots_time_to_first_token_seconds');
  t.ok(e2e.sum > 0 && ttft.sum > 0 && ttft.sum <= e2e.sum, 'TTFT within end-to-end time');
  // One gap between consecutive tokens a client received.
  t.equal(
    histogramOf(families, 'llama_slots_inter_token_latency_seconds').count,
    sum((a) => Math.max(0, a.usage.completion_tokens - 1)),
    'inter-token gaps',
  );

  for (const name of [
    'llamacpp:requests_processing',
    'llamacpp:requests_deferred',
    'llama_slots_busy',
    'llama_slots_queue_length',
  ]) {
    t.equal(sampleValue(families, name), 0, `${name} is 0 when idle`);
  }
  t.equal(sampleValue(families, 'llama_slots_kv_cells_capacity'), SLOTS * CTX);
  const used = sampleValue(families, 'llama_slots_kv_cells_used');
  t.ok(used > 0 && used <= SLOTS * CTX, `${used} KV cells hold cached prompts`);

  for (const name of [
    'process_resident_memory_bytes',
    'process_cpu_seconds_total',
    'process_start_time_seconds',
    'nodejs_heap_size_used_bytes',
  ]) {
    t.ok(families.has(name), `process metric ${name}`);
  }
  t.ok(sampleValue(families, 'process_resident_memory_bytes') > 0);
});

t.test('without API keys, /metrics is open; with them, it needs one', async (t) => {
  const open = makeMetricsApp(t, model);
  let res = await open.app.inject({ method: 'GET', url: '/metrics' });
  t.equal(res.statusCode, 200);
  checkLlamaServerMetrics(t, parseExposition(res.body));

  const locked = makeMetricsApp(t, model, { config: { apiKeys: [KEY] } });
  res = await locked.app.inject({ method: 'GET', url: '/metrics' });
  t.equal(res.statusCode, 401, 'no key: 401');
  t.match(res.headers['content-type'], /application\/json/);
  t.notMatch(res.body, /llamacpp:/, 'nothing of the metrics');
  res = await locked.app.inject({ method: 'GET', url: '/metrics', headers: { 'x-api-key': KEY } });
  t.equal(res.statusCode, 200, 'X-Api-Key works too');
  t.equal(
    sampleValue(parseExposition(res.body), 'llama_slots_rejections_total', { cause: 'auth' }),
    1,
    'the refused scrape was counted',
  );
});

t.test('the parser is strict', async (t) => {
  const good =
    '# HELP a_total x\\\\y\n# TYPE a_total counter\na_total{l="q\\"\\n"} 1.5e3\n# HELP h z\n# TYPE h histogram\nh_bucket{le="1"} 1\nh_bucket{le="+Inf"} 2\nh_sum 3\nh_count 2\n';
  const f = parseExposition(good);
  t.equal(f.get('a_total')?.help, 'x\\y');
  t.equal(sampleValue(f, 'a_total', { l: 'q"\n' }), 1500);
  t.same(histogramOf(f, 'h'), {
    buckets: [
      { le: 1, count: 1 },
      { le: Infinity, count: 2 },
    ],
    sum: 3,
    count: 2,
  });
  t.throws(() => parseExposition('# TYPE a counter\nb 1\n'), /outside its family/);
  t.throws(() => parseExposition('# TYPE a counter\na 1\n# TYPE a counter\n'), /twice|TYPE/);
  t.throws(() => parseExposition('a{l=x} 1\n'), /unquoted|outside/);
  t.throws(() => parseExposition('# TYPE a gauge\na one\n'), /bad sample value/);
  t.throws(
    () =>
      histogramOf(
        parseExposition('# TYPE h histogram\nh_bucket{le="1"} 2\nh_bucket{le="+Inf"} 1\nh_sum 0\nh_count 1\n'),
        'h',
      ),
    /cumulative/,
  );
});
