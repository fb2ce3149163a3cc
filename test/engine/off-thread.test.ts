// Creating and freeing a decoder, and freeing a model, off the JS thread (router mode loads and unloads models while
// other models stream): the same decoder as the constructor's, freed exactly once.
import { readFileSync, statSync } from 'node:fs';
import t from 'tap';
import { BatchDecoder, Model } from '../../src/engine/index.ts';
import { runToEnd } from '../helpers/decode.ts';
import { modelPath } from '../helpers/models.ts';

const options = { slots: 2, ctxPerSlot: 256, batchSize: 64, threads: 2 };
const prompt = [1, 15043, 29892, 920, 526, 366];

t.test('BatchDecoder.create decodes as the constructor’s decoder does; release() frees it', async (t) => {
  const model = await Model.load(await modelPath('tiny'));
  t.teardown(() => model.dispose());
  const plain = new BatchDecoder(model, options);
  plain.start(0, prompt, { maxTokens: 12 });
  const expected = await runToEnd(plain, [0]);
  plain.dispose();
  const created = await BatchDecoder.create(model, options);
  t.equal(created.slots, 2);
  t.equal(created.ctxPerSlot, 256);
  created.start(0, prompt, { maxTokens: 12 });
  const got = await runToEnd(created, [0]);
  t.same(got, expected, 'same greedy tokens');
  await created.release();
  t.ok(created.disposed);
  t.throws(() => created.start(0, prompt, { maxTokens: 1 }), { code: 'DISPOSED' });
  await created.release();
  t.pass('a second release does nothing');
});

t.test('BatchDecoder.create refuses bad options with the constructor’s error', async (t) => {
  const model = await Model.load(await modelPath('tiny'));
  t.teardown(() => model.dispose());
  await t.rejects(BatchDecoder.create(model, { ...options, slots: 0 }), { code: 'INVALID_ARGUMENT' });
});

t.test('Model.release frees the weights; a decoder created before keeps its own reference', async (t) => {
  const model = await Model.load(await modelPath('tiny'));
  const decoder = await BatchDecoder.create(model, options);
  await model.release();
  t.ok(model.disposed);
  t.throws(() => model.tokenize('hi'), { code: 'DISPOSED' });
  decoder.start(0, prompt, { maxTokens: 4 });
  const out = await runToEnd(decoder, [0]);
  t.equal(out.get(0)?.tokens.length, 4, 'the decoder still decodes');
  await decoder.release();
});

const rssBytes = (): number =>
  Number(/VmRSS:\s+(\d+)/.exec(readFileSync('/proc/self/status', 'utf8'))?.[1] ?? 0) * 1024;

t.test('releasing a created decoder and its model gives their memory back at once (no GC needed)', async (t) => {
  const path = await modelPath('tiny');
  const size = statSync(path).size;
  const model = await Model.load(path);
  const decoder = await BatchDecoder.create(model, options);
  decoder.start(0, prompt, { maxTokens: 4 });
  await runToEnd(decoder, [0]); // every weight touched: resident
  const loaded = rssBytes();
  // The JS objects stay reachable: only release() may free the native memory.
  await decoder.release();
  await model.release();
  const freed = loaded - rssBytes();
  t.ok(freed > size / 2, `freed ${(freed / 2 ** 20).toFixed(1)} MiB of a ${(size / 2 ** 20).toFixed(1)} MiB model`);
  t.ok(decoder.disposed && model.disposed);
});
