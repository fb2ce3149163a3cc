// StepTurns: one step at a time across the models' schedulers, served in the order they asked.
import t from 'tap';
import { Scheduler } from '../../src/scheduler/scheduler.ts';
import { StepTurns } from '../../src/scheduler/step-turns.ts';
import type { RequestHandle, StepResult } from '../../src/scheduler/types.ts';
import { syntheticPrompt } from '../helpers/decode.ts';
import { FakeDecoder, fakeTokens } from '../helpers/fake-decoder.ts';

/** Whether a promise has settled, without awaiting it. */
function track<T>(p: Promise<T>): { settled: () => boolean; promise: Promise<T> } {
  let done = false;
  p.then(
    () => {
      done = true;
    },
    () => {
      done = true;
    },
  );
  return { settled: () => done, promise: p };
}

/** A turn of the event loop: every promise that can settle now has. */
const settle = () => new Promise<void>((resolve) => setImmediate(resolve));

t.test('a free turn is given at once; waiting callers are served in the order they asked', async (t) => {
  const turns = new StepTurns();
  const order: string[] = [];
  const a = await turns.acquire();
  order.push('A');
  const callers = ['B', 'C', 'D'].map((name) =>
    turns.acquire().then((release) => {
      order.push(name);
      return release;
    }),
  );
  await settle();
  t.same(order, ['A'], 'the others wait while A holds the turn');
  t.equal(turns.queued, 3);
  a();
  const b = await callers[0];
  await settle();
  t.same(order, ['A', 'B'], 'one release passes one turn');
  t.equal(turns.queued, 2);
  // A asks again behind C and D: it comes after them.
  const again = turns.acquire().then((release) => {
    order.push('A2');
    return release;
  });
  b?.();
  (await callers[1])?.();
  (await callers[2])?.();
  (await again)();
  t.same(order, ['A', 'B', 'C', 'D', 'A2']);
  t.equal(turns.queued, 0);
  t.equal(turns.steps, 5);
  t.equal(turns.waited, 4, 'every turn but the first waited');
  const free = track(turns.acquire());
  await settle();
  t.ok(free.settled(), 'the turn is free again once the last holder released it');
  (await free.promise)();
});

t.test('a release called twice passes one turn, never another holder’s', async (t) => {
  const turns = new StepTurns();
  const a = await turns.acquire();
  const b = track(turns.acquire());
  const c = track(turns.acquire());
  a();
  a();
  await settle();
  t.ok(b.settled(), 'B has the turn');
  t.notOk(c.settled(), "A's second release does not hand C a turn while B holds it");
  t.equal(turns.queued, 1);
  const releaseB = await b.promise;
  releaseB();
  await settle();
  t.ok(c.settled(), 'C has the turn after B released');
  releaseB();
  a();
  const d = track(turns.acquire());
  await settle();
  t.notOk(d.settled(), 'stale releases do not free the turn C holds');
  (await c.promise)();
  await settle();
  t.ok(d.settled());
  (await d.promise)();
  t.equal(turns.queued, 0);
});

/** A fake decoder that logs when each of its steps starts and ends. */
class LoggedDecoder extends FakeDecoder {
  readonly #name: string;
  readonly #log: string[];
  constructor(name: string, log: string[]) {
    super({ slots: 1, ctxPerSlot: 64, batchSize: 16 });
    this.#name = name;
    this.#log = log;
  }

  override async step(tokenBudget: number): Promise<StepResult> {
    this.#log.push(`${this.#name}+`);
    try {
      return await super.step(tokenBudget);
    } finally {
      this.#log.push(`${this.#name}-`);
    }
  }
}

/** Two schedulers, each running one request of `maxTokens` tokens; the log of their decoders' steps. */
async function twoModels(turns: StepTurns | undefined, maxTokens: number) {
  const log: string[] = [];
  const decoders = { A: new LoggedDecoder('A', log), B: new LoggedDecoder('B', log) };
  const runs = (['A', 'B'] as const).map((name, i) => {
    const scheduler = new Scheduler(decoders[name], turns ? { turns } : {});
    const prompt = syntheticPrompt(8, 500 + i);
    const tokens: number[] = [];
    const handle: RequestHandle = scheduler.submit(
      { client: name, tokens: prompt, options: { maxTokens } },
      { onToken: (token) => tokens.push(token), onEnd: () => {} },
    );
    return { name, prompt, tokens, handle, scheduler };
  });
  const summaries = await Promise.all(runs.map((r) => r.handle.done));
  return { log, decoders, runs, summaries };
}

/** The most steps in flight at once in a log of starts (+) and ends (-). */
function maxInFlight(log: readonly string[]): number {
  let now = 0;
  let max = 0;
  for (const e of log) {
    now += e.endsWith('+') ? 1 : -1;
    max = Math.max(max, now);
  }
  return max;
}

t.test('two schedulers sharing StepTurns: steps never overlap and the models alternate', async (t) => {
  const turns = new StepTurns();
  const { log, decoders, runs, summaries } = await twoModels(turns, 4);
  t.equal(maxInFlight(log), 1, 'never two steps at once');
  t.same(
    log.filter((e) => e.endsWith('+')).map((e) => e.slice(0, 1)),
    ['A', 'B', 'A', 'B', 'A', 'B', 'A', 'B'],
    'each model steps in turn',
  );
  for (const [i, r] of runs.entries()) {
    t.equal(summaries[i]?.reason, 'length', `${r.name} finished`);
    t.same(r.tokens, fakeTokens(r.prompt, 4), `${r.name} got its tokens`);
    t.equal(r.scheduler.busySlots, 0);
  }
  t.same(decoders.A.violations, []);
  t.same(decoders.B.violations, []);
  t.equal(turns.steps, 8);
  t.equal(turns.waited, 7, 'all but the first step waited for the other model');
  t.equal(turns.queued, 0);
  const free = track(turns.acquire());
  await settle();
  t.ok(free.settled(), 'the turn is free when both are done');
});

t.test('without StepTurns the same two schedulers do overlap (the check above can fail)', async (t) => {
  const { log, runs } = await twoModels(undefined, 4);
  t.equal(maxInFlight(log), 2, "the fake's steps overlap without turns");
  for (const r of runs) t.same(r.tokens, fakeTokens(r.prompt, 4), `${r.name} got its tokens`);
});

t.test('a model alone takes every turn; one that ends early leaves the rest to the other', async (t) => {
  const turns = new StepTurns();
  const log: string[] = [];
  const a = new Scheduler(new LoggedDecoder('A', log), { turns });
  const b = new Scheduler(new LoggedDecoder('B', log), { turns });
  const ra = a.submit({ client: 'A', tokens: syntheticPrompt(8, 1), options: { maxTokens: 2 } }, { onEnd: () => {} });
  const rb = b.submit({ client: 'B', tokens: syntheticPrompt(8, 2), options: { maxTokens: 5 } }, { onEnd: () => {} });
  await Promise.all([ra.done, rb.done]);
  t.equal(maxInFlight(log), 1);
  t.same(
    log.filter((e) => e.endsWith('+')).map((e) => e.slice(0, 1)),
    ['A', 'B', 'A', 'B', 'B', 'B', 'B'],
  );
});
