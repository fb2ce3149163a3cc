// The memory setup a user gets by default, over HTTP: no -np (4 slots over one unified KV pool of -c cells), the
// 8 GiB host-RAM prompt cache, admission with an output reservation and preemption. The harness is built from the
// flags exactly as `npm start` builds it (src/entry/engine-options.ts). Under a pool too small for every request at
// once: requests are preempted and resume, prompts evicted to RAM come back restored, and every answer is what the
// same request gets alone on a roomy server (greedy; up to a numerical tie, src/bench/greedy.ts).
import type { FastifyInstance } from 'fastify';
import t, { type Test } from 'tap';
import { chatPositions, compareGreedy, completionPositions, type Position } from '../../../src/bench/greedy.ts';
import { syntheticPrompt } from '../../helpers/decode.ts';
import { loadModel } from '../../helpers/models.ts';
import { type Harness, makeHarness, NO_EOS } from '../harness.ts';

const model = await loadModel('tiny');
t.teardown(() => model.dispose());

// What a user starts with, but a small pool. One thread: the test shares 2 cores with the rest of the machine.
const DEFAULT_FLAGS = ['-c', '512', '-t', '1', '--metrics'];
// The solo reference: one request at a time, a slot with room for everything, nothing kept between requests.
const SOLO_FLAGS = ['-np', '1', '-c', '2048', '-t', '1', '--cache-ram', '0'];

interface Completion {
  tokens: number[];
  positions: Position[];
  cached: number;
  status: number;
}

async function completion(app: FastifyInstance, prompt: number[], nPredict: number): Promise<Completion> {
  const res = await app.inject({
    method: 'POST',
    url: '/completion',
    payload: { prompt, n_predict: nPredict, temperature: 0, return_tokens: true, n_probs: 2, logit_bias: NO_EOS },
  });
  const body = res.json() as Parameters<typeof completionPositions>[0] & {
    tokens?: number[];
    timings?: { cache_n: number };
  };
  return {
    tokens: body.tokens ?? [],
    positions: completionPositions(body),
    cached: body.timings?.cache_n ?? -1,
    status: res.statusCode,
  };
}

async function metric(app: FastifyInstance, name: string): Promise<number> {
  const text = (await app.inject({ method: 'GET', url: '/metrics' })).body;
  const m = new RegExp(`^${name.replace(/[:]/g, '\\$&')} ([0-9.e+]+)$`, 'm').exec(text);
  return m?.[1] === undefined ? Number.NaN : Number(m[1]);
}

async function solo(t: Test, requests: Array<{ prompt: number[]; n: number }>): Promise<Position[][]> {
  const reference = await makeHarness(t, model, { flags: SOLO_FLAGS });
  const out: Position[][] = [];
  for (const r of requests) out.push((await completion(reference.app, r.prompt, r.n)).positions);
  return out;
}

function sameAsSolo(t: Test, ours: Position[], solo: Position[] | undefined, what: string): void {
  const c = compareGreedy(ours, solo ?? []);
  t.equal(
    c.problem,
    null,
    `${what} is its solo run (${c.equal} tokens equal${c.tieAt !== null ? ', then a numerical tie' : ''})`,
  );
}

async function everySlotIdle(t: Test, h: Harness): Promise<void> {
  const idle = ['idle', 'idle', 'idle', 'idle'];
  t.same(
    h.scheduler.snapshot().map((s) => s.state),
    idle,
    'every slot idle afterwards, as the scheduler sees them',
  );
  t.same(await h.steps.states(), idle, 'and as the decoder holds them');
  t.equal(h.scheduler.queueLength, 0);
}

t.test('the defaults: 4 slots over one pool of -c cells, the RAM cache on', async (t) => {
  const h = await makeHarness(t, model, { flags: DEFAULT_FLAGS });
  t.equal(h.decoder.slots, 4, 'no -np: four slots');
  t.equal(h.decoder.info.kvUnified, true, 'one unified pool');
  t.equal(h.decoder.ctxPerSlot, 512, 'a slot may take the whole pool');
  t.equal(h.scheduler.promptCacheStats().capacityBytes, 8192 * 1024 * 1024, 'the 8 GiB host-RAM cache');
});

t.test('a pool too small for everyone: preemptions, and every answer is its solo run', async (t) => {
  // Six 60-token prompts generating 230 each, in a pool of 512 cells. Admission reserves 128 of each output, so two
  // start (2 x 188 cells); as they grow past that (2 x 290 > 512) the pool runs out and the most recently started
  // gives its slot up, to resume later.
  const requests = Array.from({ length: 6 }, (_, k) => ({ prompt: syntheticPrompt(60, 200 + k), n: 230 }));
  const reference = await solo(t, requests);
  const h = await makeHarness(t, model, { flags: DEFAULT_FLAGS });
  const answers = await Promise.all(requests.map((r) => completion(h.app, r.prompt, r.n)));
  t.same(
    answers.map((a) => a.status),
    requests.map(() => 200),
  );
  for (const [k, a] of answers.entries()) sameAsSolo(t, a.positions, reference[k], `request ${k}`);
  const preemptions = h.ended.reduce((n, s) => n + s.preemptions, 0);
  t.ok(preemptions >= 1, `${preemptions} preemptions`);
  t.equal(await metric(h.app, 'llama_slots_preemptions_total'), preemptions, 'the metric counts them');
  t.ok(h.steps.maxCellsUsed <= 512, `the pool never held more than its cells (${h.steps.maxCellsUsed})`);
  await everySlotIdle(t, h);
});

t.test('more prompts than slots come back: restored from RAM, the same answers', async (t) => {
  // Eight 120-token prompts through four slots, then each again with one more token: the slots hold at most four,
  // so at least four come back from the host-RAM cache (the others from their slot).
  const first = Array.from({ length: 8 }, (_, k) => ({ prompt: syntheticPrompt(120, 300 + k), n: 8 }));
  const again = first.map((r, k) => ({ prompt: [...r.prompt, 500 + k], n: 8 }));
  const reference = await solo(t, [...first, ...again]);
  const h = await makeHarness(t, model, { flags: DEFAULT_FLAGS });
  const one = await Promise.all(first.map((r) => completion(h.app, r.prompt, r.n)));
  const hitsBefore = await metric(h.app, 'llama_slots_prompt_cache_hits_total');
  const two: Completion[] = [];
  for (const r of again) two.push(await completion(h.app, r.prompt, r.n));
  for (const [k, a] of [...one, ...two].entries()) sameAsSolo(t, a.positions, reference[k], `request ${k}`);
  for (const [k, a] of two.entries())
    t.ok(a.cached >= first[k]!.prompt.length, `returning prompt ${k}: ${a.cached} tokens cached`);
  const hits = (await metric(h.app, 'llama_slots_prompt_cache_hits_total')) - hitsBefore;
  t.ok(hits >= 4, `${hits} prompts restored from RAM`);
  t.equal(h.scheduler.promptCacheStats().hits, hits + hitsBefore, "the metric is the cache's own count");
  const restored = await metric(h.app, 'llama_slots_prompt_cache_restored_tokens_total');
  t.ok(restored >= hits * 120, `restored tokens ${restored}`);
  const cached = two.reduce((n, a) => n + a.cached, 0);
  t.ok(cached >= restored, `the returning prompts reused ${cached} tokens, at least the ${restored} restored from RAM`);
  await everySlotIdle(t, h);
});

t.test('a grammar survives a preemption: the resumed output goes on inside it', async (t) => {
  // Chat completions under a JSON schema, in a pool that forces preemptions: whichever is preempted resumes inside
  // its grammar. tiny-qwen: its ChatML template's markers are tokens of its vocabulary, as the chat layer's
  // output-format grammar expects.
  const qwen = await loadModel('tiny-qwen');
  t.teardown(() => qwen.dispose());
  const schema = {
    type: 'object',
    properties: { words: { type: 'array', items: { type: 'string', maxLength: 12 }, minItems: 500, maxItems: 500 } },
    required: ['words'],
    additionalProperties: false,
  };
  const payload = (k: number) => ({
    messages: [{ role: 'user', content: `Request ${k}: ${'tell me more. '.repeat(4)}` }],
    max_tokens: 230,
    temperature: 0,
    logprobs: true,
    top_logprobs: 2,
    // 500 words do not fit: every answer runs to max_tokens.
    response_format: { type: 'json_schema', json_schema: { name: 'w', schema } },
  });
  const bodies = [0, 1, 2, 3, 4].map((k) => payload(k));
  const soloH = await makeHarness(t, qwen, { flags: SOLO_FLAGS });
  const reference: Position[][] = [];
  for (const b of bodies) {
    const res = await soloH.app.inject({ method: 'POST', url: '/v1/chat/completions', payload: b });
    t.equal(res.statusCode, 200, res.statusCode === 200 ? 'solo: 200' : res.body);
    reference.push(chatPositions(res.json()));
  }
  const h = await makeHarness(t, qwen, { flags: DEFAULT_FLAGS });
  const answers = await Promise.all(
    bodies.map((b) => h.app.inject({ method: 'POST', url: '/v1/chat/completions', payload: b })),
  );
  for (const [k, a] of answers.entries()) {
    t.equal(a.statusCode, 200, a.statusCode === 200 ? `answer ${k}: 200` : a.body);
    sameAsSolo(t, chatPositions(a.json()), reference[k], `answer ${k}`);
  }
  const preempted = h.ended.filter((s) => s.preemptions > 0).length;
  t.ok(preempted >= 1, `${preempted} requests were preempted`);
  for (const [k, a] of answers.entries()) {
    const choice = (a.json() as { choices: [{ message: { content: string }; finish_reason: string }] }).choices[0];
    t.equal(choice.finish_reason, 'length');
    // Cut by max_tokens: JSON so far, each word well-formed.
    const prefix = /^\s*\{\s*"words"\s*:\s*\[(\s*"[^"\\]{0,12}"\s*,)*\s*("[^"\\]{0,12}"?)?\s*$/;
    t.match(choice.message.content, prefix, `answer ${k} follows the schema as far as it got`);
  }
  await everySlotIdle(t, h);
});
