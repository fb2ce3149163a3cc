import t from 'tap';
import { chooseSlot, commonPrefix, MIN_REUSE_PREFIX } from '../../src/scheduler/slot-choice.ts';

const range = (from: number, n: number) => Array.from({ length: n }, (_, i) => from + i);

t.test('commonPrefix stops at the first difference and leaves the last prompt token to evaluate', async (t) => {
  t.equal(commonPrefix([1, 2, 3, 4], [1, 2, 9, 4]), 2);
  t.equal(commonPrefix([], [1, 2]), 0);
  t.equal(commonPrefix([1, 2, 3], [1, 2, 3]), 2, 'identical: all but the last');
  t.equal(commonPrefix([1, 2, 3, 4, 5], [1, 2, 3]), 2, 'the cache extends past the prompt');
  t.equal(commonPrefix([1, 2], [1, 2, 3, 4]), 2);
  t.equal(commonPrefix([1], [1]), 0);
});

t.test('the longest common prefix wins', async (t) => {
  const prompt = range(100, 60);
  const slots = [
    { id: 0, cachedPrefix: range(100, 20), lastUsed: 1 },
    { id: 1, cachedPrefix: [...range(100, 40), 7, 7], lastUsed: 5 },
    { id: 2, cachedPrefix: [], lastUsed: -Infinity },
  ];
  t.same(chooseSlot(slots, prompt), { slot: 1, prefix: 40 });
});

t.test('no match, or one shorter than the minimum: the least recently used slot', async (t) => {
  const prompt = [1, ...range(500, 40)];
  const slots = [
    { id: 0, cachedPrefix: [1, 500, 501, 9], lastUsed: 3 },
    { id: 1, cachedPrefix: [2, 3], lastUsed: 2 },
    { id: 2, cachedPrefix: [1, 7], lastUsed: 8 },
  ];
  t.same(chooseSlot(slots, prompt), { slot: 1, prefix: 0 }, 'a 3-token prefix (BOS + template header) is no match');
  t.same(chooseSlot(slots, prompt, 2), { slot: 0, prefix: 3 }, 'with a lower minimum it is');
  const fresh = [...slots, { id: 3, cachedPrefix: [], lastUsed: -Infinity }];
  t.same(chooseSlot(fresh, prompt), { slot: 3, prefix: 0 }, 'a never-used slot is the least recently used');
});

t.test('equal prefixes: the least recently used of them', async (t) => {
  const prompt = range(1, 50);
  const cached = range(1, 30);
  const slots = [
    { id: 0, cachedPrefix: cached, lastUsed: 9 },
    { id: 1, cachedPrefix: cached, lastUsed: 4 },
    { id: 2, cachedPrefix: [], lastUsed: 1 },
  ];
  t.same(chooseSlot(slots, prompt), { slot: 1, prefix: 30 });
  // The whole prompt cached or all but its last token: the same reuse, so a tie.
  const whole = [
    { id: 0, cachedPrefix: prompt, lastUsed: 9 },
    { id: 1, cachedPrefix: prompt.slice(0, 49), lastUsed: 4 },
  ];
  t.same(chooseSlot(whole, prompt), { slot: 1, prefix: 49 });
});

t.test('exactly the minimum counts; no idle slot: null', async (t) => {
  const prompt = range(1, 40);
  const slots = [
    { id: 0, cachedPrefix: range(1, MIN_REUSE_PREFIX), lastUsed: 9 },
    { id: 1, cachedPrefix: range(1, MIN_REUSE_PREFIX - 1), lastUsed: 1 },
  ];
  t.same(chooseSlot(slots, prompt), { slot: 0, prefix: MIN_REUSE_PREFIX });
  t.equal(chooseSlot([], prompt), null);
});

t.test('sliding-window slots: a common prefix counts as far as the slot can resume it', async (t) => {
  const prompt = [...range(100, 60), 7];
  const slots = [
    // The longest common prefix (60), but its window moved on and its one checkpoint is at 20.
    { id: 0, cachedPrefix: range(100, 200), resume: { from: 150, checkpoints: [20] }, lastUsed: 1 },
    // A shorter one (50) it can resume at a checkpoint.
    { id: 1, cachedPrefix: [...range(100, 50), 9], resume: { from: 100, checkpoints: [48] }, lastUsed: 2 },
  ];
  t.same(chooseSlot(slots, prompt), { slot: 1, prefix: 48 });
  const noCheckpoint = { id: 0, cachedPrefix: range(100, 200), resume: { from: 150, checkpoints: [] }, lastUsed: 1 };
  t.same(chooseSlot([noCheckpoint], prompt), { slot: 0, prefix: 0 }, 'nothing it can resume: no reuse counted');
});
