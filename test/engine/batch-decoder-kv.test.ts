// The BatchDecoder's KV beyond one request: slot state in host memory (saveState/restoreState), a unified pool
// that runs out (kvFull, nothing lost), and a request resumed from its own output (resumeTokens).
import t from 'tap';
import { BatchDecoder, type Model } from '../../src/engine/index.ts';
import type { StepResult } from '../../src/scheduler/decoder.ts';
import { runToEnd, syntheticPrompt } from '../helpers/decode.ts';
import { loadModel } from '../helpers/models.ts';

const model = await loadModel('tiny');
t.teardown(() => model.dispose());

async function alone(m: Model, prompt: number[], maxTokens: number): Promise<number[]> {
  const d = new BatchDecoder(m, { slots: 1, ctxPerSlot: 512 });
  try {
    d.start(0, prompt, { maxTokens });
    return (await runToEnd(d, [0])).get(0)?.tokens ?? [];
  } finally {
    d.dispose();
  }
}

/** A token whose piece is exactly this one byte (the tiny model has llama's byte-fallback tokens). */
function byteToken(m: Model, byte: number): number {
  for (let id = 0; id < 600; id++) {
    const b = m.tokenBytes(id);
    if (b.length === 1 && b[0] === byte) return id;
  }
  throw new Error(`no token for byte ${byte}`);
}

t.test(
  'a slot saved to host memory, erased and restored into another slot continues as if it never left',
  async (t) => {
    const prompt = syntheticPrompt(60, 71);
    const reference = await alone(model, prompt, 24);
    const d = new BatchDecoder(model, { slots: 2, ctxPerSlot: 256 });
    t.teardown(() => d.dispose());
    d.start(0, prompt, { maxTokens: 10 });
    const first = (await runToEnd(d, [0])).get(0)?.tokens ?? [];
    t.same(first, reference.slice(0, 10), 'the first part is the reference');

    const t0 = performance.now();
    const saved = await d.saveState(0);
    const saveMs = performance.now() - t0;
    t.same(saved.tokens, [...prompt, ...first.slice(0, -1)], 'the state holds the prompt and the output but its last');
    t.ok(saved.state.byteLength > saved.tokens.length * 64, `${saved.state.byteLength} bytes of KV`);
    await d.eraseSlot(0);
    t.equal(d.info.kvCellsUsed, 0, 'erased: the pool holds nothing');

    const t1 = performance.now();
    t.equal(await d.restoreState(1, saved), saved.tokens.length, 'resolves with the tokens restored');
    const restoreMs = performance.now() - t1;
    t.comment(
      `tiny model: ${saved.tokens.length} tokens = ${saved.state.byteLength} bytes ` +
        `(${(saved.state.byteLength / saved.tokens.length).toFixed(0)} B/token), save ${saveMs.toFixed(2)} ms, ` +
        `restore ${restoreMs.toFixed(2)} ms`,
    );
    t.same(d.cachedPrefix(1), saved.tokens, 'the slot holds the saved tokens');
    t.equal(d.info.kvCellsUsed, saved.tokens.length);

    // Resume on slot 1: the prompt is the request's prompt and its output; everything but the last token comes
    // from the restored KV, so any damage to it would change the continuation.
    const started = d.start(1, [...prompt, ...first], { maxTokens: 14, resumeTokens: first.length });
    t.equal(started.reusedTokens, saved.tokens.length, 'the restored KV is reused, not prefilled again');
    const rest = (await runToEnd(d, [1])).get(1);
    t.same(rest?.tokens, reference.slice(10), 'the continuation is the uninterrupted greedy output');
    t.equal(rest?.end, 'length', 'maxTokens counts what was left to generate');
    t.equal(d.slotInfo(1).generated, 24, 'the resumed tokens count as generated');
  },
);

t.test('a state another decoder cannot take is a clear error that leaves the slot empty and usable', async (t) => {
  const d = new BatchDecoder(model, { slots: 2, ctxPerSlot: 128 });
  t.teardown(() => d.dispose());
  const prompt = syntheticPrompt(30, 72);
  d.start(0, prompt, { maxTokens: 2 });
  await runToEnd(d, [0]);
  const saved = await d.saveState(0);

  const other = await loadModel('tiny-qwen');
  t.teardown(() => other.dispose());
  const od = new BatchDecoder(other, { slots: 1, ctxPerSlot: 128 });
  t.teardown(() => od.dispose());
  await t.rejects(od.restoreState(0, saved), {
    code: 'INVALID_ARGUMENT',
    message: /could not restore slot 0: the state is not one this decoder can take/,
  });
  t.equal(od.slotInfo(0).cachedTokens, 0, 'another model: the slot holds nothing');

  const f32 = new BatchDecoder(model, { slots: 2, ctxPerSlot: 128, kvType: 'f32' });
  t.teardown(() => f32.dispose());
  await t.rejects(f32.restoreState(0, saved), { code: 'INVALID_ARGUMENT', message: /another model, KV type/ });
  const unified = new BatchDecoder(model, { slots: 2, ctxPerSlot: 128, kvUnified: true });
  t.teardown(() => unified.dispose());
  await t.rejects(unified.restoreState(0, saved), { code: 'INVALID_ARGUMENT', message: /pool layout/ });

  await t.rejects(d.restoreState(1, { tokens: saved.tokens, state: saved.state.subarray(0, 100) }), {
    code: 'INVALID_ARGUMENT',
  });
  const padded = new Uint8Array(saved.state.byteLength + 8);
  padded.set(saved.state);
  await t.rejects(d.restoreState(1, { tokens: saved.tokens, state: padded }), { message: /8 bytes past its end/ });
  await t.rejects(d.restoreState(1, { tokens: saved.tokens.slice(1), state: saved.state }), {
    message: new RegExp(`holds ${saved.tokens.length} positions but ${saved.tokens.length - 1} tokens`),
  });
  await t.rejects(d.restoreState(1, { tokens: saved.tokens, state: new Uint8Array(0) }), { message: /empty/ });
  await t.rejects(d.restoreState(1, { tokens: [1, 99999], state: saved.state }), { code: 'INVALID_ARGUMENT' });
  t.equal(d.slotInfo(1).cachedTokens, 0, 'after each refusal the slot holds nothing');
  t.equal(await d.restoreState(1, saved), saved.tokens.length, 'and the right state still restores');

  d.start(0, prompt, { maxTokens: 50 });
  await d.step();
  await t.rejects(d.saveState(0), { code: 'BUSY', message: /slot 0 is busy/ });
  await t.rejects(d.restoreState(0, saved), { code: 'BUSY' });
});

/** Two 100-token prompts generating up to 140 tokens each in a unified pool of 256 cells. */
function fullPool() {
  const d = new BatchDecoder(model, { slots: 2, ctxPerSlot: 128, kvUnified: true, slotCtxMax: 250 });
  d.start(0, syntheticPrompt(100, 73), { maxTokens: 140 });
  d.start(1, syntheticPrompt(100, 74), { maxTokens: 140 });
  return d;
}

t.test('a full unified pool: the step reports kvFull and changes nothing; freeing cells lets it go on', async (t) => {
  const reference = await alone(model, syntheticPrompt(100, 73), 140);
  const d = fullPool();
  t.teardown(() => d.dispose());
  const tokens: number[][] = [[], []];
  const ends: string[] = [];
  let full: StepResult | undefined;
  let decoded = 0;
  for (; decoded < 400; decoded++) {
    const r = await d.step();
    if (r.kvFull === true) {
      full = r;
      break;
    }
    for (const e of r.events) {
      if (e.end !== null) ends.push(`slot ${e.slot}: ${e.end} ${e.error ?? ''}`);
      if (e.token !== null) tokens[e.slot]?.push(e.token);
    }
  }
  if (full === undefined) throw new Error('the pool never filled');
  t.same(ends, [], 'no slot ended before, none failed');
  t.same(full.events, [], 'no event: nothing decoded, no slot failed');
  t.equal(full.batchTokens, 0);
  t.ok(full.retries >= 1);
  const before = [d.slotInfo(0), d.slotInfo(1)];
  t.ok((before[0]?.cachedTokens ?? 0) + (before[1]?.cachedTokens ?? 0) >= 250, 'the pool is full');
  t.equal(before[0]?.state, 'generating');
  const again = await d.step();
  t.equal(again.kvFull, true, 'still full: it says so again');
  t.same([d.slotInfo(0), d.slotInfo(1)], before, 'and no slot changed');
  t.same(tokens[0], reference.slice(0, tokens[0]?.length), 'slot 0 so far is its reference');

  // The caller makes room: slot 1 gives its slot up; slot 0 goes on with the token it had sampled.
  t.equal(d.cancel(1), true);
  d.clear(1);
  const rest = (await runToEnd(d, [0])).get(0);
  t.equal(rest?.end, 'length');
  const ours = [...(tokens[0] ?? []), ...(rest?.tokens ?? [])];
  t.equal(ours.length, 140, 'slot 0 generates all its tokens');

  // The same steps without the two kvFull steps: token for token the same. (Not compared with the solo run past
  // this point: slot 0's later cells fill slot 1's freed ones, and another cell order sums attention in another
  // order, which on random weights can flip a near tie.)
  const same = fullPool();
  t.teardown(() => same.dispose());
  const theirs: number[] = [];
  for (let k = 0; k < decoded; k++)
    for (const e of (await same.step()).events) if (e.slot === 0 && e.token !== null) theirs.push(e.token);
  same.cancel(1);
  same.clear(1);
  theirs.push(...((await runToEnd(same, [0])).get(0)?.tokens ?? []));
  t.same(ours, theirs, 'a kvFull step is no step at all');
});

t.test('a prompt that cannot get one cell while others fill the pool is kvFull too, not an error', async (t) => {
  const d = new BatchDecoder(model, { slots: 2, ctxPerSlot: 128, kvUnified: true, slotCtxMax: 256 });
  t.teardown(() => d.dispose());
  d.start(0, syntheticPrompt(250, 75), { maxTokens: 2 });
  await runToEnd(d, [0]);
  const prompt = syntheticPrompt(40, 76);
  d.start(1, prompt, { maxTokens: 2 });
  let r = await d.step();
  for (let k = 0; k < 10 && r.kvFull !== true; k++) {
    t.same(
      r.events.map((e) => e.end),
      [null],
      'what fits is prefilled',
    );
    r = await d.step();
  }
  t.equal(r.kvFull, true);
  t.same(r.events, []);
  const pending = d.slotInfo(1).pendingPrompt;
  t.ok(pending > 0 && pending < prompt.length, `${pending} prompt tokens wait for room`);
  await d.eraseSlot(0);
  const out = (await runToEnd(d, [1])).get(1);
  t.equal(out?.end, 'length', 'once there is room the request ends normally');
  t.equal(out?.tokens.length, 2);
});

t.test('resumeTokens: the output goes on where it stopped, counted toward maxTokens', async (t) => {
  const prompt = syntheticPrompt(40, 77);
  const reference = await alone(model, prompt, 20);
  const d = new BatchDecoder(model, { slots: 1, ctxPerSlot: 256 });
  t.teardown(() => d.dispose());
  // No KV to reuse: the resumed output is prefilled with the prompt and generation goes on after it.
  d.start(0, [...prompt, ...reference.slice(0, 8)], { maxTokens: 12, resumeTokens: 8 });
  t.same((await runToEnd(d, [0])).get(0)?.tokens, reference.slice(8));

  // Penalties see the resumed output as generated: with a bias that makes token 500 win and a presence penalty
  // larger than the bias, a resumed 500 must not come again.
  const biased = { maxTokens: 1, sampling: { logitBias: { 500: 30 }, presencePenalty: 50, penaltyLastN: 64 } };
  d.start(0, [...prompt, 500], { ...biased, resumeTokens: 1 });
  t.not((await runToEnd(d, [0])).get(0)?.tokens[0], 500, 'a resumed token is penalised');
  d.start(0, [...prompt], biased);
  t.equal((await runToEnd(d, [0])).get(0)?.tokens[0], 500, 'without it the bias wins');

  t.throws(() => d.start(0, [1, 2], { maxTokens: 1, resumeTokens: 2 }), {
    code: 'INVALID_ARGUMENT',
    message: /resumeTokens must be in \[0, prompt length\)/,
  });
  t.throws(() => d.start(0, [1, 2], { maxTokens: 1, resumeTokens: -1 }), { code: 'INVALID_ARGUMENT' });
});

t.test('resumeTokens: a grammar goes on from where the resumed output left it, not from its start', async (t) => {
  // The grammar allows one '<', letters, then '>': a sampler whose grammar did not take in the resumed output
  // would have to write '<' again.
  const grammar = { text: 'root ::= "<" [a-z]+ ">"', kind: 0, lazy: false, triggers: [], generationPrompt: '' };
  const prompt = syntheticPrompt(30, 79);
  const d = new BatchDecoder(model, { slots: 1, ctxPerSlot: 256 });
  t.teardown(() => d.dispose());
  d.start(0, prompt, { maxTokens: 12, sampling: { grammar } });
  const reference = (await runToEnd(d, [0])).get(0)?.tokens ?? [];
  t.equal(reference.length, 12, 'the grammar leaves room for 12 tokens');
  t.match(model.detokenize(reference), /^<[a-z]+$/);
  for (const k of [1, 5]) {
    d.start(0, [...prompt, ...reference.slice(0, k)], { maxTokens: 12 - k, resumeTokens: k, sampling: { grammar } });
    t.same((await runToEnd(d, [0])).get(0)?.tokens, reference.slice(k), `resumed after ${k} tokens`);
  }
});

t.test('resumeTokens: a character cut between tokens is completed once, not broken or repeated', async (t) => {
  // "€" is E2 82 AC. The earlier output ended after E2 82 (held back, never given out); the next token is AC.
  const [e2, x82, xac] = [0xe2, 0x82, 0xac].map((b) => byteToken(model, b)) as [number, number, number];
  const d = new BatchDecoder(model, { slots: 1, ctxPerSlot: 128 });
  t.teardown(() => d.dispose());
  const prompt = syntheticPrompt(20, 78);
  d.start(0, [...prompt, e2, x82], { maxTokens: 2, resumeTokens: 2, sampling: { logitBias: { [xac]: 1000 } } });
  const out = (await runToEnd(d, [0])).get(0);
  t.same(out?.tokens, [xac, xac]);
  // The first event completes the character; the second AC is a stray byte, flushed at the end.
  t.equal(out?.text.startsWith('€'), true, `text ${JSON.stringify(out?.text)} begins with the completed €`);
  t.equal(out?.text, '€\ufffd');

  // A resumed output that ended on a whole character holds nothing back: the text is only what follows.
  const a = model.tokenize('a', { addSpecial: false })[0] ?? 0;
  d.start(0, [...prompt, e2, x82, xac], { maxTokens: 1, resumeTokens: 3, sampling: { logitBias: { [a]: 1000 } } });
  t.equal((await runToEnd(d, [0])).get(0)?.text, model.tokenToPiece(a));
});
