// llama-server's slot actions on their own, over the KV pool and the fake decoder's slots: save, restore and erase
// report what they moved, a busy or held slot is refused, and the slot is never left held (a failure included).
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { ArgumentError, StateError } from '../../src/errors.ts';
import { KvPool, type Tenant } from '../../src/scheduler/kv-pool.ts';
import { SlotActions } from '../../src/scheduler/slot-actions.ts';
import { syntheticPrompt } from '../helpers/decode.ts';
import { FakeDecoder } from '../helpers/fake-decoder.ts';

async function setup(t: Test) {
  const dir = await mkdtemp(join(tmpdir(), 'slot-actions-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const decoder = new FakeDecoder({ slots: 2, ctxPerSlot: 64 });
  const pool = new KvPool<Tenant>(decoder, { minReusePrefix: 4, outputReserve: 8, promptCacheBytes: 0 }, () => {});
  let clock = 0;
  let released = 0;
  const actions = new SlotActions(
    pool,
    decoder,
    () => (clock += 5),
    () => released++,
  );
  return { dir, decoder, pool, actions, released: () => released };
}

t.test('save, erase and restore: what each moved, and the pool knows what the slot holds after', async (t) => {
  const { dir, decoder, pool, actions, released } = await setup(t);
  const tokens = syntheticPrompt(12, 1);
  await decoder.restoreState(0, { tokens, state: new Uint8Array(new Int32Array(tokens).buffer) });
  const file = join(dir, 'slot0.bin');
  t.same(await actions.run(0, 'save', file), { tokens: 12, bytes: 12, ms: 5 });
  t.same(await actions.run(0, 'erase'), { tokens: 12, ms: 5 });
  t.equal(pool.cachedCount(0), 0);
  t.same(decoder.cachedPrefix(0), []);
  t.same(await actions.run(1, 'restore', file), { tokens: 12, ms: 5 }, 'into another slot');
  t.equal(pool.cachedCount(1), 12);
  t.same(pool.cachedPrefix(1), tokens);
  t.equal(released(), 3, 'each action tells the step loop the slot is free again');
  t.same(pool.idleSlots(), [0, 1]);
});

t.test('refused: no such slot, a busy or held slot, a save or restore without a file', async (t) => {
  const { pool, actions, released } = await setup(t);
  await t.rejects(actions.run(2, 'erase'), new ArgumentError('INVALID_ARGUMENT', 'slot 2 does not exist (slots 0..1)'));
  pool.occupy(0, { startedAt: 1, cancel: null }, 0, 4, 4);
  await t.rejects(actions.run(0, 'erase'), new StateError('BUSY', 'slot 0 is busy'));
  pool.hold(1);
  await t.rejects(actions.run(1, 'erase'), new StateError('BUSY', 'slot 1 is busy'));
  pool.release(1);
  await t.rejects(actions.run(1, 'save'), new ArgumentError('INVALID_ARGUMENT', 'save needs a file'));
  t.equal(released(), 0, 'a refused action never held the slot');
  t.same(pool.idleSlots(), [1]);
});

t.test('a failing action leaves the slot free', async (t) => {
  const { dir, pool, actions, released } = await setup(t);
  await t.rejects(actions.run(0, 'restore', join(dir, 'missing.bin')));
  t.equal(released(), 1);
  t.same(pool.idleSlots(), [0, 1]);
});
