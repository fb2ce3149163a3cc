// The KV pool's decisions on their own, against the fake decoder's slots (no scheduler, no steps): which idle caches
// give their cells back for an admission (least recently used first), when a request must wait, what making room
// does (an idle cache first, else the most recently started request is preempted, a lone request overflows), and
// the host-RAM cache around them (a failed save loses only that copy, a failed restore starts the request cold).
import t from 'tap';
import { KvPool, type KvPoolOptions, type Tenant } from '../../src/scheduler/kv-pool.ts';
import type { PromptCacheEvent } from '../../src/scheduler/types.ts';
import { syntheticPrompt } from '../helpers/decode.ts';
import { FakeDecoder, type FakeDecoderOptions } from '../helpers/fake-decoder.ts';

interface Request extends Tenant {
  readonly name: string;
  startedAt: number | null;
  cancel: object | null;
}

function request(name: string, startedAt: number): Request {
  return { name, startedAt, cancel: null };
}

function setup(fake: FakeDecoderOptions, options: Partial<KvPoolOptions> = {}) {
  const decoder = new FakeDecoder(fake);
  const events: PromptCacheEvent[] = [];
  const pool = new KvPool<Request>(
    decoder,
    { minReusePrefix: 4, outputReserve: 8, promptCacheBytes: 0, ...options },
    (e) => events.push(e),
  );
  /** The slot's KV holds `tokens` and it just ended a request (the most recently used slot now). */
  const idleWith = async (slot: number, tokens: readonly number[]) => {
    await decoder.restoreState(slot, { tokens, state: new Uint8Array(new Int32Array(tokens).buffer) });
    pool.occupy(slot, request(`previous on ${slot}`, 0), 0, tokens.length, 0);
    pool.vacate(slot);
    pool.cachedPrefix(slot); // read between steps, as admission does
  };
  const erased = () => decoder.calls.flatMap((c) => (c.op === 'erase' ? [c.slot] : []));
  return { decoder, pool, events, idleWith, erased };
}

/** Records what makeRoom asked of the step loop. */
function room() {
  const preempted: Array<{ slot: number; name: string }> = [];
  const overflowed: string[][] = [];
  return {
    preempted,
    overflowed,
    actions: {
      preempt: (slot: number, r: Request) => preempted.push({ slot, name: r.name }),
      overflow: (rs: readonly Request[]) => overflowed.push(rs.map((r) => r.name)),
    },
  };
}

t.test('admission: idle caches give their cells back least recently used first, only as many as needed', async (t) => {
  // 64 cells; slot 0 (used first) and slot 1 (used last) hold 30 tokens each, slot 2 was never used.
  const { pool, idleWith } = setup({ slots: 3, ctxPerSlot: 64, kvCells: 64 });
  await idleWith(0, syntheticPrompt(30, 1));
  await idleWith(1, syntheticPrompt(30, 2));
  // A new prompt of 20 and the 8-token output reservation need 28 cells: 60 are held, so 24 must come back.
  const placement = pool.place(syntheticPrompt(20, 3), 100);
  t.ok(placement);
  t.equal(placement?.slot, 2, 'the never-used slot takes the unrelated prompt');
  t.same(placement?.evict, [0], 'the least recently used cache goes, and only that one');
  t.equal(placement?.restore, null);

  // A prompt that needs every cell but the reservation: both caches go, oldest first.
  const big = pool.place(syntheticPrompt(50, 4), 100);
  t.same(big?.evict, [0, 1]);
});

t.test('admission: a prompt continuing an idle cache goes to that slot, which keeps its own cells', async (t) => {
  const { pool, idleWith } = setup({ slots: 2, ctxPerSlot: 64, kvCells: 64 });
  const convo = syntheticPrompt(30, 1);
  await idleWith(0, convo);
  await idleWith(1, syntheticPrompt(30, 2));
  const placement = pool.place([...convo, ...syntheticPrompt(10, 5).slice(1)], 100);
  t.equal(placement?.slot, 0, 'the slot holding its prefix');
  t.same(placement?.evict, [1], 'the other cache makes room; its own 30 cells count as its prompt');
});

t.test('admission waits while running requests hold what it needs; alone it goes anyway', async (t) => {
  const { pool } = setup({ slots: 2, ctxPerSlot: 64, kvCells: 64 });
  // A running request admitted with 40 prompt tokens and an 8-token reservation holds 48 cells for the pool,
  // even while its count is still lower.
  pool.occupy(0, request('running', 1), 0, 40, 100);
  pool.recount(0, 10);
  t.equal(pool.place(syntheticPrompt(20, 3), 100), null, '48 held + 28 needed > 64: it waits');
  t.equal(pool.place(syntheticPrompt(16, 3), 100), null, '48 + 24 > 64: it waits');
  t.ok(pool.place(syntheticPrompt(16, 3), 0), 'with no output left it reserves none: 48 + 16 = 64 fits');
  t.ok(pool.place(syntheticPrompt(8, 3), 100), '48 + 16 = 64 fits');
  pool.vacate(0);
  pool.recount(0, 0);
  t.ok(pool.place(syntheticPrompt(60, 3), 100), 'nothing runs: 68 > 64 goes alone (its prompt fits a slot)');
});

t.test('making room: an idle cache goes back (least recently used), nobody is preempted', async (t) => {
  const { pool, idleWith, erased } = setup({ slots: 3, ctxPerSlot: 64, kvCells: 64 });
  await idleWith(1, syntheticPrompt(20, 1));
  await idleWith(2, syntheticPrompt(20, 2));
  pool.occupy(0, request('running', 1), 0, 10, 100);
  const r = room();
  await pool.makeRoom(r.actions);
  t.same(erased(), [1], 'the older idle cache is erased');
  t.equal(pool.cachedCount(1), 0);
  t.equal(pool.cachedCount(2), 20, 'the newer one stays');
  t.same(r.preempted, []);
  t.same(r.overflowed, []);
  t.equal(pool.tenant(0)?.name, 'running');
});

t.test('making room with no idle cache preempts the most recently started request that is not ending', async (t) => {
  const { pool, erased } = setup({ slots: 4, ctxPerSlot: 64, kvCells: 64 });
  pool.occupy(0, request('first', 1), 0, 10, 100);
  pool.occupy(1, request('third', 3), 0, 10, 100);
  pool.occupy(2, request('second', 2), 0, 10, 100);
  const ending = request('fourth, being cancelled', 4);
  ending.cancel = { reason: 'cancelled' };
  pool.occupy(3, ending, 0, 10, 100);
  for (let s = 0; s < 4; s++) pool.recount(s, 16);
  const r = room();
  await pool.makeRoom(r.actions);
  t.same(r.preempted, [{ slot: 1, name: 'third' }], 'the latest to start; a cancel in flight frees its own slot');
  t.same(r.overflowed, []);
  t.equal(pool.tenant(1), null, 'its slot is idle');
  t.same(erased(), [1], 'and its cells went back to the pool');
  t.equal(pool.cachedCount(1), 0);
  t.same(pool.idleSlots(), [1], 'and it is free for admission again');
});

t.test('making room when one request alone fills the pool: it overflows, nobody is preempted', async (t) => {
  const { pool, erased } = setup({ slots: 2, ctxPerSlot: 64, kvCells: 64 });
  pool.occupy(0, request('alone', 1), 0, 10, 100);
  const ending = request('ending', 2);
  ending.cancel = {};
  pool.occupy(1, ending, 0, 10, 100);
  pool.recount(0, 60);
  const r = room();
  await pool.makeRoom(r.actions);
  t.same(r.overflowed, [['alone']]);
  t.same(r.preempted, []);
  t.same(erased(), []);
});

t.test('making room: an idle cache that cannot be erased falls through to preemption', async (t) => {
  const { decoder, pool, idleWith } = setup({ slots: 3, ctxPerSlot: 64, kvCells: 64 });
  await idleWith(2, syntheticPrompt(20, 1));
  pool.occupy(0, request('older', 1), 0, 10, 100);
  pool.occupy(1, request('newer', 2), 0, 10, 100);
  let erases = 0;
  decoder.eraseSlot = async () => {
    erases++;
    throw new Error('the decoder is failing');
  };
  const r = room();
  await pool.makeRoom(r.actions);
  t.equal(erases, 2, 'the idle slot, then the preempted one');
  t.same(r.preempted, [{ slot: 1, name: 'newer' }]);
  t.same(pool.idleSlots(), [1, 2], 'neither slot stays held');
});

t.test('giving cells back keeps the state in RAM; a failed save loses only that copy', async (t) => {
  const { decoder, pool, idleWith, events, erased } = setup(
    { slots: 2, ctxPerSlot: 64, kvCells: 64 },
    { promptCacheBytes: 1 << 20 },
  );
  const a = syntheticPrompt(20, 1);
  const b = syntheticPrompt(24, 2);
  await idleWith(0, a);
  await idleWith(1, b);
  decoder.failNextSave();
  const r = room();
  await pool.makeRoom(r.actions);
  t.same(events, [{ kind: 'save_failed' }], 'the save failed and was reported');
  t.same(erased(), [0], 'the cells went back all the same');
  t.equal(pool.promptCacheStats().entries, 0, 'nothing kept');
  await pool.makeRoom(r.actions);
  t.same(events.slice(1), [{ kind: 'saved', tokens: 24, bytes: 96 }], 'the next give-back saves');
  t.same(erased(), [0, 1]);
  t.equal(pool.promptCacheStats().entries, 1);
  t.same(r.preempted, []);

  // b's prompt returns: the RAM entry is restored into the least recently used idle slot.
  const prompt = [...b, ...syntheticPrompt(6, 9).slice(1)];
  const placement = pool.place(prompt, 10);
  if (!placement) return t.fail('no placement');
  t.equal(placement.restore?.tokens.length, 24);
  t.equal(placement.restorePrefix, 24);
  t.equal(placement.slot, 0, 'the least recently used idle slot');
  t.equal(await pool.prepare(placement, prompt), 24);
  t.same(events.at(-1), { kind: 'hit', tokens: 24, bytes: 96 });
  t.same(pool.cachedPrefix(0), b, 'the slot holds the restored prompt');
  t.same(pool.promptCacheStats().hits, 1);
});

t.test("admission keeps a slot's own cache before another prompt overwrites it; failures start it cold", async (t) => {
  const { decoder, pool, idleWith, events } = setup(
    { slots: 1, ctxPerSlot: 64, kvCells: 64 },
    { promptCacheBytes: 1 << 20 },
  );
  const a = syntheticPrompt(20, 1);
  await idleWith(0, a);
  const other = syntheticPrompt(12, 2);
  decoder.failNextSave();
  const p1 = pool.place(other, 10);
  if (!p1) return t.fail('no placement');
  t.equal(await pool.prepare(p1, other), 0, 'nothing restored');
  t.same(events, [{ kind: 'save_failed' }], 'the failed save is reported; the request still goes ahead');
  t.same(pool.idleSlots(), [0], 'the slot is not left held');
  pool.countLookup(p1, other);
  t.same(events.at(-1), { kind: 'miss' }, 'its own cache does not serve it: a miss');
  t.equal(pool.promptCacheStats().misses, 1);

  // This time the save works; then a restore that fails leaves the slot to start cold.
  const p2 = pool.place(other, 10);
  if (!p2) return t.fail('no placement');
  await pool.prepare(p2, other);
  t.same(events.at(-1), { kind: 'saved', tokens: 20, bytes: 80 });
  await decoder.eraseSlot(0);
  pool.forget(0);
  const back = [...a, 7, 8, 9];
  const p3 = pool.place(back, 10);
  if (!p3) return t.fail('no placement');
  t.equal(p3.restorePrefix, 20);
  decoder.restoreState = async () => {
    throw new Error('llama_state_seq_set_data failed');
  };
  t.equal(await pool.prepare(p3, back), 0, 'nothing restored');
  t.same(events.at(-1), { kind: 'miss' });
  t.same(pool.promptCacheStats().hits, 0);
});

t.test('a separate KV per slot: admission never evicts', async (t) => {
  const { pool, idleWith } = setup({ slots: 2, ctxPerSlot: 32 });
  await idleWith(0, syntheticPrompt(30, 1));
  await idleWith(1, syntheticPrompt(30, 2));
  t.same(pool.place(syntheticPrompt(30, 3), 100)?.evict, []);
});
