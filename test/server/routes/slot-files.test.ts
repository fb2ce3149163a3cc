// Slot files over HTTP (POST /slots/{id}?action=save|restore, src/engine/slot-file.ts): a file goes back into any
// server of the same model, KV types and --swa-full whose slots can hold it, with its checkpoints; anything else is a
// 400 that names the mismatch, and the slot is left as it was. Servers are built from their flags (as npm start).
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { Model } from '../../../src/engine/index.ts';
import { ensureModel } from '../../../src/tools/model-cache.ts';
import { syntheticPrompt } from '../../helpers/decode.ts';
import { loadModel } from '../../helpers/models.ts';
import { errorOf, type Harness, makeHarness, NO_EOS } from '../harness.ts';

const dir = await mkdtemp(join(tmpdir(), 'slot-files-'));
t.teardown(() => rm(dir, { recursive: true, force: true }));
const tiny = await loadModel('tiny');
t.teardown(() => tiny.dispose());
// The same shapes, other weights: llama.cpp itself would load its KV without a word.
const twin = await Model.load(await ensureModel({ preset: 'tiny', quant: 'F16', seed: 2 }));
t.teardown(() => twin.dispose());
const PROMPT = syntheticPrompt(200, 9);

const flags = (...more: string[]) => ['-np', '1', '-c', '512', '-t', '1', '--slot-save-path', dir, ...more];
const action = (h: Harness, what: string, filename: string) =>
  h.app.inject({ method: 'POST', url: `/slots/0?action=${what}`, payload: { filename } });

async function saved(): Promise<number[]> {
  const h = await makeHarness(t, tiny, { flags: flags() });
  const res = await h.app.inject({
    method: 'POST',
    url: '/completion',
    payload: { prompt: PROMPT, n_predict: 4, temperature: 0, logit_bias: NO_EOS },
  });
  const save = await action(h, 'save', 'a.bin');
  if (res.statusCode !== 200 || save.statusCode !== 200) throw new Error(`setup: ${res.body} ${save.body}`);
  return [...h.decoder.cachedPrefix(0)];
}

const held = await saved();

t.test('another server of the same model and KV restores it and reuses it', async (t) => {
  const h = await makeHarness(t, tiny, { flags: flags() });
  const res = await action(h, 'restore', 'a.bin');
  t.equal(res.statusCode, 200, res.body);
  t.match(res.json(), { id_slot: 0, n_restored: held.length });
  t.same(h.decoder.cachedPrefix(0), held);
  const again = await h.app.inject({
    method: 'POST',
    url: '/completion',
    payload: { prompt: PROMPT, n_predict: 1, temperature: 0 },
  });
  t.equal(again.json().timings.cache_n, PROMPT.length - 1, 'the restored KV serves the prompt');
});

const refusals: Array<[string, () => Promise<Harness>, RegExp]> = [
  [
    'another model of the same shapes',
    () => makeHarness(t, twin, { flags: flags() }),
    /saved by another model \(llama, \d+ parameters, a \d+-byte file\); this server runs/,
  ],
  [
    'another KV cache type',
    () => makeHarness(t, tiny, { flags: flags('-ctk', 'q8_0', '-ctv', 'q8_0') }),
    /KV cache types f16\/f16; this server runs q8_0\/q8_0 \(-ctk\/-ctv\)/,
  ],
  [
    'a slot too small for it',
    () => makeHarness(t, tiny, { flags: ['-np', '1', '-c', '128', '-t', '1', '--slot-save-path', dir] }),
    /holds 203 tokens \(saved with a context of 512 per slot\); a slot here holds at most 128/,
  ],
];

for (const [what, server, message] of refusals) {
  t.test(`${what}: a 400 that says so, the slot untouched`, async (t) => {
    const h = await server();
    const res = await action(h, 'restore', 'a.bin');
    t.equal(res.statusCode, 400);
    t.match(errorOf(res), { type: 'invalid_request_error', message });
    t.same(h.decoder.cachedPrefix(0), [], 'nothing restored');
    t.same(h.scheduler.snapshot()[0]?.state, 'idle');
  });
}

t.test('a file that is not one of ours, or damaged: a 400', async (t) => {
  const h = await makeHarness(t, tiny, { flags: flags() });
  await writeFile(join(dir, 'llama.bin'), Buffer.from('ggsq\u0002\u0000\u0000\u0000not ours', 'latin1'));
  const foreign = await action(h, 'restore', 'llama.bin');
  t.equal(foreign.statusCode, 400);
  t.match(errorOf(foreign).message, /not a slot file saved by this server/);
  await writeFile(join(dir, 'cut.bin'), Buffer.from('LSSLOT1\n\u00ff\u00ff\u0000\u0000{', 'latin1'));
  t.match(errorOf(await action(h, 'restore', 'cut.bin')).message, /cut short/);
  t.equal(h.scheduler.snapshot()[0]?.state, 'idle');
});

t.test('on a sliding-window model the checkpoints travel with the file', async (t) => {
  const gemma = await loadModel('tiny-gemma3');
  t.teardown(() => gemma.dispose());
  const a = await makeHarness(t, gemma, { flags: flags() });
  const prompt = syntheticPrompt(300, 10);
  await a.app.inject({ method: 'POST', url: '/completion', payload: { prompt, n_predict: 2, temperature: 0 } });
  const points = a.decoder.resumePoints(0);
  t.ok(points.checkpoints.length > 0, `checkpoints at ${points.checkpoints}`);
  t.equal((await action(a, 'save', 'g.bin')).statusCode, 200);
  const b = await makeHarness(t, gemma, { flags: flags() });
  t.equal((await action(b, 'restore', 'g.bin')).statusCode, 200);
  t.same(b.decoder.resumePoints(0).checkpoints, points.checkpoints, 'the same checkpoints');
});
