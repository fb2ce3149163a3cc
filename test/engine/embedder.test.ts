import t from 'tap';
import { Embedder } from '../../src/engine/index.ts';
import { ArgumentError, ContextExceededError, StateError } from '../../src/errors.ts';
import { loadModel } from '../helpers/models.ts';

const model = await loadModel('tiny-bert');
t.teardown(() => model.dispose());

const TEXTS = ['hello world', 'the quick brown fox jumps over the lazy dog', 'a', 'embeddings are vectors'];
const inputs = TEXTS.map((s) => model.tokenize(s, { addSpecial: true }));

t.test("the model's pooling and shape", async (t) => {
  const e = new Embedder(model, { sequences: 4 });
  t.teardown(() => e.dispose());
  t.match(e.info, { pooling: 'cls', dimensions: 128, maxInputTokens: 512, sequences: 4 });
  t.equal(new Embedder(model, { pooling: 'mean' }).info.pooling, 'mean', 'an explicit pooling wins');
});

t.test('inputs batched in one llama_decode equal the same inputs embedded one at a time', async (t) => {
  const e = new Embedder(model, { sequences: 4 });
  t.teardown(() => e.dispose());
  const together = await e.embed(inputs);
  t.equal(together.decodes, 1, 'four inputs, four sequences: one llama_decode');
  t.equal(together.embeddings.length, inputs.length);
  for (const [i, input] of inputs.entries()) {
    const alone = await e.embed([input]);
    t.equal(alone.decodes, 1);
    const a = together.embeddings[i]!;
    t.match(a, { rows: 1, tokens: input.length });
    t.equal(a.values.length, 128);
    const b = alone.embeddings[0]!.values;
    const diff = Math.max(...a.values.map((v, k) => Math.abs(v - b[k]!)));
    t.ok(diff < 1e-5, `input ${i}: max difference ${diff}`);
  }
  t.not(together.embeddings[0]!.values[0], together.embeddings[1]!.values[0], 'different inputs, different vectors');
});

t.test('more inputs than sequences take more calls; concurrent requests share one', async (t) => {
  const e = new Embedder(model, { sequences: 2 });
  t.teardown(() => e.dispose());
  t.equal((await e.embed(inputs)).decodes, 2, 'four inputs over two sequences');
  const idle = new Embedder(model, { sequences: 2 });
  t.teardown(() => idle.dispose());
  const first = idle.embed([inputs[0]!]);
  const [a, b] = await Promise.all([idle.embed([inputs[1]!]), idle.embed([inputs[2]!])]);
  t.equal((await first).batchedInputs, 1, 'the first request found the embedder idle and went at once');
  t.equal(a.batchedInputs, 2, 'the two requests that waited for it went in one native call');
  t.equal(b.batchedInputs, 2);
  t.equal(a.decodes, 1, 'and one llama_decode');
});

t.test('pooling none: one row per token', async (t) => {
  const e = new Embedder(model, { pooling: 'none' });
  t.teardown(() => e.dispose());
  const out = await e.embed([inputs[0]!]);
  t.equal(out.embeddings[0]!.rows, inputs[0]!.length);
  t.equal(out.embeddings[0]!.values.length, inputs[0]!.length * 128);
});

t.test('bad inputs are typed errors, and one bad request does not fail those gathered with it', async (t) => {
  const e = new Embedder(model, { sequences: 4 });
  t.teardown(() => e.dispose());
  await t.rejects(e.embed([new Int32Array(513).fill(1000)]), ContextExceededError);
  await t.rejects(e.embed([[]]), ArgumentError);
  await t.rejects(e.embed([[30522]]), ArgumentError);
  const busy = e.embed([inputs[0]!]);
  const good = e.embed([inputs[1]!]);
  const bad = e.embed([[-1]]);
  await busy;
  await t.rejects(bad, ArgumentError);
  t.equal((await good).embeddings.length, 1, 'the good request still got its embedding');
  e.dispose();
  e.dispose();
  await t.rejects(e.embed([inputs[0]!]), StateError);
});

t.test('a causal model (KV cache): every pooling as alone; mean and cls one input per llama_decode', async (t) => {
  const llama = await loadModel('tiny');
  t.teardown(() => llama.dispose());
  const ids = ['hello world', 'abc', 'x y z'].map((s) => llama.tokenize(s, { addSpecial: true }));
  for (const [pooling, decodes] of [
    ['mean', 3],
    ['last', 1],
    ['cls', 3],
    ['none', 1],
  ] as const) {
    const e = new Embedder(llama, { sequences: 3, ctxPerInput: 256, pooling });
    t.teardown(() => e.dispose());
    const together = await e.embed(ids);
    t.equal(together.decodes, decodes, `${pooling}: ${decodes} llama_decode calls`);
    const alone = await e.embed([ids[2]!]);
    t.same(Array.from(alone.embeddings[0]!.values), Array.from(together.embeddings[2]!.values), `${pooling}: as alone`);
  }
});
