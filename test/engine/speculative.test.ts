// Speculative decoding in the batch decoder (native/core/speculation.h): whatever drafts, greedy output is the
// target's own, token for token, and the drafts are really made and verified (the decoder reports each one).
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { BatchDecoder, type DecoderOptions, Model } from '../../src/engine/index.ts';
import type { StartOptions } from '../../src/scheduler/decoder.ts';
import { ensureModel } from '../../src/tools/model-cache.ts';
import { syntheticPrompt } from '../helpers/decode.ts';
import { loadModel } from '../helpers/models.ts';

const target = await loadModel('tiny');
// Other random weights over the same vocabulary: its drafts are almost never the target's choice.
const stranger = await Model.load(await ensureModel({ preset: 'tiny', quant: 'F16', seed: 2 }));
t.teardown(() => {
  target.dispose();
  stranger.dispose();
});

interface Run {
  tokens: number[][];
  drafted: number;
  accepted: number;
  steps: number;
}

/** Runs each prompt on its own slot to the end; draftLimits per step (absent: the decoder's maximum). */
async function generate(
  model: Model,
  prompts: number[][],
  options: Partial<DecoderOptions>,
  start: Omit<StartOptions, 'maxTokens'> & { maxTokens?: number } = {},
): Promise<Run> {
  const d = new BatchDecoder(model, { slots: prompts.length, ctxPerSlot: 512, batchSize: 256, ...options });
  try {
    const run: Run = { tokens: prompts.map(() => []), drafted: 0, accepted: 0, steps: 0 };
    for (const [i, p] of prompts.entries()) d.start(i, p, { maxTokens: 48, ...start });
    const open = new Set(prompts.keys());
    while (open.size > 0) {
      const r = await d.step(256);
      run.steps++;
      for (const x of r.drafts ?? []) {
        run.drafted += x.drafted;
        run.accepted += x.accepted;
      }
      for (const e of r.events) {
        if (e.token !== null) run.tokens[e.slot]?.push(e.token);
        if (e.end !== null) open.delete(e.slot);
      }
      if (run.steps > 10_000) throw new Error('no progress');
    }
    return run;
  } finally {
    d.dispose();
  }
}

/** Steps until `slot` ends: its tokens, and the drafts verified in those steps. */
async function untilEnd(d: BatchDecoder, slot: number) {
  const out = { tokens: [] as number[], drafted: 0, accepted: 0 };
  for (let done = false; !done; ) {
    const r = await d.step(256);
    for (const x of r.drafts ?? []) {
      out.drafted += x.drafted;
      out.accepted += x.accepted;
    }
    for (const e of r.events) {
      if (e.slot !== slot) continue;
      if (e.token !== null) out.tokens.push(e.token);
      done ||= e.end !== null;
    }
  }
  return out;
}

const prompts4 = [1, 2, 3, 4].map((s) => syntheticPrompt(16 + 3 * s, 40 + s));

for (const slots of [1, 4]) {
  const prompts = prompts4.slice(0, slots);
  t.test(`${slots} slot(s): greedy output with drafts equals greedy output without`, async (t) => {
    const plain = await generate(target, prompts, {});
    t.equal(plain.drafted, 0, 'no drafts without speculative decoding');

    const self = await generate(target, prompts, {
      speculative: { types: ['draft-simple'], draftModel: target, nMax: 4 },
    });
    t.same(self.tokens, plain.tokens, 'draft = the target itself');
    t.ok(self.drafted > 0, `drafts were made (${self.drafted})`);
    t.equal(self.accepted, self.drafted, 'the target accepts its own greedy drafts, every one');
    t.ok(self.steps < plain.steps / 2, `fewer steps: ${self.steps} vs ${plain.steps}`);

    const other = await generate(target, prompts, {
      speculative: { types: ['draft-simple'], draftModel: stranger, nMax: 4 },
    });
    t.same(other.tokens, plain.tokens, 'draft = another random model');
    t.ok(other.drafted > 0, `drafts were made (${other.drafted})`);
    t.ok(other.accepted < other.drafted / 4, `few accepted (${other.accepted} of ${other.drafted})`);
  });
}

t.test('n-gram types: drafts from the context, output unchanged', async (t) => {
  // A prompt that repeats, and a long enough answer for a random model's greedy output to fall into a loop.
  const unit = syntheticPrompt(9, 7).slice(1);
  const prompt = [1, ...unit, ...unit, ...unit, ...unit];
  const plain = await generate(target, [prompt], {}, { maxTokens: 160 });
  const types = [
    { types: ['ngram-simple'], ngramSimple: { sizeN: 2, sizeM: 8 } },
    { types: ['ngram-map-k'], ngramMapK: { sizeN: 2, sizeM: 8 } },
    { types: ['ngram-map-k4v'], ngramMapK4v: { sizeN: 2, sizeM: 8 } },
    { types: ['ngram-mod'], ngramModMatch: 2, ngramModMin: 1, ngramModMax: 8 },
    { types: ['ngram-cache'], lookupCacheStatic: await staticCache([...prompt, ...(plain.tokens[0] ?? [])]) },
  ];
  for (const speculative of types) {
    const run = await generate(target, [prompt], { speculative }, { maxTokens: 160 });
    t.same(run.tokens, plain.tokens, `${speculative.types[0]}: same tokens`);
    t.ok(run.drafted > 0, `${speculative.types[0]}: drafted ${run.drafted}, accepted ${run.accepted}`);
  }
});

/**
 * A static n-gram lookup cache (llama.cpp common/ngram-cache.cpp's file: per 2-token n-gram, padded to 4 with -1, the
 * tokens that followed it and their counts) learnt from `tokens`.
 */
async function staticCache(tokens: number[]): Promise<string> {
  const next = new Map<string, Map<number, number>>();
  for (let i = 2; i < tokens.length; i++) {
    const key = `${tokens[i - 2]},${tokens[i - 1]}`;
    const counts = next.get(key) ?? new Map<number, number>();
    counts.set(tokens[i] ?? 0, (counts.get(tokens[i] ?? 0) ?? 0) + 2);
    next.set(key, counts);
  }
  const words: number[] = [];
  for (const [key, counts] of next) {
    words.push(...key.split(',').map(Number), -1, -1, counts.size);
    for (const [token, count] of counts) words.push(token, count);
  }
  const dir = await mkdtemp(join(tmpdir(), 'lookup-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const path = join(dir, 'static.bin');
  await writeFile(path, Buffer.from(new Int32Array(words).buffer));
  return path;
}

t.test('a grammar constrains drafted tokens too', async (t) => {
  const grammar = { text: 'root ::= "{" [a-z]+ "}"', kind: 0, lazy: false, triggers: [], generationPrompt: '' };
  const prompts = prompts4.slice(0, 2);
  const start = { maxTokens: 24, sampling: { grammar } };
  const plain = await generate(target, prompts, {}, start);
  const spec = { types: ['draft-simple'], draftModel: target, nMax: 4 };
  const self = await generate(target, prompts, { speculative: spec }, start);
  t.same(self.tokens, plain.tokens, 'same tokens under the grammar');
  t.ok(self.drafted > 0 && self.accepted > 0, `drafts made and accepted (${self.accepted}/${self.drafted})`);
  for (const tokens of self.tokens) t.match(target.detokenize(tokens), /^\{[a-z]*\}?$/);
  // The stranger drafts without the grammar: the target refuses what breaks it.
  const other = await generate(target, prompts, { speculative: { ...spec, draftModel: stranger } }, start);
  t.same(other.tokens, plain.tokens, 'a draft that breaks the grammar is rejected');
});

t.test('logprobs of drafted tokens are the target logits at their positions', async (t) => {
  const prompts = prompts4.slice(0, 2);
  const collect = async (speculative?: DecoderOptions['speculative']) => {
    const d = new BatchDecoder(target, { slots: 2, ctxPerSlot: 256, ...(speculative ? { speculative } : {}) });
    t.teardown(() => d.dispose());
    for (const [i, p] of prompts.entries()) d.start(i, p, { maxTokens: 16, nProbs: 3 });
    const probs: [number, number, number][] = [];
    let drafted = 0;
    for (let open = 2; open > 0; ) {
      const r = await d.step(256);
      for (const x of r.drafts ?? []) drafted += x.drafted;
      for (const e of r.events) {
        if (e.probs) probs.push([e.slot, e.probs.chosen.token, e.probs.chosen.logprob]);
        if (e.end !== null) open--;
      }
    }
    return { probs: probs.sort((a, b) => a[0] - b[0]), drafted };
  };
  const plain = await collect();
  const spec = await collect({ types: ['draft-simple'], draftModel: target, nMax: 4 });
  t.ok(spec.drafted > 0, 'drafts were made');
  t.equal(spec.probs.length, plain.probs.length);
  spec.probs.forEach(([slot, token, lp], i) => {
    const [s0, t0, lp0] = plain.probs[i] ?? [];
    t.same([slot, token], [s0, t0]);
    t.ok(Math.abs(lp - (lp0 ?? 0)) < 1e-3, `logprob ${lp} vs ${lp0}`);
  });
});

t.test('draftLimits choose each step: 0 turns drafting off for a slot, 1 caps it', async (t) => {
  const d = new BatchDecoder(target, {
    slots: 2,
    ctxPerSlot: 256,
    speculative: { types: ['draft-simple'], draftModel: target, nMax: 4 },
  });
  t.teardown(() => d.dispose());
  t.equal(d.draftMax, 4);
  for (const [i, p] of prompts4.slice(0, 2).entries()) d.start(i, p, { maxTokens: 20 });
  await d.step(256); // prefill
  const r = await d.step(256, [0, 1]);
  t.same(
    (r.drafts ?? []).map((x) => [x.slot, x.drafted]),
    [[1, 1]],
    'slot 0 did not draft, slot 1 drafted one token',
  );
  t.equal(r.batchTokens, 3, "the batch held both slots' tokens and one draft token");
});

t.test('a restored slot drafts again once the draft model has caught up', async (t) => {
  const prompt = prompts4[0] ?? [];
  const spec = { types: ['draft-simple'], draftModel: target, nMax: 4 };
  const plain = await generate(target, [prompt], {}, { maxTokens: 40 });
  const d = new BatchDecoder(target, { slots: 2, ctxPerSlot: 256, speculative: spec });
  t.teardown(() => d.dispose());
  d.start(0, prompt, { maxTokens: 1 });
  while ((await d.step(256)).events.every((e) => e.end === null));
  const saved = await d.saveState(0);
  await d.restoreState(1, saved);
  // Slot 1's target KV holds the prompt; its draft context holds nothing until it catches up.
  d.start(1, prompt, { maxTokens: 40 });
  const { tokens, drafted, accepted } = await untilEnd(d, 1);
  t.same(tokens, plain.tokens[0]);
  t.ok(
    drafted > 0 && accepted === drafted,
    `the caught-up draft model drafts the target's tokens (${accepted}/${drafted})`,
  );
});

t.test('sliding-window model (tiny-gemma3): rejected drafts roll back, output unchanged', async (t) => {
  const gemma = await loadModel('tiny-gemma3');
  const gemmaOther = await Model.load(await ensureModel({ preset: 'tiny-gemma3', quant: 'F16', seed: 2 }));
  t.teardown(() => {
    gemma.dispose();
    gemmaOther.dispose();
  });
  // Longer than the 64-token window, so the window moves while drafts come and go.
  const prompts = [syntheticPrompt(90, 5), syntheticPrompt(70, 6)];
  const plain = await generate(gemma, prompts, {}, { maxTokens: 100 });
  for (const draftModel of [gemma, gemmaOther]) {
    const run = await generate(
      gemma,
      prompts,
      { speculative: { types: ['draft-simple'], draftModel, nMax: 6 } },
      {
        maxTokens: 100,
      },
    );
    t.same(run.tokens, plain.tokens, draftModel === gemma ? 'draft = itself' : 'draft = another model');
    t.ok(run.drafted > 0, `drafted ${run.drafted}, accepted ${run.accepted}`);
  }
});

t.test('synthetic acceptance (--spec-synth-len): drafts accepted at the asked mean length', async (t) => {
  const prompts = prompts4;
  const run = await generate(
    target,
    prompts,
    {
      speculative: { types: ['draft-simple'], draftModel: stranger, nMax: 4, synthLen: 3 },
    },
    { maxTokens: 120 },
  );
  // Mean accepted length per verification: 1 + accepted / verifications, asked 3.
  const perVerification = run.accepted / (run.drafted / 4);
  t.ok(perVerification > 1.5 && perVerification < 2.5, `accepted per draft ${perVerification.toFixed(2)} (2 asked)`);
});

t.test('synthetic acceptance repeats for a request with the same seed', async (t) => {
  const spec = { types: ['draft-simple'], draftModel: stranger, nMax: 4, synthLen: 2.5 };
  const run = (seed: number) => generate(target, [prompts4[0] ?? []], { speculative: spec }, { sampling: { seed } });
  const [a, b, c] = [await run(7), await run(7), await run(8)];
  t.ok(a.drafted > 0);
  t.same([b.drafted, b.accepted], [a.drafted, a.accepted], 'seed 7 twice: the same acceptances');
  t.notSame([c.drafted, c.accepted, c.tokens], [a.drafted, a.accepted, a.tokens], 'seed 8: others');
});

t.test('refused combinations name the problem', async (t) => {
  const qwen = await loadModel('tiny-qwen');
  t.teardown(() => qwen.dispose());
  const make = (speculative: NonNullable<DecoderOptions['speculative']>) => () =>
    new BatchDecoder(target, { slots: 1, ctxPerSlot: 128, speculative }).dispose();
  t.throws(make({ types: ['draft-eagle3'] }), { code: 'INVALID_ARGUMENT', message: /draft-eagle3.*needs draft heads/ });
  t.throws(make({ types: ['draft-mtp'] }), { code: 'INVALID_ARGUMENT', message: /draft-mtp/ });
  t.throws(make({ types: ['draft-simple'] }), { code: 'INVALID_ARGUMENT', message: /needs a draft model \(-md\)/ });
  t.throws(make({ types: ['ngram-simple'], draftModel: stranger }), { message: /draft-simple' only/ });
  t.throws(make({ types: ['bogus'] }), { code: 'INVALID_ARGUMENT', message: /unknown speculative type 'bogus'/ });
  t.throws(make({ types: ['draft-simple'], draftModel: qwen }), { code: 'INVALID_ARGUMENT', message: /vocab/ });
  t.throws(make({ types: ['ngram-cache'] }), { message: /'ngram-cache' needs a static lookup cache \(-lcs FILE\)/ });
  t.throws(make({ types: ['ngram-cache'], lookupCacheStatic: '/nonexistent/cache.bin' }), {
    message: /-lcs: cannot open the lookup cache/,
  });
  const dir = await mkdtemp(join(tmpdir(), 'lookup-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  await writeFile(join(dir, 'torn.bin'), Buffer.from(new Int32Array([5, -1, -1, -1, 2, 7]).buffer));
  t.throws(make({ types: ['ngram-cache'], lookupCacheStatic: join(dir, 'torn.bin') }), {
    message: /is not an n-gram lookup cache/,
  });
  t.throws(make({ types: ['ngram-simple'], lookupCacheStatic: join(dir, 'torn.bin') }), {
    message: /'ngram-cache' only/,
  });
  t.throws(make({ types: ['draft-simple'], draftModel: stranger, synthLen: 9 }), {
    code: 'INVALID_ARGUMENT',
    message: /synthetic acceptance length/,
  });
  // None of them left a context behind: a plain decoder still works.
  const d = new BatchDecoder(target, { slots: 1, ctxPerSlot: 128 });
  d.dispose();
});

t.test('n choices: a copied prompt drafts at once (one KV stream) or after catching up (one per slot)', async (t) => {
  const prompt = prompts4[1] ?? [];
  const plain = await generate(target, [prompt], {}, { maxTokens: 30 });
  for (const kvUnified of [true, false]) {
    const d = new BatchDecoder(target, {
      slots: 2,
      ctxPerSlot: 256,
      kvUnified,
      speculative: { types: ['draft-simple'], draftModel: target, nMax: 4 },
    });
    t.teardown(() => d.dispose());
    d.start(0, prompt, { maxTokens: 30 });
    await d.step(256); // the prompt, once
    d.cancel(0);
    d.copyPrefix(0, 1);
    d.start(1, prompt, { maxTokens: 30 });
    const { tokens, drafted, accepted } = await untilEnd(d, 1);
    t.same(tokens, plain.tokens[0], `kvUnified ${kvUnified}: same tokens`);
    t.ok(drafted > 0 && accepted === drafted, `kvUnified ${kvUnified}: ${accepted}/${drafted} accepted`);
  }
});

t.test('context shift: a full slot drops half its context and drafting goes on, output unchanged', async (t) => {
  const prompt = syntheticPrompt(20, 61);
  const start = { maxTokens: 150, contextShift: true, nKeep: 4 };
  const plain = await generate(target, [prompt], { ctxPerSlot: 64 }, start);
  const spec = await generate(
    target,
    [prompt],
    { ctxPerSlot: 64, speculative: { types: ['draft-simple'], draftModel: target, nMax: 4 } },
    start,
  );
  t.equal(plain.tokens[0]?.length, 150, 'the slot shifted to reach 150 tokens in 64 cells');
  t.same(spec.tokens, plain.tokens);
  t.ok(spec.drafted > 0 && spec.accepted === spec.drafted, `${spec.accepted}/${spec.drafted} accepted across shifts`);
});
