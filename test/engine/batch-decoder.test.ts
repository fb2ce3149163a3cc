import t from 'tap';
import { nativeDecoderOptions } from '../../src/engine/batch-decoder.ts';
import { BatchDecoder, loadAddon, type Model } from '../../src/engine/index.ts';
import { ContextExceededError } from '../../src/errors.ts';
import { runToEnd, syntheticPrompt } from '../helpers/decode.ts';
import { loadModel } from '../helpers/models.ts';

const model = await loadModel('tiny');
t.teardown(() => model.dispose());

async function alone(
  m: Model,
  prompt: number[],
  maxTokens: number,
  opts: Partial<ConstructorParameters<typeof BatchDecoder>[1]> = {},
) {
  const d = new BatchDecoder(m, { slots: 1, ctxPerSlot: 1200, batchSize: 512, ...opts });
  try {
    d.start(0, prompt, { maxTokens });
    return (await runToEnd(d, [0])).get(0);
  } finally {
    d.dispose();
  }
}

t.test('greedy output equals the plain single-sequence llama.h loop, token for token', async (t) => {
  for (const seed of [1, 2, 3]) {
    const prompt = syntheticPrompt(24, seed);
    const reference = await model.referenceGreedy(prompt, { nPredict: 32 });
    const ours = await alone(model, prompt, 32);
    t.same(ours?.tokens, reference, `prompt ${seed}`);
    const pieces = Buffer.concat(reference.map((id) => model.tokenBytes(id))).toString('utf8');
    t.equal(ours?.text, pieces, 'text is the concatenated token pieces');
  }
});

t.test('batch invariance: a prompt decodes the same alone and beside 3 others', async (t) => {
  const prompts = [1, 2, 3, 4].map((s) => syntheticPrompt(16 + s * 5, 10 + s));
  const solo = await alone(model, prompts[0] ?? [], 40);
  const d = new BatchDecoder(model, { slots: 4, ctxPerSlot: 256, batchSize: 512 });
  t.teardown(() => d.dispose());
  for (const [slot, p] of prompts.entries()) d.start(slot, p, { maxTokens: 40 });
  const all = await runToEnd(d, [0, 1, 2, 3]);
  t.same(all.get(0)?.tokens, solo?.tokens, 'slot 0 matches its solo run');
  for (let slot = 1; slot < 4; slot++) {
    t.same(
      all.get(slot)?.tokens,
      (await alone(model, prompts[slot] ?? [], 40))?.tokens,
      `slot ${slot} matches its solo run`,
    );
  }
});

t.test('a request that joins while others generate (continuous batching) is unaffected', async (t) => {
  const a = syntheticPrompt(30, 21);
  const b = syntheticPrompt(50, 22);
  const d = new BatchDecoder(model, { slots: 2, ctxPerSlot: 256, batchSize: 64 });
  t.teardown(() => d.dispose());
  d.start(0, a, { maxTokens: 30 });
  for (let k = 0; k < 6; k++) await d.step(16);
  d.start(1, b, { maxTokens: 20 });
  const rest = await runToEnd(d, [1], 16);
  t.same(rest.get(1)?.tokens, (await alone(model, b, 20))?.tokens);
});

t.test('prefix reuse keeps the shared prefix and does not change the output', async (t) => {
  const shared = syntheticPrompt(60, 31);
  const first = [...shared, ...syntheticPrompt(20, 32).slice(1)];
  const second = [...shared, ...syntheticPrompt(25, 33).slice(1)];
  const d = new BatchDecoder(model, { slots: 2, ctxPerSlot: 512, batchSize: 128 });
  t.teardown(() => d.dispose());
  t.equal(d.start(0, first, { maxTokens: 16 }).reusedTokens, 0, 'cold slot');
  await runToEnd(d, [0]);
  const r = d.start(0, second, { maxTokens: 16 });
  t.ok(r.reusedTokens >= shared.length, `reused ${r.reusedTokens} >= ${shared.length}`);
  t.ok(r.reusedTokens < second.length, 'at least one token is evaluated again');
  const warm = (await runToEnd(d, [0])).get(0);
  t.same(warm?.tokens, (await alone(model, second, 16))?.tokens, 'same output as a cold run');

  // The identical prompt again: everything but the last token is reused.
  const again = d.start(0, second, { maxTokens: 16 });
  t.equal(again.reusedTokens, second.length - 1);
  t.same((await runToEnd(d, [0])).get(0)?.tokens, warm?.tokens);

  d.clear(0);
  t.equal(d.start(0, second, { maxTokens: 4 }).reusedTokens, 0, 'clear() drops the cache');
  await runToEnd(d, [0]);
});

t.test('prefix reuse on gemma3 with sliding-window layers never changes the output', async (t) => {
  const gemma = await loadModel('tiny-gemma3');
  t.teardown(() => gemma.dispose());
  const window = gemma.info.nSwa;
  t.ok(window > 0, `sliding window ${window}`);
  const d = new BatchDecoder(gemma, { slots: 1, ctxPerSlot: 1024, batchSize: 64, ubatchSize: 64 });
  t.teardown(() => d.dispose());

  // Short: the whole prefix is still inside the window, so it is reused.
  const shortShared = syntheticPrompt(window / 2, 41);
  d.start(0, [...shortShared, ...syntheticPrompt(6, 42).slice(1)], { maxTokens: 4 });
  await runToEnd(d, [0]);
  const shortNext = [...shortShared, ...syntheticPrompt(8, 43).slice(1)];
  t.ok(d.start(0, shortNext, { maxTokens: 12 }).reusedTokens >= shortShared.length, 'reused inside the window');
  t.same((await runToEnd(d, [0])).get(0)?.tokens, (await alone(gemma, shortNext, 12))?.tokens);

  // Long: the window has moved past the branch point; the decoder must notice and re-prefill.
  const longShared = syntheticPrompt(window * 4, 44);
  d.start(0, [...longShared, ...syntheticPrompt(40, 45).slice(1)], { maxTokens: 40 });
  await runToEnd(d, [0]);
  const longNext = [...longShared.slice(0, window * 2), ...syntheticPrompt(30, 46).slice(1)];
  const reuse = d.start(0, longNext, { maxTokens: 24 }).reusedTokens;
  t.comment(`reused ${reuse} of ${longNext.length} tokens after the window moved`);
  t.same(
    (await runToEnd(d, [0])).get(0)?.tokens,
    (await alone(gemma, longNext, 24))?.tokens,
    'same output as a cold run',
  );
});

t.test('chunked prefill: a 1000-token prompt in chunks of 64 equals one chunk', async (t) => {
  const prompt = syntheticPrompt(1000, 51);
  const oneChunk = new BatchDecoder(model, { slots: 1, ctxPerSlot: 1100, batchSize: 1024, ubatchSize: 1024 });
  t.teardown(() => oneChunk.dispose());
  oneChunk.start(0, prompt, { maxTokens: 16 });
  const whole = await runToEnd(oneChunk, [0], 1024);

  const chunked = new BatchDecoder(model, { slots: 1, ctxPerSlot: 1100, batchSize: 64 });
  t.teardown(() => chunked.dispose());
  chunked.start(0, prompt, { maxTokens: 16 });
  let steps = 0;
  let first = await chunked.step(64);
  steps++;
  t.equal(first.promptTokens, 64, 'the budget bounds each step');
  while (chunked.slotInfo(0).state === 'prefill') {
    first = await chunked.step(64);
    steps++;
  }
  t.equal(steps, Math.ceil(1000 / 64), 'one step per chunk');
  const rest = await runToEnd(chunked, [0], 64);
  const tokens = [...first.events.flatMap((e) => (e.token !== null ? [e.token] : [])), ...(rest.get(0)?.tokens ?? [])];
  t.same(tokens, whole.get(0)?.tokens);
});

t.test('the event loop keeps running while a long prefill decodes', async (t) => {
  const d = new BatchDecoder(model, { slots: 1, ctxPerSlot: 1100, batchSize: 1024, ubatchSize: 1024 });
  t.teardown(() => d.dispose());
  d.start(0, syntheticPrompt(1000, 61), { maxTokens: 1 });
  let settled = false;
  const step = d.step(1024).then((r) => {
    settled = true;
    return r;
  });
  let turns = 0;
  while (!settled && turns < 1_000_000) {
    await new Promise((r) => setImmediate(r));
    turns++;
  }
  t.ok(turns > 1, `the loop turned ${turns} times during the step`);
  t.equal((await step).promptTokens, 1000);
});

t.test('generation ends on max tokens and on end-of-generation tokens', async (t) => {
  const d = new BatchDecoder(model, { slots: 1, ctxPerSlot: 256 });
  t.teardown(() => d.dispose());
  d.start(0, syntheticPrompt(10, 71), { maxTokens: 5 });
  const r = (await runToEnd(d, [0])).get(0);
  t.equal(r?.tokens.length, 5);
  t.equal(r?.end, 'length');
  // Push EOS to the top: the first sampled token ends the request and is not emitted.
  d.start(0, syntheticPrompt(10, 72), { maxTokens: 5, sampling: { logitBias: { 2: 100 } } });
  const s = (await runToEnd(d, [0])).get(0);
  t.same(s?.tokens, []);
  t.equal(s?.end, 'stop');
  // A slot whose context fills up ends with context_full.
  const small = new BatchDecoder(model, { slots: 1, ctxPerSlot: 32 });
  t.teardown(() => small.dispose());
  small.start(0, syntheticPrompt(20, 73), { maxTokens: 100, sampling: { logitBias: { 2: -100 } } });
  const c = (await runToEnd(small, [0])).get(0);
  t.equal(c?.end, 'context_full');
  t.ok((c?.tokens.length ?? 0) >= 12 && (c?.tokens.length ?? 0) <= 13, `${c?.tokens.length} tokens fit`);
});

t.test('sampling: seeded sampling is reproducible; logit bias and penalties apply', async (t) => {
  const d = new BatchDecoder(model, { slots: 2, ctxPerSlot: 256 });
  t.teardown(() => d.dispose());
  const p = syntheticPrompt(12, 81);
  const sampling = { temperature: 0.9, topK: 40, topP: 0.95, minP: 0.01, seed: 1234 };
  const opts = { maxTokens: 20, sampling };
  d.start(0, p, opts);
  d.start(1, p, opts);
  const r = await runToEnd(d, [0, 1]);
  t.same(r.get(0)?.tokens, r.get(1)?.tokens, 'same seed, same tokens');
  d.start(0, p, { ...opts, sampling: { ...sampling, seed: 99 } });
  const other = (await runToEnd(d, [0])).get(0);
  t.not(other?.tokens.join(), r.get(0)?.tokens.join(), 'another seed, other tokens');
  d.start(0, p, { maxTokens: 4, sampling: { logitBias: new Map([[500, 100]]) } });
  t.same((await runToEnd(d, [0])).get(0)?.tokens, [500, 500, 500, 500], 'a strong bias wins');
  d.start(0, p, {
    maxTokens: 4,
    sampling: { logitBias: { 500: 100, 501: 99 }, presencePenalty: 50, penaltyLastN: 64 },
  });
  t.same((await runToEnd(d, [0])).get(0)?.tokens.slice(0, 2), [500, 501], 'presence penalty stops the repeat');
});

t.test('cancel frees the slot at once and keeps its KV for reuse', async (t) => {
  const d = new BatchDecoder(model, { slots: 2, ctxPerSlot: 256 });
  t.teardown(() => d.dispose());
  const p = syntheticPrompt(40, 91);
  d.start(0, p, { maxTokens: 100 });
  for (let k = 0; k < 4; k++) await d.step();
  t.equal(d.slotInfo(0).state, 'generating');
  t.equal(d.cancel(0), true, 'no step running: applied at once');
  t.equal(d.slotInfo(0).state, 'idle', 'idle right after cancel');
  const after = await d.step();
  t.equal(after.batchTokens, 0, 'nothing left to decode');
  t.ok(d.start(0, p, { maxTokens: 2 }).reusedTokens >= 39, 'the KV was kept');
  await runToEnd(d, [0]);

  // Cancel while a step is in flight: the step reports the slot as cancelled.
  d.start(1, syntheticPrompt(200, 92), { maxTokens: 50 });
  const pending = d.step();
  const atOnce = d.cancel(1);
  const r = await pending;
  const ended = r.events.find((e) => e.slot === 1 && e.end !== null);
  // Either the step thread had not taken the step yet (freed at once, nothing to report), or the
  // step ends the slot and says so.
  if (atOnce) t.equal(ended, undefined, 'cancelled before the step began');
  else t.equal(ended?.end, 'cancelled', 'the running step reports the cancel');
  t.equal(d.slotInfo(1).state, 'idle');
});

t.test('errors: busy slot, bad slot, long prompt, bad parameters, use after dispose', async (t) => {
  const d = new BatchDecoder(model, { slots: 2, ctxPerSlot: 64 });
  d.start(0, [1, 500, 600], { maxTokens: 4 });
  t.throws(() => d.start(0, [1, 2], { maxTokens: 4 }), { code: 'BUSY', message: /slot 0 is busy/ });
  t.throws(() => d.start(2, [1, 2], { maxTokens: 4 }), { code: 'INVALID_ARGUMENT', message: /slot 2 does not exist/ });
  t.throws(() => d.start(-1, [1, 2], { maxTokens: 4 }), { code: 'INVALID_ARGUMENT' });
  t.throws(() => d.start(1, syntheticPrompt(64, 1), { maxTokens: 4 }), ContextExceededError);
  t.throws(() => d.start(1, syntheticPrompt(100, 1), { maxTokens: 4 }), {
    code: 'CONTEXT_EXCEEDED',
    message: /100 tokens/,
  });
  t.throws(() => d.start(1, [], { maxTokens: 4 }), { code: 'INVALID_ARGUMENT' });
  t.throws(() => d.start(1, [1, 40000], { maxTokens: 4 }), { code: 'INVALID_ARGUMENT', message: /40000/ });
  t.throws(() => d.start(1, [1, 2], { maxTokens: 0 }), { code: 'INVALID_ARGUMENT' });
  t.throws(() => d.start(1, [1, 2], { maxTokens: 4, sampling: { topP: 2 } }), {
    code: 'INVALID_ARGUMENT',
    message: /topP/,
  });
  t.throws(() => d.start(1, [1, 2], { maxTokens: 4, sampling: { logitBias: { 99999: 1 } } }), {
    code: 'INVALID_ARGUMENT',
  });
  t.equal(d.slotInfo(1).state, 'idle', 'failed starts leave the slot idle');
  const running = d.step();
  t.throws(() => d.start(1, [1, 2], { maxTokens: 4 }), { code: 'BUSY', message: /step is running/ });
  await running;
  t.throws(() => new BatchDecoder(model, { slots: 0, ctxPerSlot: 64 }), { code: 'INVALID_ARGUMENT' });
  t.throws(() => new BatchDecoder(model, { slots: 4, ctxPerSlot: 64, batchSize: 2 }), { code: 'INVALID_ARGUMENT' });
  t.throws(() => new BatchDecoder(model, { slots: 1, ctxPerSlot: 64, kvType: 'q8_0', flashAttn: 'off' }), {
    code: 'INVALID_ARGUMENT',
  });
  d.dispose();
  d.dispose();
  t.equal(d.disposed, true);
  t.throws(() => d.start(1, [1, 2], { maxTokens: 4 }), { code: 'DISPOSED' });
  await t.rejects(d.step(), { code: 'DISPOSED' });
  t.throws(() => d.cancel(0), { code: 'DISPOSED' });
});

t.test('disposing the model while a decoder exists keeps the decoder working', async (t) => {
  const m = await loadModel('tiny');
  const d = new BatchDecoder(m, { slots: 1, ctxPerSlot: 64 });
  m.dispose();
  d.start(0, [1, 500], { maxTokens: 3 });
  t.equal((await runToEnd(d, [0])).get(0)?.tokens.length, 3);
  d.dispose();
});

t.test('creating and disposing 50 decoders keeps memory flat', async (t) => {
  const cycle = async () => {
    const d = new BatchDecoder(model, { slots: 4, ctxPerSlot: 256 });
    d.start(0, syntheticPrompt(20, 3), { maxTokens: 2 });
    await runToEnd(d, [0]);
    d.dispose();
  };
  for (let k = 0; k < 10; k++) await cycle();
  const before = process.memoryUsage().rss;
  for (let k = 0; k < 50; k++) await cycle();
  const growth = (process.memoryUsage().rss - before) / 1024 / 1024;
  t.comment(`RSS growth over 50 decoders: ${growth.toFixed(1)} MiB`);
  t.ok(growth < 24, `RSS grew ${growth.toFixed(1)} MiB (bounded)`);
});

t.test('KV cells in use are counted as slots fill and clear', async (t) => {
  const d = new BatchDecoder(model, { slots: 2, ctxPerSlot: 128 });
  t.teardown(() => d.dispose());
  t.equal(d.info.kvCellsUsed, 0);
  d.start(0, syntheticPrompt(20, 5), { maxTokens: 4 });
  await runToEnd(d, [0]);
  t.equal(d.info.kvCellsUsed, 23, 'prompt + generated tokens but the last');
  d.clear(0);
  t.equal(d.info.kvCellsUsed, 0);
});

t.test('slotInfo and cachedPrefix read while steps run answer the state of a step boundary', async (t) => {
  const slots = [0, 1, 2, 3];
  const d = new BatchDecoder(model, { slots: slots.length, ctxPerSlot: 256, batchSize: 64 });
  t.teardown(() => d.dispose());
  const prompts = slots.map((s) => syntheticPrompt(60 + 20 * s, 31 + s));
  // nProbs makes each slot's part of the step after llama_decode long enough for reads to land in it.
  for (const slot of slots) d.start(slot, prompts[slot] ?? [], { maxTokens: 30, nProbs: 1000 });
  // Each call on its own: a step may end between two calls.
  const read = () => slots.flatMap((s) => [JSON.stringify(d.slotInfo(s)), JSON.stringify(d.cachedPrefix(s))]);
  const generated: number[][] = slots.map(() => []);
  let before = read();
  let reads = 0;
  let between = 0; // reads that matched neither the state before nor the state after their step
  for (let steps = 0; slots.some((s) => d.slotInfo(s).state !== 'idle'); steps++) {
    if (steps > 1000) throw new Error('the decoder made no progress');
    let settled = false;
    const step = d.step(32).finally(() => {
      settled = true;
    });
    const seen: string[][] = [];
    while (!settled) {
      seen.push(read());
      await new Promise((resolve) => setImmediate(resolve));
    }
    for (const e of (await step).events) if (e.token !== null) generated[e.slot]?.push(e.token);
    const after = read();
    for (const r of seen) between += r.filter((value, k) => value !== before[k] && value !== after[k]).length;
    reads += seen.length;
    before = after;
  }
  t.ok(reads > 0, `${reads} reads during steps`);
  t.equal(between, 0, 'no read saw a step half done');
  for (const slot of slots) {
    const tokens = d.cachedPrefix(slot);
    t.same(tokens, [...(prompts[slot] ?? []), ...(generated[slot] ?? [])].slice(0, tokens.length), 'prompt + output');
    t.equal(d.slotInfo(slot).cachedTokens, tokens.length);
  }
});

t.test('the decoder options the engine passes are the addon core defaults for what the caller left out', async (t) => {
  const defaults = loadAddon().defaults().decoder;
  const native = new (loadAddon().BatchDecoder)(model.native, {});
  t.teardown(() => native.dispose());
  const { kvCellsUsed, checkpointBytes, draftMax, speculativeTypes, ...info } = native.info();
  t.equal(kvCellsUsed, 0);
  t.equal(checkpointBytes, 0);
  t.same([draftMax, speculativeTypes], [0, ''], 'no speculative decoding unless asked');
  t.same(info, { ...defaults, kvTypeV: defaults.kvTypeV || defaults.kvType }, 'a decoder built with {} runs them');
  t.same(nativeDecoderOptions({ slots: 2, ctxPerSlot: 64 }), { ...defaults, nSlots: 2, nCtxPerSlot: 64 });
  t.same(nativeDecoderOptions({ slots: 1, ctxPerSlot: 64, batchSize: 96 }).nUbatch, 96, 'ubatch follows batch');
});
