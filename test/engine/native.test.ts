// The addon as the engine loads it: one instance per environment (the main thread, each worker_thread), and the
// core's defaults read from it.
import { existsSync } from 'node:fs';
import { Worker } from 'node:worker_threads';
import t from 'tap';
import { BatchDecoder } from '../../src/engine/index.ts';
import { addonCandidates, loadAddon, nativeDefaults } from '../../src/engine/native.ts';
import { runToEnd, syntheticPrompt } from '../helpers/decode.ts';
import { loadModel, modelPath } from '../helpers/models.ts';

const model = await loadModel('tiny');
t.teardown(() => model.dispose());

// Loads the addon in a worker, loads a model and runs a decoder step there, and ends without disposing either:
// the worker environment's teardown frees them.
const workerScript = `
  const { parentPort, workerData } = require('node:worker_threads');
  const addon = require(workerData.addon);
  const m = new addon.Model();
  m.load(workerData.model, {}).then(async () => {
    const d = new addon.BatchDecoder(m, { nSlots: 1, nCtxPerSlot: 128 });
    d.start(0, m.tokenize('a worker thread', true, false), { maxTokens: 4 });
    await d.step();
    parentPort.postMessage({ nParams: m.info().nParams });
  });`;

t.test("a worker thread's addon environment ends without freeing the main thread's models", async (t) => {
  const addon = addonCandidates().find((p) => existsSync(p));
  const decoder = new BatchDecoder(model, { slots: 1, ctxPerSlot: 128 });
  t.teardown(() => decoder.dispose());
  const prompt = syntheticPrompt(12, 7);
  const tokens = Array.from(model.tokenize('still here'));
  const greedy = await model.referenceGreedy(prompt, { nPredict: 4 });
  decoder.start(0, prompt, { maxTokens: 8 });
  await decoder.step();

  const worker = new Worker(workerScript, { eval: true, workerData: { addon, model: await modelPath('tiny') } });
  const messages: unknown[] = [];
  worker.on('message', (m) => messages.push(m));
  const exitCode = await new Promise((resolve, reject) => {
    worker.once('error', reject);
    worker.once('exit', resolve);
  });
  t.equal(exitCode, 0, 'the worker ended normally');
  t.same(messages, [{ nParams: model.info.nParams }], 'it loaded the model and stepped a decoder');

  t.notOk(model.disposed, 'the main thread model is still loaded');
  t.same(Array.from(model.tokenize('still here')), tokens, 'it tokenizes as before');
  t.same(await model.referenceGreedy(prompt, { nPredict: 4 }), greedy, 'and generates as before');
  const rest = await runToEnd(decoder, [0]);
  t.equal(rest.get(0)?.end, 'length', "the main thread's decoder goes on");
});

t.test('nativeDefaults() is the addon core defaults, read once', async (t) => {
  const defaults = nativeDefaults();
  t.same(defaults, loadAddon().defaults());
  t.equal(nativeDefaults(), defaults, 'the same object each time');
  t.ok(Object.isFrozen(defaults.decoder), 'frozen: no caller can change them for the others');
  t.match(defaults, { load: { nGpuLayers: Number }, decoder: { nBatch: Number }, chatTemplates: { jinja: Boolean } });
});
