// The benchmark model: Gemma-3-1B's exact shapes, random weights, quantized by llama.cpp to Q4_K_M.
// llama.cpp must see what it sees in the real model: "gemma3 1B Q4_K - Medium | 762.49 MiB | 999.89 M".
import t from 'tap';
import { loadModel } from '../helpers/models.ts';

t.test('generated gemma3-1b Q4_K_M matches the real model in size and parameters', { timeout: 600_000 }, async (t) => {
  const model = await loadModel('gemma3-1b', 'Q4_K_M');
  t.teardown(() => model.dispose());
  const i = model.info;
  t.equal(i.architecture, 'gemma3');
  t.equal(i.description, 'gemma3 1B Q4_K - Medium');
  t.equal(i.nParams, 999_885_952);
  t.equal((i.nParams / 1e6).toFixed(2), '999.89');
  t.equal((i.sizeBytes / 1024 / 1024).toFixed(2), '762.49');
  t.equal(i.nLayer, 26);
  t.equal(i.nEmbd, 1152);
  t.equal(i.nHead, 4);
  t.equal(i.nHeadKv, 1);
  t.equal(i.nSwa, 512);
  t.equal(i.nVocab, 262_144);
  t.equal(i.nCtxTrain, 32_768);
  const prompt = model.tokenize('Hello from a 1 GB GPU');
  const out = await model.referenceGreedy(prompt, { nPredict: 2, nCtx: 64 });
  t.ok(out.length > 0 && out.every((id) => id >= 0 && id < 262_144), 'a forward pass runs');
});
