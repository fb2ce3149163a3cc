import type { Test } from 'tap';
import t from 'tap';
import { ArgumentError, ContextExceededError, RejectedError } from '../../src/errors.ts';
import { Scheduler } from '../../src/scheduler/scheduler.ts';
import type {
  GenerationHandlers,
  GenerationRequest,
  RequestEndReason,
  RequestHandle,
  RequestSummary,
  SchedulerObserver,
  StepStats,
} from '../../src/scheduler/types.ts';
import { syntheticPrompt } from '../helpers/decode.ts';
import {
  type DecoderCall,
  FakeDecoder,
  type FakeDecoderOptions,
  fakeText,
  fakeTokens,
} from '../helpers/fake-decoder.ts';

/** What one request saw through its handlers. */
interface Run {
  client: string;
  prompt: number[];
  handle: RequestHandle;
  starts: Array<{ slot: number; reusedTokens: number }>;
  tokens: number[];
  text: string;
  ends: Array<{ summary: RequestSummary; text: string }>;
  summary: () => RequestSummary;
}

interface Submit {
  client?: string;
  priority?: number;
  prompt?: number[];
  maxTokens?: number;
  timeoutMs?: number;
  signal?: AbortSignal;
  handlers?: Partial<GenerationHandlers>;
  log?: string[];
}

let promptSeed = 1000;

function submit(s: Scheduler, o: Submit = {}): Run {
  const client = o.client ?? 'A';
  const prompt = o.prompt ?? syntheticPrompt(8, promptSeed++);
  const request: GenerationRequest = { client, tokens: prompt, options: { maxTokens: o.maxTokens ?? 4 } };
  if (o.timeoutMs !== undefined) request.timeoutMs = o.timeoutMs;
  if (o.priority !== undefined) request.priority = o.priority;
  if (o.signal !== undefined) request.signal = o.signal;
  const run: Run = {
    client,
    prompt,
    handle: undefined as unknown as RequestHandle,
    starts: [],
    tokens: [],
    text: '',
    ends: [],
    summary: () => {
      const e = run.ends[0];
      if (e === undefined) throw new Error('the request has not ended');
      return e.summary;
    },
  };
  run.handle = s.submit(request, {
    onStart(info) {
      run.starts.push(info);
      o.log?.push(o.priority === undefined ? `start ${client}` : `start ${client}@${o.priority}`);
      o.handlers?.onStart?.(info);
    },
    onToken(token, text) {
      run.tokens.push(token);
      run.text += text;
      o.handlers?.onToken?.(token, text);
    },
    onEnd(summary, text) {
      run.ends.push({ summary, text });
      run.text += text;
      o.log?.push(`end ${client}`);
      o.handlers?.onEnd?.(summary, text);
    },
  });
  return run;
}

function setup(
  fakeOptions: FakeDecoderOptions = {},
  options: ConstructorParameters<typeof Scheduler>[1] = {},
  observer: SchedulerObserver = {},
) {
  const fake = new FakeDecoder(fakeOptions);
  const scheduler = new Scheduler(fake, options, observer);
  return { fake, scheduler };
}

/** Resolves when the fake has recorded `n` calls matching `match` (counting those already made). */
function callsSeen(fake: FakeDecoder, match: (c: DecoderCall) => boolean, n = 1): Promise<void> {
  const seen = () => fake.calls.filter(match).length >= n;
  if (seen()) return Promise.resolve();
  return new Promise((resolve) => {
    const previous = fake.onCall;
    fake.onCall = (c) => {
      previous?.(c);
      if (seen()) {
        fake.onCall = previous;
        resolve();
      }
    };
  });
}

const ended = (runs: Run[]) => Promise.all(runs.map((r) => r.handle.done));

/** Every slot idle and nothing queued, in the scheduler and in the decoder. */
function assertQuiet(t: Test, scheduler: Scheduler, fake: FakeDecoder): void {
  t.equal(scheduler.busySlots, 0, 'no busy slot');
  t.equal(scheduler.queueLength, 0, 'nothing queued');
  t.equal(scheduler.queuedTokens, 0, 'no queued tokens');
  t.same(
    scheduler.snapshot().map((s) => s.state),
    Array.from({ length: fake.slots }, () => 'idle'),
    'every slot idle (scheduler)',
  );
  t.same(
    Array.from({ length: fake.slots }, (_, i) => fake.slotState(i)),
    Array.from({ length: fake.slots }, () => 'idle'),
    'every slot idle (decoder)',
  );
  t.same(fake.violations, [], 'no start() during a step, no overlapping steps');
}

t.test('admission: requests take idle slots, the rest wait, each gets its tokens and one onEnd', async (t) => {
  const { fake, scheduler } = setup({ slots: 2 });
  const runs = [
    submit(scheduler, { maxTokens: 5 }),
    submit(scheduler, { maxTokens: 3 }),
    submit(scheduler, { maxTokens: 4 }),
  ];
  t.equal(scheduler.queueLength, 3, 'nothing starts inside submit()');
  t.same(
    runs.map((r) => r.starts.length),
    [0, 0, 0],
  );
  await ended(runs);
  for (const [i, r] of runs.entries()) {
    const n = [5, 3, 4][i] ?? 0;
    t.same(r.tokens, fakeTokens(r.prompt, n), `request ${i}: the decoder's tokens, in order`);
    t.equal(r.text, fakeTokens(r.prompt, n).map(fakeText).join(''));
    t.equal(r.ends.length, 1, 'exactly one onEnd');
    t.equal(r.starts.length, 1);
    const s = r.summary();
    t.equal(s.reason, 'length');
    t.equal(s.generatedTokens, n);
    t.equal(s.promptTokens, 8);
    t.equal(s.id, r.handle.id);
    t.same(await r.handle.done, s, 'done resolves with the summary');
  }
  t.same(
    runs.map((r) => r.summary().slot),
    [0, 1, 1],
    'the third takes the slot the shorter request freed',
  );
  assertQuiet(t, scheduler, fake);

  // A submit wakes the loop; with nothing left to do it stops (no step, no timer, no polling). Its end is what
  // close() waits for (no request live, no step in flight, the loop not running), and a loop that went on would
  // call step() first: whichever comes first says which.
  const steps = fake.stepCount;
  const later = submit(scheduler, { maxTokens: 2 });
  await later.handle.done;
  t.equal(later.summary().reason, 'length');
  t.ok(fake.stepCount > steps, 'a submit woke the loop');
  const idleAt = fake.stepCount;
  const next = await Promise.race([
    callsSeen(fake, (c) => c.op === 'step', fake.calls.filter((c) => c.op === 'step').length + 1).then(() => 'a step'),
    scheduler.close().then(() => 'the loop stopped'),
  ]);
  t.equal(next, 'the loop stopped', 'no step while idle: the loop stopped');
  t.equal(fake.stepCount, idleAt, 'no step since the last request ended');
});

t.test('continuous batching: a request submitted mid-generation joins at once', async (t) => {
  const { fake, scheduler } = setup({ slots: 2 });
  let b: Run | undefined;
  const log: string[] = [];
  const a = submit(scheduler, {
    client: 'A',
    maxTokens: 30,
    log,
    handlers: {
      onToken: () => {
        if (a.tokens.length === 5) b = submit(scheduler, { client: 'B', maxTokens: 5, log });
      },
    },
  });
  await a.handle.done;
  if (b === undefined) throw new Error('B was not submitted');
  await b.handle.done;
  t.same(log, ['start A', 'start B', 'end B', 'end A'], 'B started and finished while A was generating');
  t.same(b.tokens, fakeTokens(b.prompt, 5));
  t.same(a.tokens, fakeTokens(a.prompt, 30), "A's stream is not disturbed");
  const both = fake.steps.filter((s) => s.generating.length === 2).length;
  t.equal(both, 4, 'A and B decoded in the same steps');
  t.equal(fake.steps.length, 30, "A took one step per token, B's prefill included");
  assertQuiet(t, scheduler, fake);
});

t.test('chunked prefill: every step respects the token budget and running streams keep flowing', async (t) => {
  const { fake, scheduler } = setup({ slots: 2, batchSize: 64 }, { stepTokenBudget: 8 });
  const long = syntheticPrompt(100, 7);
  let b: Run | undefined;
  const a = submit(scheduler, {
    maxTokens: 40,
    handlers: {
      onToken: () => {
        if (a.tokens.length === 2) b = submit(scheduler, { client: 'B', prompt: long, maxTokens: 3 });
      },
    },
  });
  await a.handle.done;
  if (b === undefined) throw new Error('B was not submitted');
  await b.handle.done;
  const prefill = fake.steps.filter((s) => s.prompt.get(1) !== undefined);
  t.ok(
    fake.steps.every((s) => s.batchTokens <= 8 && s.budget === 8),
    'no step carries more than the budget',
  );
  t.equal(
    prefill.reduce((n, s) => n + (s.prompt.get(1) ?? 0), 0),
    100,
    "B's prompt went in chunks",
  );
  t.equal(prefill.length, Math.ceil(100 / 7), 'chunks of 7: the budget less the generating slot');
  t.ok(
    prefill.every((s) => s.generating.includes(0)),
    'A got its token in every step of the prefill',
  );
  t.same(a.tokens, fakeTokens(a.prompt, 40));
  t.same(b.tokens, fakeTokens(long, 3));
  assertQuiet(t, scheduler, fake);
});

t.test('a budget smaller than the generating slots still moves a waiting prompt', async (t) => {
  const { fake, scheduler } = setup({ slots: 3, batchSize: 64 }, { stepTokenBudget: 1 });
  const log: string[] = [];
  let c: Run | undefined;
  const a = submit(scheduler, { client: 'A', maxTokens: 30, log });
  const b = submit(scheduler, {
    client: 'B',
    maxTokens: 30,
    log,
    handlers: {
      onToken: () => {
        if (b.tokens.length === 1)
          c = submit(scheduler, { client: 'C', prompt: syntheticPrompt(10, 99), maxTokens: 2, log });
      },
    },
  });
  await ended([a, b]);
  if (c === undefined) throw new Error('C was not submitted');
  await c.handle.done;
  t.same(log.slice(-3), ['end C', 'end A', 'end B'], 'C was not stuck behind A and B');
  const prefill = fake.steps.filter((s) => s.prompt.get(2) !== undefined);
  t.equal(prefill.length, 10, 'one prompt token per step');
  t.ok(
    prefill.every((s) => s.batchTokens === 3 && s.generating.length === 2),
    'each step: the two generating slots plus one prompt token',
  );
  assertQuiet(t, scheduler, fake);
});

t.test('fairness: a client behind 50 queued requests of another starts at the next free slot', async (t) => {
  const { fake, scheduler } = setup({ slots: 2 }, { maxQueuedRequests: 100 });
  const log: string[] = [];
  const runs: Run[] = [];
  let startsBeforeB = -1;
  let queuedWhenB = 0;
  for (let i = 0; i < 50; i++) {
    runs.push(
      submit(scheduler, {
        client: 'A',
        maxTokens: 3,
        log,
        handlers: {
          onToken: () => {
            // Both slots busy with A, 40-odd A requests waiting: B arrives.
            if (i === 5 && startsBeforeB < 0) {
              startsBeforeB = log.filter((l) => l.startsWith('start')).length;
              queuedWhenB = scheduler.queueLength;
              runs.push(submit(scheduler, { client: 'B', maxTokens: 3, log }));
            }
          },
        },
      }),
    );
  }
  await ended(runs);
  const starts = log.filter((l) => l.startsWith('start'));
  t.ok(queuedWhenB >= 40, `${queuedWhenB} requests of A were waiting`);
  t.equal(starts[startsBeforeB], 'start B', 'the first start after B arrived is B');
  t.equal(runs.filter((r) => r.summary().reason === 'length').length, 51);
  assertQuiet(t, scheduler, fake);
});

t.test('fairness: clients alternate; two newcomers each go before the heavy client again', async (t) => {
  const { fake, scheduler } = setup({ slots: 1 });
  const log: string[] = [];
  const runs: Run[] = [];
  for (let i = 0; i < 5; i++) runs.push(submit(scheduler, { client: 'A', maxTokens: 1, log }));
  for (let i = 0; i < 3; i++) runs.push(submit(scheduler, { client: 'B', maxTokens: 1, log }));
  await ended(runs);
  t.same(
    log.filter((l) => l.startsWith('start')),
    ['start A', 'start B', 'start A', 'start B', 'start A', 'start B', 'start A', 'start A'],
  );

  log.length = 0;
  let mark = -1;
  const heavy: Run[] = [];
  for (let i = 0; i < 20; i++) {
    heavy.push(
      submit(scheduler, {
        client: 'A',
        maxTokens: 2,
        log,
        handlers: {
          onToken: () => {
            if (i === 3 && mark < 0) {
              mark = log.filter((l) => l.startsWith('start')).length;
              heavy.push(
                submit(scheduler, { client: 'B', maxTokens: 1, log }),
                submit(scheduler, { client: 'C', maxTokens: 1, log }),
              );
            }
          },
        },
      }),
    );
  }
  await ended(heavy);
  t.same(log.filter((l) => l.startsWith('start')).slice(mark, mark + 3), ['start B', 'start C', 'start A']);
  assertQuiet(t, scheduler, fake);
});

t.test('priority: higher is admitted first, fairness holds within a priority, the rest keep FIFO', async (t) => {
  const { fake, scheduler } = setup({ slots: 1 });
  const log: string[] = [];
  const runs: Run[] = [];
  // Admission runs after submit() returns, so all of these wait; one slot admits them one at a time.
  runs.push(submit(scheduler, { client: 'A', maxTokens: 1, log }));
  runs.push(submit(scheduler, { client: 'A', maxTokens: 1, log }));
  runs.push(submit(scheduler, { client: 'B', maxTokens: 1, log, priority: -5 }));
  runs.push(submit(scheduler, { client: 'B', maxTokens: 1, log }));
  for (const client of ['X', 'X', 'Y']) runs.push(submit(scheduler, { client, maxTokens: 1, log, priority: 10 }));
  runs.push(submit(scheduler, { client: 'Z', maxTokens: 1, log, priority: 3 }));
  await ended(runs);
  t.same(
    log.filter((l) => l.startsWith('start')),
    ['start X@10', 'start Y@10', 'start X@10', 'start Z@3', 'start A', 'start B', 'start A', 'start B@-5'],
  );
  t.throws(
    () => scheduler.submit({ client: 'A', priority: 1.5, tokens: [1, 2], options: { maxTokens: 1 } }, { onEnd() {} }),
    ArgumentError,
    'a priority must be an integer',
  );
  assertQuiet(t, scheduler, fake);
});

t.test('priority: a high-priority newcomer takes the next free slot ahead of a long queue', async (t) => {
  const { fake, scheduler } = setup({ slots: 2 }, { maxQueuedRequests: 100 });
  const log: string[] = [];
  const runs: Run[] = [];
  let startsBefore = -1;
  for (let i = 0; i < 30; i++) {
    runs.push(
      submit(scheduler, {
        client: `c${i % 3}`,
        maxTokens: 2,
        log,
        handlers: {
          onToken: () => {
            if (i === 4 && startsBefore < 0) {
              startsBefore = log.filter((l) => l.startsWith('start')).length;
              runs.push(submit(scheduler, { client: 'c0', maxTokens: 2, log, priority: 1 }));
            }
          },
        },
      }),
    );
  }
  await ended(runs);
  const starts = log.filter((l) => l.startsWith('start'));
  t.equal(starts[startsBefore], 'start c0@1', 'the first start after it arrived is the priority request');
  t.equal(runs.filter((r) => r.summary().reason === 'length').length, 31);
  assertQuiet(t, scheduler, fake);
});

t.test('queue full: refused by request count and by queued tokens, with Retry-After', async (t) => {
  const rejected: string[] = [];
  const { fake, scheduler } = setup(
    { slots: 1, ctxPerSlot: 256 },
    { maxQueuedRequests: 2, maxQueuedTokens: 100, retryAfterSeconds: 7 },
    { onRejected: (cause) => rejected.push(cause) },
  );
  const runs = [submit(scheduler), submit(scheduler), submit(scheduler)];
  t.equal(scheduler.queueLength, 3, 'one for the idle slot, two waiting');
  const full = t.throws(() => submit(scheduler)) as unknown;
  t.ok(full instanceof RejectedError);
  t.match(full, { code: 'QUEUE_FULL', retryAfterSeconds: 7, message: /2 requests waiting/ });
  await ended(runs);

  fake.pause();
  const running = submit(scheduler, { maxTokens: 2 });
  await fake.nextStepStarted();
  const waiting = submit(scheduler, { prompt: syntheticPrompt(60, 3) });
  const tooMany = t.throws(() => submit(scheduler, { prompt: syntheticPrompt(50, 4) })) as unknown;
  t.match(tooMany, { code: 'QUEUE_FULL', retryAfterSeconds: 7, message: /60 prompt tokens waiting/ });
  t.ok(tooMany instanceof RejectedError);
  const fits = submit(scheduler, { prompt: syntheticPrompt(40, 5) });
  t.equal(scheduler.queuedTokens, 100);
  fake.resume();
  await ended([running, waiting, fits]);
  t.same(rejected, ['queue_full', 'queue_full']);
  assertQuiet(t, scheduler, fake);
});

t.test(
  'a prompt that cannot fit the slot context is refused with both numbers; bad requests are argument errors',
  async (t) => {
    const rejected: string[] = [];
    const { fake, scheduler } = setup(
      { slots: 1, ctxPerSlot: 64 },
      {},
      { onRejected: (cause) => rejected.push(cause) },
    );
    const err = t.throws(() => submit(scheduler, { prompt: syntheticPrompt(64, 1) })) as unknown;
    t.ok(err instanceof ContextExceededError);
    t.match(err, { code: 'CONTEXT_EXCEEDED', message: /64 tokens.*at most 64/ });
    t.match(
      t.throws(() => submit(scheduler, { prompt: syntheticPrompt(100, 1) })),
      { message: /100 tokens/ },
    );
    t.same(rejected, ['context_exceeded', 'context_exceeded']);
    const empty = t.throws(() => submit(scheduler, { prompt: [] })) as unknown;
    t.ok(empty instanceof ArgumentError);
    t.match(empty, { code: 'INVALID_ARGUMENT' });
    t.match(
      t.throws(() => submit(scheduler, { maxTokens: 0 })),
      { code: 'INVALID_ARGUMENT', message: /maxTokens/ },
    );
    t.match(
      t.throws(() => submit(scheduler, { timeoutMs: -1 })),
      { code: 'INVALID_ARGUMENT', message: /timeoutMs/ },
    );
    const fits = submit(scheduler, { prompt: syntheticPrompt(63, 1), maxTokens: 5 });
    await fits.handle.done;
    t.equal(fits.summary().reason, 'context_full', 'the largest prompt fits and fills the context');
    t.equal(fits.tokens.length, 2, "one from the prompt's logits, one decoded into the last free cell");
    t.throws(() => new Scheduler(fake, { stepTokenBudget: 0 }), { code: 'INVALID_ARGUMENT' });
    t.throws(() => new Scheduler(fake, { maxQueuedRequests: -1 }), { code: 'INVALID_ARGUMENT' });
    assertQuiet(t, scheduler, fake);
  },
);

t.test('a request the decoder refuses to start ends with an error; the slot serves the next', async (t) => {
  const { fake, scheduler } = setup({ slots: 1, vocab: 32000 });
  const bad = submit(scheduler, { prompt: [1, 40000] });
  const good = submit(scheduler, { maxTokens: 2 });
  await ended([bad, good]);
  t.match(bad.summary(), { reason: 'error', error: /40000/, slot: null, startedAt: null });
  t.same(bad.starts, [], 'never started');
  t.equal(good.summary().reason, 'length');
  assertQuiet(t, scheduler, fake);
});

t.test('cancel while queued: removed, onEnd(cancelled) at once, idempotent', async (t) => {
  const { fake, scheduler } = setup({ slots: 1 });
  fake.pause();
  const running = submit(scheduler, { maxTokens: 3 });
  const queued = submit(scheduler, { prompt: syntheticPrompt(30, 8) });
  await fake.nextStepStarted();
  t.equal(scheduler.queueLength, 1);
  t.equal(scheduler.queuedTokens, 30);
  queued.handle.cancel();
  t.equal(queued.ends.length, 1, 'ended inside cancel()');
  t.match(queued.summary(), { reason: 'cancelled', slot: null, startedAt: null, generatedTokens: 0 });
  t.equal(scheduler.queueLength, 0);
  t.equal(scheduler.queuedTokens, 0);
  queued.handle.cancel();
  t.equal(queued.ends.length, 1, 'a second cancel is a no-op');
  fake.resume();
  await running.handle.done;
  t.equal(running.summary().reason, 'length');
  t.same(queued.starts, []);
  assertQuiet(t, scheduler, fake);
});

for (const mode of ['reported', 'at-once', 'late'] as const) {
  t.test(
    `cancel while a step is in flight (${mode}): no more tokens, the slot serves the next request after that step`,
    async (t) => {
      const { fake, scheduler } = setup({ slots: 1, cancelDuringStep: mode });
      const victim = submit(scheduler, { maxTokens: 100 });
      let stepsBegunAtCancel = -1;
      let tokensAtCancel = -1;
      const next = submit(scheduler, {
        maxTokens: 2,
        handlers: { onStart: () => t.equal(fake.stepCount, stepsBegunAtCancel, 'started before another step began') },
      });
      fake.onStepStart = (index) => {
        if (index !== 3) return;
        stepsBegunAtCancel = fake.stepCount;
        tokensAtCancel = victim.tokens.length;
        victim.handle.cancel();
        // At once: the slot is free now; otherwise the step in flight ends it.
        t.equal(
          victim.ends.length,
          mode === 'at-once' ? 1 : 0,
          'ends now only when the decoder freed the slot at once',
        );
        victim.handle.cancel();
      };
      await ended([victim, next]);
      t.equal(victim.summary().reason, 'cancelled');
      t.equal(victim.tokens.length, tokensAtCancel, 'no token after the cancel');
      t.same(victim.tokens, fakeTokens(victim.prompt, tokensAtCancel));
      t.equal(victim.summary().generatedTokens, tokensAtCancel);
      t.equal(victim.ends.length, 1);
      t.same(next.tokens, fakeTokens(next.prompt, 2));
      const cancels = fake.calls.filter((c) => c.op === 'cancel');
      if (mode === 'late') {
        t.same(
          cancels.map((c) => [c.freed, c.inFlight]),
          [
            [false, true],
            [true, false],
          ],
          'the step missed it, so the scheduler cancels again between steps',
        );
      } else t.equal(cancels.length, 1, 'one decoder cancel, however often the handle is cancelled');
      assertQuiet(t, scheduler, fake);
    },
  );
}

t.test('cancel between steps (from a handler): the slot is free at once', async (t) => {
  const { fake, scheduler } = setup({ slots: 1 });
  const victim = submit(scheduler, {
    maxTokens: 100,
    handlers: {
      onToken: () => {
        if (victim.tokens.length === 3) {
          victim.handle.cancel();
          t.equal(victim.ends.length, 1, 'ended inside cancel()');
          t.equal(scheduler.busySlots, 0, 'the slot is free');
        }
      },
    },
  });
  const next = submit(scheduler, { maxTokens: 2 });
  await ended([victim, next]);
  t.equal(victim.summary().reason, 'cancelled');
  t.equal(victim.tokens.length, 3);
  t.equal(next.summary().reason, 'length');
  t.same(
    fake.calls.filter((c) => c.op === 'cancel').map((c) => c.inFlight),
    [false],
  );
  assertQuiet(t, scheduler, fake);
});

t.test('an aborted signal cancels: already aborted, while queued, while running', async (t) => {
  const { fake, scheduler } = setup({ slots: 1 });
  const early = new AbortController();
  early.abort();
  const gone = submit(scheduler, { signal: early.signal });
  t.equal(gone.ends.length, 0, 'not inside submit()');
  const queuedCtl = new AbortController();
  const runningCtl = new AbortController();
  const running = submit(scheduler, {
    signal: runningCtl.signal,
    maxTokens: 100,
    handlers: {
      onToken: () => {
        if (running.tokens.length === 2) {
          queuedCtl.abort();
          runningCtl.abort();
        }
      },
    },
  });
  const queued = submit(scheduler, { signal: queuedCtl.signal });
  await ended([gone, running, queued]);
  t.match(gone.summary(), { reason: 'cancelled', startedAt: null });
  t.match(queued.summary(), { reason: 'cancelled', startedAt: null });
  t.match(running.summary(), { reason: 'cancelled', generatedTokens: 2 });
  t.same(running.starts.length, 1);

  // A signal that outlives its request: aborting it later does nothing.
  const kept = new AbortController();
  const done = submit(scheduler, { signal: kept.signal, maxTokens: 1 });
  await done.handle.done;
  kept.abort();
  t.equal(done.ends.length, 1);
  t.equal(done.summary().reason, 'length');
  assertQuiet(t, scheduler, fake);
});

t.test('timeoutMs: a running request and a queued one end with reason timeout', async (t) => {
  const { fake, scheduler } = setup({ slots: 1 });
  fake.pause();
  const running = submit(scheduler, { maxTokens: 100, timeoutMs: 30 });
  const queued = submit(scheduler, { timeoutMs: 10 });
  const spare = submit(scheduler, { maxTokens: 2 });
  await queued.handle.done;
  t.match(queued.summary(), { reason: 'timeout', startedAt: null });
  // The running request's step is held; its timeout asks the decoder to cancel, then the step ends it.
  await callsSeen(fake, (c) => c.op === 'cancel');
  t.equal(running.ends.length, 0, 'the step in flight ends it');
  fake.resume();
  await ended([running, spare]);
  t.match(running.summary(), { reason: 'timeout', generatedTokens: 0 });
  t.equal(spare.summary().reason, 'length');
  assertQuiet(t, scheduler, fake);
});

t.test('a failing step ends the running requests with an error; the loop serves later ones', async (t) => {
  const { fake, scheduler } = setup({ slots: 2 });
  const a = submit(scheduler, {
    maxTokens: 50,
    handlers: {
      onToken: () => {
        if (a.tokens.length === 3) fake.failNextStep();
      },
    },
  });
  const b = submit(scheduler, { maxTokens: 50 });
  const queued = [submit(scheduler, { maxTokens: 3 }), submit(scheduler, { maxTokens: 3 })];
  await ended([a, b]);
  t.match(a.summary(), { reason: 'error', error: /fake llama_decode failure/, generatedTokens: 3 });
  t.match(b.summary(), { reason: 'error', error: /fake llama_decode failure/ });
  await ended(queued);
  t.ok(
    queued.every((r) => r.summary().reason === 'length'),
    'the queued requests ran afterwards',
  );
  t.same(queued[0]?.tokens, fakeTokens(queued[0]?.prompt ?? [], 3));

  // The very first step fails too; later submits still work.
  fake.failNextStep();
  const first = submit(scheduler);
  await first.handle.done;
  t.equal(first.summary().reason, 'error');
  const after = submit(scheduler, { maxTokens: 2 });
  await after.handle.done;
  t.equal(after.summary().reason, 'length');
  assertQuiet(t, scheduler, fake);
});

t.test('throwing handlers and observers are isolated', async (t) => {
  const observed: string[] = [];
  const angry: SchedulerObserver = {
    onStep: () => {
      observed.push('step');
      throw new Error('observer onStep');
    },
    onRequestEnd: () => {
      throw new Error('observer onRequestEnd');
    },
    onRejected: () => {
      throw new Error('observer onRejected');
    },
  };
  const { fake, scheduler } = setup({ slots: 3, ctxPerSlot: 64 }, {}, angry);
  const badToken = submit(scheduler, {
    maxTokens: 20,
    handlers: {
      onToken: () => {
        if (badToken.tokens.length === 2) throw new Error('socket closed');
      },
    },
  });
  const badStart = submit(scheduler, {
    handlers: {
      onStart: () => {
        throw new Error('no');
      },
    },
  });
  const badEnd = submit(scheduler, {
    maxTokens: 3,
    handlers: {
      onEnd: () => {
        throw new Error('late');
      },
    },
  });
  const good = submit(scheduler, { maxTokens: 20 });
  t.throws(
    () => submit(scheduler, { prompt: syntheticPrompt(64, 1) }),
    { code: 'CONTEXT_EXCEEDED' },
    'a throwing onRejected does not change the refusal',
  );
  await ended([badToken, badStart, badEnd, good]);
  t.match(badToken.summary(), { reason: 'error', error: /onToken handler threw: socket closed/, generatedTokens: 2 });
  t.match(badStart.summary(), { reason: 'error', error: /onStart handler threw: no/ });
  t.equal(badStart.tokens.length, 0);
  t.equal(badEnd.summary().reason, 'length', 'onEnd threw after the fact');
  t.same(good.tokens, fakeTokens(good.prompt, 20), 'the others are untouched');
  t.ok(observed.length > 0);
  const later = submit(scheduler, { maxTokens: 2 });
  await later.handle.done;
  t.equal(later.summary().reason, 'length', 'the loop still runs');
  assertQuiet(t, scheduler, fake);
});

t.test('close(): queued and running requests finish within the grace period', async (t) => {
  const rejected: string[] = [];
  const { fake, scheduler } = setup({ slots: 2 }, {}, { onRejected: (cause) => rejected.push(cause) });
  const runs = [
    submit(scheduler, { maxTokens: 5 }),
    submit(scheduler, { maxTokens: 6 }),
    submit(scheduler, { maxTokens: 4 }),
    submit(scheduler, { maxTokens: 2 }),
  ];
  await fake.nextStepStarted();
  const closed = scheduler.close(60_000);
  t.equal(scheduler.closing, true);
  const refused = t.throws(() => submit(scheduler)) as unknown;
  t.ok(refused instanceof RejectedError);
  t.match(refused, { code: 'SHUTTING_DOWN' });
  t.same(rejected, ['shutting_down']);
  await closed;
  t.same(
    runs.map((r) => r.summary().reason),
    ['length', 'length', 'length', 'length'],
  );
  t.equal(fake.stepInFlight, false, 'no step in flight once closed');
  t.equal(scheduler.close(5), closed, 'closing again: the same promise');
  assertQuiet(t, scheduler, fake);
});

t.test('close(): what is left after the grace period ends with reason shutdown', async (t) => {
  const { fake, scheduler } = setup({ slots: 2 });
  fake.pause();
  const runs = [
    submit(scheduler, { maxTokens: 100 }),
    submit(scheduler, { maxTokens: 100 }),
    submit(scheduler, { maxTokens: 100 }),
  ];
  await fake.nextStepStarted();
  let resolved = false;
  const closed = scheduler.close(20).then(() => {
    resolved = true;
  });
  // The grace timer fires while the step is held: the queued request ends at once, the running ones are
  // cancelled in the decoder and end when the step returns.
  await callsSeen(fake, (c) => c.op === 'cancel', 2);
  t.equal(runs[2]?.summary().reason, 'shutdown');
  t.equal(resolved, false, 'not closed while a step is in flight');
  fake.resume();
  await closed;
  t.same(
    runs.map((r) => r.summary().reason),
    ['shutdown', 'shutdown', 'shutdown'],
  );
  t.equal(fake.stepInFlight, false);
  assertQuiet(t, scheduler, fake);

  const idle = setup();
  await idle.scheduler.close(0);
  t.pass('an idle scheduler closes at once');
  const now = setup({ slots: 1 });
  const r = submit(now.scheduler, { maxTokens: 100 });
  await now.fake.nextStepStarted();
  await now.scheduler.close(0);
  t.equal(r.summary().reason, 'shutdown', 'close(0) cancels at once');
});

t.test('100 requests cancelled at random moments leave every slot idle and the queue empty', async (t) => {
  let x = 12345;
  const rand = (n: number) => {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    return (x >>> 8) % n;
  };
  const { fake, scheduler } = setup(
    { slots: 4, ctxPerSlot: 128, batchSize: 32 },
    { maxQueuedRequests: 200, maxQueuedTokens: 100_000, stepTokenBudget: 16 },
  );
  const runs: Run[] = [];
  const controllers: AbortController[] = [];
  const live = () => runs.filter((r) => r.ends.length === 0);
  fake.onStepStart = () => {
    // During a step: switch how the decoder races with cancels, and cancel a few running requests.
    fake.cancelDuringStep = (['reported', 'at-once', 'late'] as const)[rand(3)] ?? 'reported';
    for (const r of live()) if (r.starts.length > 0 && rand(40) === 0) r.handle.cancel();
  };
  for (let i = 0; i < 100; i++) {
    const ctl = new AbortController();
    controllers.push(ctl);
    const cancelAt = rand(4) === 0 ? rand(10) : -1;
    const run: Run = submit(scheduler, {
      client: `c${rand(5)}`,
      prompt: syntheticPrompt(2 + rand(80), 5000 + i),
      maxTokens: 1 + rand(30),
      signal: ctl.signal,
      handlers: {
        onStart: () => {
          if (rand(20) === 0) run.handle.cancel();
        },
        onToken: () => {
          if (run.tokens.length === cancelAt) ctl.abort();
        },
      },
    });
    runs.push(run);
    if (rand(10) === 0) run.handle.cancel();
  }
  await ended(runs);
  const reasons = new Map<RequestEndReason, number>();
  for (const r of runs) {
    const s = r.summary();
    reasons.set(s.reason, (reasons.get(s.reason) ?? 0) + 1);
    if (r.ends.length !== 1) t.fail(`${s.id} ended ${r.ends.length} times`);
    const expected = fakeTokens(r.prompt, r.tokens.length);
    if (r.tokens.join() !== expected.join()) t.fail(`${s.id}: tokens are not the decoder's`);
    if (s.reason === 'length' && r.tokens.length === 0) t.fail(`${s.id} ended by length without tokens`);
  }
  t.comment(`end reasons: ${JSON.stringify(Object.fromEntries(reasons))}`);
  t.ok((reasons.get('cancelled') ?? 0) > 10, 'many were cancelled');
  t.ok((reasons.get('length') ?? 0) > 10, 'many finished');
  t.same(
    [...reasons.keys()].filter((r) => r !== 'cancelled' && r !== 'length' && r !== 'context_full'),
    [],
    'no other outcome',
  );
  assertQuiet(t, scheduler, fake);
});

t.test('summaries, snapshots and observer stats', async (t) => {
  let clock = 0;
  const stats: StepStats[] = [];
  const ends: RequestSummary[] = [];
  const { fake, scheduler } = setup(
    { slots: 2, batchSize: 64 },
    { stepTokenBudget: 8, now: () => (clock += 10) },
    { onStep: (s) => stats.push(s), onRequestEnd: (s) => ends.push(s) },
  );
  let b: Run | undefined;
  let snapshot: ReturnType<Scheduler['snapshot']> = [];
  const a = submit(scheduler, {
    maxTokens: 10,
    handlers: {
      onToken: () => {
        if (a.tokens.length === 1) b = submit(scheduler, { client: 'B', prompt: syntheticPrompt(30, 4), maxTokens: 2 });
        if (a.tokens.length === 3) snapshot = scheduler.snapshot();
      },
    },
  });
  await a.handle.done;
  if (b === undefined) throw new Error('B was not submitted');
  await b.handle.done;
  t.match(snapshot[0], {
    id: 0,
    state: 'generating',
    request: { id: a.handle.id, client: 'A', promptTokens: 8, generatedTokens: 3 },
  });
  t.match(snapshot[1], {
    id: 1,
    state: 'prefill',
    request: { id: b.handle.id, client: 'B', promptTokens: 30, generatedTokens: 0 },
  });
  t.equal(snapshot[0]?.cachedTokens, 8 + 2, 'prompt plus generated tokens less the last');
  const sa = a.summary();
  t.ok(
    sa.queuedAt < (sa.startedAt ?? 0) &&
      (sa.startedAt ?? 0) < (sa.firstTokenAt ?? 0) &&
      (sa.firstTokenAt ?? 0) < sa.endedAt,
    'timings in order',
  );
  t.same(
    ends.map((s) => s.id),
    [b.handle.id, a.handle.id],
    'observer sees every end',
  );
  t.equal(stats.length, fake.steps.length, 'one onStep per step');
  t.same(
    stats.map((s) => s.batchTokens),
    fake.steps.map((s) => s.batchTokens),
  );
  t.ok(
    stats.every((s) => s.durationMs > 0 && s.busySlots >= 1 && s.busySlots <= 2),
    'durations from the clock, busy slots counted',
  );
  t.same(
    scheduler.snapshot().map((s) => s.cachedTokens),
    [0, 1].map((slot) => fake.cachedPrefix(slot).length),
    'idle slots report what they cache',
  );
  assertQuiet(t, scheduler, fake);
});

t.test('prompt cache: a request goes to the slot holding its prefix; cachedTokens reports the reuse', async (t) => {
  const { fake, scheduler } = setup({ slots: 3, ctxPerSlot: 512 });
  const system = syntheticPrompt(40, 77);
  const first = submit(scheduler, { prompt: [...system, 5, 6, 7], maxTokens: 3 });
  const other = submit(scheduler, { prompt: syntheticPrompt(30, 78), maxTokens: 3 });
  await ended([first, other]);
  t.equal(first.summary().slot, 0);
  // Slot 2 was never used (least recently used), but slot 0 holds the shared system prompt.
  let during: ReturnType<Scheduler['snapshot']> = [];
  const second = submit(scheduler, {
    prompt: [...system, 9, 9],
    maxTokens: 2,
    handlers: { onToken: () => (during = scheduler.snapshot()) },
  });
  await second.handle.done;
  t.match(during[0]?.request, { promptTokens: 42, reusedTokens: 40 }, 'the snapshot shows the reuse while it runs');
  t.equal(second.summary().slot, 0);
  t.equal(second.summary().cachedTokens, 40);
  t.same(second.starts, [{ slot: 0, reusedTokens: 40 }]);
  // No useful prefix: least recently used (never used) slot 2.
  const third = submit(scheduler, { prompt: syntheticPrompt(20, 79), maxTokens: 1 });
  await third.handle.done;
  t.equal(third.summary().slot, 2);
  t.equal(third.summary().cachedTokens, 0);
  assertQuiet(t, scheduler, fake);
});

t.test('an end-of-generation stop ends with reason stop and no extra token', async (t) => {
  const { fake, scheduler } = setup({ slots: 1, stopWhen: (_prompt, index) => index === 3 });
  const r = submit(scheduler, { maxTokens: 10 });
  await r.handle.done;
  t.equal(r.summary().reason, 'stop');
  t.same(r.tokens, fakeTokens(r.prompt, 3));
  t.same(r.ends, [{ summary: r.summary(), text: '' }]);
  assertQuiet(t, scheduler, fake);
});

t.test('queueByClient: what each client has waiting, running requests excluded', async (t) => {
  const { fake, scheduler } = setup({ slots: 1, ctxPerSlot: 256 });
  fake.pause();
  const running = submit(scheduler, { client: 'A', prompt: syntheticPrompt(8, 1) });
  await fake.nextStepStarted();
  const waiting = [
    submit(scheduler, { client: 'A', prompt: syntheticPrompt(5, 2) }),
    submit(scheduler, { client: 'B', prompt: syntheticPrompt(3, 3) }),
    submit(scheduler, { client: 'A', prompt: syntheticPrompt(4, 4) }),
  ];
  // A's turn this round went to its running request, so B's turn comes first.
  t.same(scheduler.queueByClient(), [
    { client: 'B', requests: 1, tokens: 3 },
    { client: 'A', requests: 2, tokens: 9 },
  ]);
  fake.resume();
  await ended([running, ...waiting]);
  t.same(scheduler.queueByClient(), []);
  assertQuiet(t, scheduler, fake);
});
