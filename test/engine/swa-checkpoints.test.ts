// Sliding-window checkpoints (native/core/checkpoints.cpp): on a model whose SWA layers keep only the last
// window's KV, a prompt that diverges from a slot's cache before the window resumes at the checkpoint saved near
// the previous prompt's end, instead of prefilling everything again — and decodes exactly what a cold run does.
import t from 'tap';
import { BatchDecoder, type DecoderOptions, type Model } from '../../src/engine/index.ts';
import { reusablePrefix } from '../../src/scheduler/decoder.ts';
import { runToEnd, syntheticPrompt } from '../helpers/decode.ts';
import { loadModel } from '../helpers/models.ts';

const gemma = await loadModel('tiny-gemma3');
t.teardown(() => gemma.dispose());
const window = gemma.info.nSwa;
const UBATCH = 32;
const options = (o: Partial<DecoderOptions> = {}): DecoderOptions => ({
  slots: 2,
  ctxPerSlot: 1024,
  batchSize: 64,
  ubatchSize: UBATCH,
  ...o,
});

async function cold(m: Model, prompt: number[], maxTokens: number): Promise<number[]> {
  const d = new BatchDecoder(m, { slots: 1, ctxPerSlot: 1024, batchSize: 64, ubatchSize: UBATCH });
  try {
    d.start(0, prompt, { maxTokens });
    return (await runToEnd(d, [0])).get(0)?.tokens ?? [];
  } finally {
    d.dispose();
  }
}

// A first turn (prompt, then a reply long enough that the window moves past the prompt's end) and a second turn
// that keeps only the reply's first tokens (a client re-sending its history, re-tokenized differently) and goes on.
const first = syntheticPrompt(window * 3, 61);
// llama.cpp keeps up to a padded n_swa + n_ubatch cells per stream (256 here): the reply outgrows that.
const REPLY = window * 6;
async function firstTurn(d: BatchDecoder, slot = 0): Promise<number[]> {
  d.start(slot, first, { maxTokens: REPLY });
  return (await runToEnd(d, [slot])).get(slot)?.tokens ?? [];
}
const secondTurn = (reply: number[]) => [...first, ...reply.slice(0, 5), ...syntheticPrompt(20, 62).slice(1)];

t.test('a prompt diverging behind the window resumes at the checkpoint before the last prompt end', async (t) => {
  t.ok(window > 0 && window < REPLY, `sliding window ${window}`);
  const d = new BatchDecoder(gemma, options());
  t.teardown(() => d.dispose());
  const reply = await firstTurn(d);
  t.equal(reply.length, REPLY);
  const points = d.resumePoints(0);
  t.same(points.checkpoints, [first.length - 4 - UBATCH, first.length - 4], 'checkpoints 4 + n_ubatch and 4 before');
  t.ok(points.from > first.length + 5, `the window (${points.from}) has moved past the divergence`);

  const next = secondTurn(reply);
  t.equal(reusablePrefix(first.length + 5, points), first.length - 4, 'resumePoints predicts the resume');
  const started = d.start(0, next, { maxTokens: 16 });
  t.equal(started.reusedTokens, first.length - 4, 'resumed at the last checkpoint, not from the start');
  const warm = (await runToEnd(d, [0])).get(0)?.tokens;
  t.same(warm, await cold(gemma, next, 16), 'the same tokens as a cold run');
  // And as llama.cpp's own loop (examples/simple: one sequence, the whole prompt in one llama_decode), for the
  // first turn's reply (generated past the window) and the resumed second turn.
  t.same(reply, await gemma.referenceGreedy(first, { nPredict: REPLY }), "the first turn is llama.cpp's loop's");
  t.same(warm, await gemma.referenceGreedy(next, { nPredict: 16 }), "the resumed turn is llama.cpp's loop's");
  t.same(
    d.resumePoints(0).checkpoints,
    [first.length - 4 - UBATCH, first.length + 5, next.length - 4],
    "the first turn's oldest checkpoint stays, its last goes (min step); the new prompt adds one where it stopped " +
      'sharing the cache (the end of a shared prefix) and one 4 before its end',
  );
});

t.test(
  'a prefix shared by several prompts: the first that cannot resume it saves a checkpoint where it ends',
  async (t) => {
    const d = new BatchDecoder(gemma, options({ slots: 1 }));
    t.teardown(() => d.dispose());
    const shared = syntheticPrompt(window * 3, 71);
    const user = (seed: number) => [...shared, ...syntheticPrompt(window * 2 + 20, seed).slice(1)];
    // Each conversation's own prompt and reply push the window well past the shared part.
    d.start(0, user(72), { maxTokens: 64 });
    await runToEnd(d, [0]);
    t.equal(d.start(0, user(73), { maxTokens: 64 }).reusedTokens, 0, 'the second: the window has moved on');
    await runToEnd(d, [0]);
    t.ok(d.resumePoints(0).checkpoints.includes(shared.length), 'it saved the state where the shared prefix ends');
    const third = user(74);
    t.equal(d.start(0, third, { maxTokens: 12 }).reusedTokens, shared.length, 'the third resumes there');
    t.same((await runToEnd(d, [0])).get(0)?.tokens, await cold(gemma, third, 12), 'the same tokens as a cold run');
  },
);

t.test('user message starts: the prefill pauses at the last one (and at earlier ones far apart)', async (t) => {
  const d = new BatchDecoder(gemma, options({ slots: 1, checkpointMinStep: 100 }));
  t.teardown(() => d.dispose());
  const prompt = syntheticPrompt(400, 81);
  d.start(0, prompt, { maxTokens: 2, userStarts: [10, 60, 250, 300] });
  await runToEnd(d, [0]);
  // 10 (the first: nothing before it), 250 (more than 100 past 10), 300 (the last); not 60.
  t.same(d.resumePoints(0).checkpoints, [10, 250, 300, 400 - 4 - UBATCH, 400 - 4]);
});

t.test('a slot keeps at most ctxCheckpoints checkpoints, the newest', async (t) => {
  const d = new BatchDecoder(gemma, options({ slots: 1, checkpointMinStep: 100, ctxCheckpoints: 3 }));
  t.teardown(() => d.dispose());
  d.start(0, syntheticPrompt(400, 81), { maxTokens: 2, userStarts: [10, 60, 250, 300] });
  await runToEnd(d, [0]);
  // The same five places as above; the oldest two went as the newer came.
  t.same(d.resumePoints(0).checkpoints, [300, 400 - 4 - UBATCH, 400 - 4]);
  t.ok(d.info.checkpointBytes > 0, 'they hold memory');
});

t.test('without checkpoints (ctxCheckpoints 0) the same prompt is prefilled from the start', async (t) => {
  const d = new BatchDecoder(gemma, options({ ctxCheckpoints: 0 }));
  t.teardown(() => d.dispose());
  const reply = await firstTurn(d);
  t.same(d.resumePoints(0).checkpoints, []);
  t.equal(d.start(0, secondTurn(reply), { maxTokens: 4 }).reusedTokens, 0);
  await runToEnd(d, [0]);
});

t.test('a non-sliding-window model takes no checkpoints and resumes anywhere', async (t) => {
  const tiny = await loadModel('tiny');
  t.teardown(() => tiny.dispose());
  const d = new BatchDecoder(tiny, options());
  t.teardown(() => d.dispose());
  d.start(0, first, { maxTokens: 8 });
  const reply = (await runToEnd(d, [0])).get(0)?.tokens ?? [];
  t.same(d.resumePoints(0), { from: 0, checkpoints: [] });
  t.equal(d.start(0, secondTurn(reply), { maxTokens: 4 }).reusedTokens, first.length + 5);
  await runToEnd(d, [0]);
});

t.test('checkpoints travel with a state saved to host memory and with a copied prefix', async (t) => {
  const d = new BatchDecoder(gemma, options());
  t.teardown(() => d.dispose());
  const reply = await firstTurn(d);
  const next = secondTurn(reply);
  const reference = await cold(gemma, next, 12);

  const saved = await d.saveState(0);
  t.same(saved.resume, d.resumePoints(0), 'the saved state says where it resumes');
  await d.eraseSlot(0);
  t.same(d.resumePoints(0), { from: 0, checkpoints: [] }, 'erased: no checkpoints');
  t.equal(await d.restoreState(1, saved), saved.tokens.length);
  t.same(d.resumePoints(1).checkpoints, saved.resume?.checkpoints, 'restored with its checkpoints');
  t.equal(d.start(1, next, { maxTokens: 12 }).reusedTokens, first.length - 4, 'resumed from the restored checkpoint');
  t.same((await runToEnd(d, [1])).get(1)?.tokens, reference, 'the same tokens as a cold run');

  // A copy of the first turn's prefix up to the prompt's end keeps the checkpoints inside it.
  await d.eraseSlot(1);
  await d.restoreState(1, saved);
  t.equal(d.copyPrefix(1, 0, first.length), first.length);
  t.same(d.resumePoints(0).checkpoints, [first.length - 4 - UBATCH, first.length - 4]);
  t.equal(d.start(0, next, { maxTokens: 12 }).reusedTokens, first.length - 4, 'the copy resumes there too');
  t.same((await runToEnd(d, [0])).get(0)?.tokens, reference);
});

t.test('a saved state that was cut or altered is refused and leaves the slot empty', async (t) => {
  const d = new BatchDecoder(gemma, options());
  t.teardown(() => d.dispose());
  await firstTurn(d);
  const saved = await d.saveState(0);
  const altered = saved.state.slice();
  altered[0] = (altered[0] ?? 0) ^ 0xff;
  for (const state of [saved.state.subarray(0, 40), altered]) {
    await t.rejects(d.restoreState(1, { tokens: saved.tokens, state }), {
      code: 'INVALID_ARGUMENT',
      message: /could not restore slot 1: the state is not one saveState\(\) gave/,
    });
    t.equal(d.slotInfo(1).cachedTokens, 0);
    t.same(d.resumePoints(1), { from: 0, checkpoints: [] });
  }
  t.equal(await d.restoreState(1, saved), saved.tokens.length, 'the state itself still restores');
});
