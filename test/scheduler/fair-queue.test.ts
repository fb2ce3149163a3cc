import t from 'tap';
import { FairQueue } from '../../src/scheduler/fair-queue.ts';

const big = { maxRequests: 1000, maxTokens: 1_000_000 };

function drain<T>(q: FairQueue<T>): T[] {
  const out: T[] = [];
  for (let item = q.shift(); item !== undefined; item = q.shift()) out.push(item);
  return out;
}

t.test('one FIFO per client, round-robin between clients', async (t) => {
  const q = new FairQueue<string>(big);
  for (const id of ['a1', 'a2', 'a3']) q.push(id, 'A', 1, id);
  for (const id of ['b1', 'b2']) q.push(id, 'B', 1, id);
  q.push('c1', 'C', 1, 'c1');
  t.equal(q.size, 6);
  t.equal(q.clients, 3);
  t.same(drain(q), ['a1', 'b1', 'c1', 'a2', 'b2', 'a3']);
  t.equal(q.size, 0);
  t.equal(q.tokens, 0);
  t.equal(q.shift(), undefined);
});

t.test('a newcomer goes before the client that just had its turn', async (t) => {
  const q = new FairQueue<string>(big);
  for (let i = 1; i <= 50; i++) q.push(`a${i}`, 'A', 10, `a${i}`);
  t.equal(q.shift(), 'a1');
  t.equal(q.shift(), 'a2');
  q.push('b1', 'B', 10, 'b1');
  t.equal(q.shift(), 'b1', 'B is served at the very next turn');
  t.equal(q.shift(), 'a3');
  q.push('b2', 'B', 10, 'b2');
  q.push('c1', 'C', 10, 'c1');
  // a3 opened a new round, in which B has had no turn yet: B and C join it, ahead of A, which just had its turn.
  t.same(drain(q).slice(0, 4), ['b2', 'c1', 'a4', 'a5']);
});

t.test('a client gets one turn per round, even if it empties its line and comes back', async (t) => {
  const q = new FairQueue<string>(big);
  q.push('a1', 'A', 1, 'a1');
  q.push('a2', 'A', 1, 'a2');
  q.push('b1', 'B', 1, 'b1');
  q.push('c1', 'C', 1, 'c1');
  t.equal(q.shift(), 'a1');
  t.equal(q.shift(), 'b1');
  // B's line is empty; it comes back in the same round: it waits for C and for A's next turn.
  q.push('b2', 'B', 1, 'b2');
  t.same(drain(q), ['c1', 'a2', 'b2']);
});

t.test('cancel-and-resubmit does not buy a client another turn', async (t) => {
  const q = new FairQueue<string>(big);
  q.push('a1', 'A', 1, 'a1');
  q.push('a2', 'A', 1, 'a2');
  q.push('b1', 'B', 1, 'b1');
  t.equal(q.shift(), 'a1');
  t.ok(q.remove('a2'));
  q.push('a3', 'A', 1, 'a3');
  t.same(drain(q), ['b1', 'a3']);
});

t.test('remove() takes a request out from anywhere; tokens follow', async (t) => {
  const q = new FairQueue<string>(big);
  q.push('a1', 'A', 5, 'a1');
  q.push('a2', 'A', 7, 'a2');
  q.push('a3', 'A', 11, 'a3');
  q.push('b1', 'B', 13, 'b1');
  t.equal(q.tokens, 36);
  t.ok(q.remove('a2'));
  t.notOk(q.remove('a2'), 'twice is a no-op');
  t.notOk(q.remove('nope'));
  t.ok(q.remove('b1'));
  t.equal(q.clients, 1, 'an emptied line leaves the rotation');
  t.equal(q.tokens, 16);
  t.notOk(q.has('a2'));
  t.ok(q.has('a3'));
  t.same([...q.values()], ['a1', 'a3']);
  t.same(drain(q), ['a1', 'a3']);
  t.throws(() => {
    q.push('x', 'A', 1, 'x');
    q.push('x', 'B', 1, 'x');
  }, /already queued/);
});

t.test('bounds: request count and queued tokens, less the requests idle slots will take', async (t) => {
  const q = new FairQueue<string>({ maxRequests: 2, maxTokens: 100 });
  t.equal(q.overflow(500), null, 'a request that would wait alone is never refused for its tokens');
  q.push('a', 'A', 60, 'a');
  t.equal(q.overflow(50), 'tokens');
  t.equal(q.overflow(40), null);
  q.push('b', 'B', 40, 'b');
  t.equal(q.overflow(1), 'requests');
  t.equal(q.overflow(1, 1), 'tokens', 'one leaves for an idle slot, but the tokens are full');
  t.equal(q.overflow(1, 3), null, 'it will get an idle slot itself');
  q.shift();
  t.equal(q.overflow(60), null);
  const none = new FairQueue<string>({ maxRequests: 0, maxTokens: 0 });
  t.equal(none.overflow(1), 'requests', 'no queue at all');
  t.equal(none.overflow(1, 1), null, 'unless a slot is idle');
});

t.test('many clients: every operation keeps the invariants', async (t) => {
  const q = new FairQueue<number>(big);
  let x = 7;
  const rand = (n: number) => {
    x = (x * 1103515245 + 12345) >>> 0;
    return x % n;
  };
  const waiting = new Map<number, string>();
  let next = 0;
  for (let op = 0; op < 5000; op++) {
    const r = rand(10);
    if (r < 5) {
      const client = `c${rand(7)}`;
      q.push(String(next), client, 3, next);
      waiting.set(next++, client);
    } else if (r < 8) {
      const item = q.shift();
      if (item !== undefined) {
        waiting.delete(item);
      }
    } else if (waiting.size > 0) {
      const ids = [...waiting.keys()];
      const id = ids[rand(ids.length)] ?? -1;
      if (!q.remove(String(id))) t.fail(`op ${op}: ${id} was not removed`);
      waiting.delete(id);
    }
    if (q.size !== waiting.size || q.tokens !== waiting.size * 3) t.fail(`op ${op}: size ${q.size}/${waiting.size}`);
  }
  // FIFO within each client.
  const order = drain(q);
  const byClient = new Map<string, number[]>();
  for (const id of order) byClient.set(waiting.get(id) ?? '', [...(byClient.get(waiting.get(id) ?? '') ?? []), id]);
  for (const [client, ids] of byClient)
    t.same(
      ids,
      [...ids].sort((a, b) => a - b),
      `${client} in FIFO order`,
    );
  t.equal(q.clients, 0);
});

t.test(
  'priority: the highest level is served first, round-robin within it; remove and values span levels',
  async (t) => {
    const q = new FairQueue<string>(big);
    q.push('a1', 'A', 1, 'a1');
    q.push('a2', 'A', 1, 'a2');
    q.push('b1', 'B', 2, 'b1', -3);
    q.push('x1', 'X', 4, 'x1', 7);
    q.push('x2', 'X', 4, 'x2', 7);
    q.push('y1', 'Y', 4, 'y1', 7);
    q.push('a3', 'A', 1, 'a3', 7);
    t.same(q.priorities, [7, 0, -3]);
    t.equal(q.clients, 5, 'A waits at two priorities: two lines');
    t.equal(q.tokens, 17);
    t.same([...q.values()], ['x1', 'x2', 'y1', 'a3', 'a1', 'a2', 'b1'], 'by priority, then client lines');
    t.same(
      q.waitingByClient(),
      [
        { client: 'X', requests: 2, tokens: 8 },
        { client: 'Y', requests: 1, tokens: 4 },
        { client: 'A', requests: 3, tokens: 3 },
        { client: 'B', requests: 1, tokens: 2 },
      ],
      'one entry per client, where its first turn comes',
    );
    t.ok(q.remove('y1'));
    t.equal(q.shift(), 'x1');
    q.push('z1', 'Z', 1, 'z1', 7);
    t.equal(q.shift(), 'a3', 'A at priority 7 is due its turn before X, which just had one');
    t.equal(q.shift(), 'z1', 'a newcomer joins the round before X');
    t.equal(q.shift(), 'x2');
    t.same(q.priorities, [0, -3], 'an emptied priority is not reported');
    t.same(drain(q), ['a1', 'a2', 'b1']);
    t.equal(q.tokens, 0);
    t.throws(() => q.push('bad', 'A', 1, 'bad', 0.5), RangeError);
  },
);

t.test('priority: many distinct priorities keep the order and the counts right', async (t) => {
  const q = new FairQueue<number>(big);
  // 40 priorities, each seen once: empty levels are pruned along the way, waiting ones never.
  for (let p = 0; p < 40; p++) {
    q.push(String(p), `c${p % 3}`, 1, p, p % 2 === 0 ? p : -p);
    if (p % 4 === 3) q.remove(String(p - 1));
  }
  const order = drain(q);
  const expected = [...Array(40).keys()]
    .filter((p) => !(p % 4 === 2))
    .sort((a, b) => (b % 2 === 0 ? b : -b) - (a % 2 === 0 ? a : -a));
  t.same(order, expected);
  t.equal(q.size, 0);
  t.equal(q.tokens, 0);
});

t.test('waitingByClient: requests and tokens per client, in the order their turns come', async (t) => {
  const q = new FairQueue<string>(big);
  t.same(q.waitingByClient(), []);
  q.push('a1', 'A', 10, 'a1');
  q.push('a2', 'A', 5, 'a2');
  q.push('b1', 'B', 7, 'b1');
  t.same(q.waitingByClient(), [
    { client: 'A', requests: 2, tokens: 15 },
    { client: 'B', requests: 1, tokens: 7 },
  ]);
  t.equal(q.shift(), 'a1');
  // A had its turn: B's comes first now.
  t.same(q.waitingByClient(), [
    { client: 'B', requests: 1, tokens: 7 },
    { client: 'A', requests: 1, tokens: 5 },
  ]);
  q.remove('b1');
  t.same(q.waitingByClient(), [{ client: 'A', requests: 1, tokens: 5 }]);
  q.waitingByClient().pop();
  t.equal(q.size, 1, 'the view is a copy: changing it leaves the queue alone');
});
