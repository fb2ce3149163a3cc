// The host-RAM prompt cache's bookkeeping: the best prefix wins, bytes stay within the bound (least recently
// used out first), a longer state supersedes its prefixes, 0 turns it off.
import t from 'tap';
import { PromptCache } from '../../src/scheduler/prompt-cache.ts';

const state = (bytes: number) => new Uint8Array(bytes);
const range = (from: number, n: number) => Array.from({ length: n }, (_, i) => from + i);

t.test('the entry with the longest common prefix serves a prompt', async (t) => {
  const c = new PromptCache(1000);
  c.put([1, 2, 3, 4], state(10));
  c.put([1, 2, 9, 9, 9], state(10));
  c.put([7, 8], state(10));
  t.same(c.best([1, 2, 3, 4, 5])?.entry.tokens, [1, 2, 3, 4]);
  t.equal(c.best([1, 2, 3, 4, 5])?.prefix, 4);
  t.same(c.best([1, 2, 9, 0])?.entry.tokens, [1, 2, 9, 9, 9]);
  t.equal(c.best([1, 2, 9, 0])?.prefix, 3);
  t.equal(c.best([5, 5]), null, 'nothing in common');
});

t.test('within the byte bound, the least recently used goes first; a hit refreshes an entry', async (t) => {
  const c = new PromptCache(300);
  c.put(range(0, 10), state(100));
  c.put(range(100, 10), state(100));
  c.put(range(200, 10), state(100));
  const first = c.best(range(0, 10));
  if (first === null) throw new Error('expected an entry');
  c.used(first.entry, 10);
  c.put(range(300, 10), state(100));
  t.ok(c.best(range(0, 10)), 'the refreshed entry stays');
  t.equal(c.best(range(100, 10)), null, 'the oldest one went');
  t.match(c.stats(), { entries: 3, bytes: 300, hits: 1, restoredTokens: 10, evictions: 1 });
  t.notOk(c.put(range(400, 10), state(301)), 'a state larger than the cache is not kept');
  t.equal(c.stats().entries, 3);
});

t.test('a state that extends an entry replaces it; a shorter one keeps both', async (t) => {
  const c = new PromptCache(1000);
  c.put([1, 2, 3], state(30));
  c.put([1, 2, 3, 4, 5], state(50));
  t.equal(c.stats().entries, 1, 'the longer conversation serves what the shorter did');
  t.equal(c.stats().bytes, 50);
  c.put([1, 2], state(20));
  t.equal(c.stats().entries, 2);
});

t.test('capacity 0 keeps nothing', async (t) => {
  const c = new PromptCache(0);
  t.notOk(c.enabled);
  t.notOk(c.put([1, 2], state(1)));
  t.equal(c.best([1, 2]), null);
  t.throws(() => new PromptCache(-1), RangeError);
});

t.test('sliding-window entries: a prefix counts only as far as the entry can resume there', async (t) => {
  const c = new PromptCache(1000);
  // Holds 0..99; its window covers resuming at 80 or later, and it has checkpoints at 30 and 60.
  c.put(range(0, 100), state(10), { from: 80, checkpoints: [30, 60] });
  t.equal(c.best([...range(0, 90), 7, 7])?.prefix, 90, 'inside the window: the whole common prefix');
  t.equal(c.best([...range(0, 70), 7])?.prefix, 60, 'behind it: the checkpoint before the divergence');
  t.equal(c.best([...range(0, 20), 7])?.prefix ?? 0, 0, 'before the first checkpoint: nothing to resume');

  // An entry holding a shorter prefix resumes where the longer one cannot: both stay, and each serves its prompts.
  c.put(range(0, 50), state(10), { from: 0, checkpoints: [] });
  c.put(range(0, 200), state(10), { from: 180, checkpoints: [30, 60] });
  t.equal(c.stats().entries, 3, 'the longer state does not supersede entries it cannot stand in for');
  t.same(c.best([...range(0, 45), 7])?.entry.tokens, range(0, 50));
  t.equal(c.best([...range(0, 45), 7])?.prefix, 45);
  t.equal(c.best([...range(0, 190), 7])?.prefix, 190);
  // One that resumes everything the shorter did replaces it.
  c.put(range(0, 300), state(10), { from: 0, checkpoints: [] });
  t.equal(c.stats().entries, 1);
});

t.test('holds: an entry already serves every prompt a state would', async (t) => {
  const c = new PromptCache(1000);
  c.put(range(0, 10), state(10));
  t.ok(c.holds(range(0, 10)), 'the same tokens');
  t.ok(c.holds(range(0, 5)), 'a prefix of an entry');
  t.notOk(c.holds(range(0, 11)), 'more tokens than any entry');
  t.notOk(c.holds(range(1, 5)), 'other tokens');
  t.notOk(c.holds([]), 'nothing');
  // An entry that resumes only from position 8 (and at a checkpoint at 4) does not serve what a state resuming
  // anywhere would: a prompt sharing 6 tokens.
  const d = new PromptCache(1000);
  d.put(range(0, 10), state(10), { from: 8, checkpoints: [4] });
  t.notOk(d.holds(range(0, 10)), 'the entry resumes in fewer places');
  t.ok(d.holds(range(0, 10), { from: 8, checkpoints: [4] }), 'the same places');
  t.notOk(new PromptCache(0).holds(range(0, 3)), 'off: holds nothing');
});
