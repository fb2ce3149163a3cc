import { stat } from 'node:fs/promises';
import t from 'tap';
import { Model } from '../../src/engine/index.ts';
import { ArgumentError, StateError } from '../../src/errors.ts';
import { getPreset, parameterCount, presetTensors } from '../../src/gguf/presets.ts';
import { loadModel, modelPath } from '../helpers/models.ts';

const model = await loadModel('tiny');
t.teardown(() => model.dispose());

t.test('metadata of the tiny model', async (t) => {
  const i = model.info;
  t.equal(i.architecture, 'llama');
  t.equal(i.nVocab, 32000);
  t.equal(i.nLayer, 2);
  t.equal(i.nEmbd, 256);
  t.equal(i.nHead, 4);
  t.equal(i.nHeadKv, 2);
  t.equal(i.nCtxTrain, 2048);
  t.equal(i.vocabType, 'spm');
  t.equal(i.bos, 1);
  t.equal(i.eos, 2);
  t.ok(i.eogTokens.includes(2), 'EOS ends generation');
  t.equal(i.addBos, true);
  t.equal(i.fileType, 'F16');
  t.equal(i.nParams, parameterCount(presetTensors(getPreset('tiny'))));
  t.equal(i.fileSizeBytes, (await stat(i.path)).size);
  t.ok(i.sizeBytes > 0 && i.sizeBytes < i.fileSizeBytes, 'tensor bytes are most of the file');
  t.match(i.chatTemplate, /<\|im_start\|>/);
  t.equal(i.metadata['general.architecture'], 'llama');
});

t.test('tokenize and detokenize round trips', async (t) => {
  for (const text of [
    'Hello world',
    'héllo wörld',
    '日本語のテキスト',
    'emoji 🦙 and tabs\tand\nnewlines',
    'trailing spaces  ',
    'a',
  ]) {
    const tokens = model.tokenize(text, { addSpecial: false });
    t.ok(tokens.length > 0, `tokens for ${JSON.stringify(text)}`);
    t.ok(tokens.every((id) => id >= 0 && id < 32000));
    // SPM tokenizers add a space before the text; llama.cpp's detokenizer keeps it.
    const back = model.detokenize(tokens);
    t.equal(back.replace(/^ /, ''), text, `round trip of ${JSON.stringify(text)}`);
    t.same(model.tokenize(back.replace(/^ /, ''), { addSpecial: false }), tokens, 'stable tokens');
  }
  const withBos = model.tokenize('Hello', { addSpecial: true });
  t.equal(withBos[0], 1, 'BOS first with addSpecial');
  t.equal(model.detokenize(withBos, { removeSpecial: true }).trim(), 'Hello');
  t.match(model.detokenize(withBos, { unparseSpecial: true }), /^<s>/);
});

t.test('special tokens are parsed only when asked', async (t) => {
  t.same(Array.from(model.tokenize('<s>', { addSpecial: false, parseSpecial: true })), [1]);
  t.not(Array.from(model.tokenize('<s>', { addSpecial: false, parseSpecial: false })).join(), '1');
});

t.test('token pieces, including partial UTF-8 bytes', async (t) => {
  const tokens = model.tokenize('Hello', { addSpecial: false });
  t.equal(tokens.length, 1);
  t.equal(model.tokenToPiece(tokens[0] ?? -1), ' Hello');
  // SPM byte-fallback tokens <0x00>..<0xFF> are ids 3..258: 0xE4 is the first byte of a 3-byte character.
  t.same(Array.from(model.tokenBytes(3 + 0xe4)), [0xe4]);
  t.equal(model.tokenToPiece(1), '', 'control tokens render empty by default');
  t.equal(model.tokenToPiece(1, { special: true }), '<s>');
});

t.test('chat template', async (t) => {
  const prompt = model.applyChatTemplate([
    { role: 'system', content: 'Be brief.' },
    { role: 'user', content: 'Hi there' },
  ]);
  t.equal(
    prompt,
    '<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi there<|im_end|>\n<|im_start|>assistant\n',
  );
  t.equal(
    model.applyChatTemplate([{ role: 'user', content: 'x' }], { addAssistant: false }),
    '<|im_start|>user\nx<|im_end|>\n',
  );
  t.throws(() => model.applyChatTemplate([{ role: 'user', content: 'x' }], { template: 'not a template I know' }), {
    code: 'TEMPLATE_FAILED',
  });
});

t.test('gemma3 chat template folds the system prompt into the first turn', async (t) => {
  const gemma = await loadModel('tiny-gemma3');
  t.teardown(() => gemma.dispose());
  t.equal(gemma.info.architecture, 'gemma3');
  t.ok(gemma.info.nSwa > 0, 'sliding window attention');
  const prompt = gemma.applyChatTemplate([
    { role: 'system', content: 'Be brief.' },
    { role: 'user', content: 'Hi' },
    { role: 'assistant', content: 'Hello!' },
    { role: 'user', content: 'Bye' },
  ]);
  t.equal(
    prompt,
    '<start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n<start_of_turn>model\nHello!<end_of_turn>\n<start_of_turn>user\nBye<end_of_turn>\n<start_of_turn>model\n',
  );
});

t.test('bad arguments are typed errors', async (t) => {
  t.throws(() => model.detokenize([99999]), ArgumentError);
  t.throws(() => model.detokenize([-1]), { code: 'INVALID_ARGUMENT', message: /outside the vocabulary/ });
  t.throws(() => model.tokenToPiece(32000), { code: 'INVALID_ARGUMENT' });
  t.throws(() => model.tokenize(42 as unknown as string), {
    code: 'INVALID_ARGUMENT',
    message: /text must be a string/,
  });
  t.throws(() => model.detokenize([1.5]), { code: 'INVALID_ARGUMENT' });
  t.throws(() => model.applyChatTemplate([{ role: 'user' } as never]), { code: 'INVALID_ARGUMENT' });
});

t.test('load reports progress; dispose is idempotent; use after dispose is an error', async (t) => {
  const seen: number[] = [];
  const m = await Model.load(await modelPath('tiny'), { onProgress: (p) => seen.push(p) });
  await new Promise((r) => setImmediate(r));
  t.ok(seen.length > 0, 'progress was reported');
  t.equal(seen.at(-1), 1, 'progress ends at 1');
  t.ok(
    seen.every((p, k) => k === 0 || p >= (seen[k - 1] ?? 0)),
    'monotonic',
  );
  m.dispose();
  m.dispose();
  t.equal(m.disposed, true);
  t.throws(() => m.tokenize('x'), StateError);
  t.throws(() => m.tokenize('x'), { code: 'DISPOSED' });
  await t.rejects(m.referenceGreedy([1, 2]), { code: 'DISPOSED' });
});

t.test('a load can be cancelled, and disposing during a load cancels it', async (t) => {
  const path = await modelPath('tiny');
  const ac = new AbortController();
  ac.abort();
  await t.rejects(Model.load(path, { signal: ac.signal }), { code: 'LOAD_CANCELLED' });

  const { loadAddon } = await import('../../src/engine/native.ts');
  const addon = loadAddon();
  const a = new addon.Model();
  const loading = a.load(path, {});
  a.abortLoad();
  await t.rejects(loading, { code: 'LOAD_CANCELLED' });
  a.dispose();

  const b = new addon.Model();
  const loadingB = b.load(path, {});
  b.dispose();
  b.dispose();
  await t.rejects(loadingB, { code: 'LOAD_CANCELLED' });
  t.equal(b.disposed, true);
  t.throws(() => b.info(), { code: 'DISPOSED' });
});

t.test('loading twice on one native model is refused', async (t) => {
  const { loadAddon } = await import('../../src/engine/native.ts');
  const a = new (loadAddon().Model)();
  const path = await modelPath('tiny');
  const first = a.load(path, {});
  t.throws(() => a.load(path, {}), { code: 'BUSY' });
  await first;
  t.throws(() => a.load(path, {}), { code: 'BUSY' });
  a.dispose();
});

t.test('forward pass on a quantized (Q4_K_M) model', async (t) => {
  // Quantized matmuls are where a -march=native build with AMX crashed on this VM (SIGILL).
  const q = await loadModel('tiny', 'Q4_K_M');
  t.teardown(() => q.dispose());
  t.match(q.info.fileType, /Q4_K - Medium/);
  t.ok(q.info.sizeBytes < model.info.sizeBytes / 2, 'smaller than F16');
  const prompt = q.tokenize('The quick brown fox');
  const out = await q.referenceGreedy(prompt, { nPredict: 8 });
  t.ok(out.length > 0 && out.length <= 8);
  t.ok(out.every((id) => id >= 0 && id < 32000));
  t.same(await q.referenceGreedy(prompt, { nPredict: 8 }), out, 'greedy is deterministic');
});
