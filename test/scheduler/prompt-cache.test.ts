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
