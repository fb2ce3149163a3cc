// The scheduler over a unified KV pool and a host-RAM prompt cache, against the fake decoder (which keeps one
// pool of cells and reports kvFull like llama_decode): admission counts free cells and what idle caches give
// back, a full pool preempts the most recently started request, which resumes and ends as if never stopped;
// slot states saved to RAM come back when their prompt does.
import t from 'tap';
import { Scheduler } from '../../src/scheduler/scheduler.ts';
import type {
  GenerationRequest,
  PromptCacheEvent,
  RequestSummary,
  SchedulerOptions,
} from '../../src/scheduler/types.ts';
import { syntheticPrompt } from '../helpers/decode.ts';
import { FakeDecoder, type FakeDecoderOptions, fakeTokens } from '../helpers/fake-decoder.ts';

interface Run {
  tokens: number[];
  starts: number;
  summary: Promise<RequestSummary>;
}

function run(s: Scheduler, prompt: number[], maxTokens: number, client = 'A'): Run {
  const r: Run = { tokens: [], starts: 0, summary: Promise.resolve(null as unknown as RequestSummary) };
  const request: GenerationRequest = { client, tokens: prompt, options: { maxTokens } };
  const handle = s.submit(request, {
    onStart: () => {
      r.starts++;
    },
    onToken: (token) => {
      r.tokens.push(token);
    },
    onEnd: () => {},
  });
  r.summary = handle.done;
  return r;
}

function setup(fake: FakeDecoderOptions, options: SchedulerOptions = {}) {
  const decoder = new FakeDecoder(fake);
  const preempted: string[] = [];
  const cache: PromptCacheEvent[] = [];
  const scheduler = new Scheduler(decoder, options, {
    onPreempted: (p) => preempted.push(p.id),
    onPromptCache: (e) => cache.push(e),
  });
  return { decoder, scheduler, preempted, cache };
}

t.test('a full pool preempts the most recently started request; it resumes and ends as if never stopped', async (t) => {
  // 2 slots of up to 64 tokens share 64 cells: two 8-token prompts generating 30 each (76) do not fit together.
  const { decoder, scheduler, preempted } = setup({ slots: 2, ctxPerSlot: 64, kvCells: 64 }, { outputReserve: 1 });
  const a = syntheticPrompt(8, 1);
  const b = syntheticPrompt(8, 2);
  const first = run(scheduler, a, 30);
  const second = run(scheduler, b, 30, 'B');
  const [sa, sb] = await Promise.all([first.summary, second.summary]);
  t.same([sa.reason, sb.reason], ['length', 'length'], 'both finish: nobody fails because of the other');
  t.same(first.tokens, fakeTokens(a, 30));
  t.same(second.tokens, fakeTokens(b, 30), 'the preempted one generates exactly what it would have');
  t.equal(sa.preemptions + sb.preemptions, 1, 'one preemption');
  t.equal(sb.preemptions, 1, 'the most recently started one gave its slot up');
  t.same(preempted.length, 1);
  t.equal(second.starts, 1, 'its client saw one start');
  t.equal(sb.generatedTokens, 30);
  t.ok(
    decoder.calls.some((c) => c.op === 'start' && c.promptTokens > 8),
    'it resumed from its prompt and its own output',
  );
  t.same(decoder.violations, []);
  t.ok(decoder.cellsUsed <= 64);
});

t.test('admission waits for cells: a prompt and its reservation must fit what the others leave', async (t) => {
  // 64 cells; the first holds 10 + 40 reserved, so the second's 16 + 4 (of the 14 left) waits for it.
  const { decoder, scheduler } = setup({ slots: 2, ctxPerSlot: 64, kvCells: 64 }, { outputReserve: 40 });
  const log: string[] = [];
  const submit = (name: string, prompt: number[], maxTokens: number) =>
    scheduler.submit(
      { client: name, tokens: prompt, options: { maxTokens } },
      { onStart: () => log.push(`start ${name}`), onEnd: () => log.push(`end ${name}`) },
    ).done;
  const [first, second] = await Promise.all([
    submit('first', syntheticPrompt(10, 3), 40),
    submit('second', syntheticPrompt(16, 4), 4),
  ]);
  t.same(log, ['start first', 'end first', 'start second', 'end second'], 'the second waited for cells');
  t.same([first.reason, second.reason], ['length', 'length']);
  t.equal(second.preemptions, 0, 'it waited rather than pushing the first out');
  // With room for both they run together.
  const roomy = setup({ slots: 2, ctxPerSlot: 64, kvCells: 128 }, { outputReserve: 40 });
  const both: string[] = [];
  await Promise.all(
    ['x', 'y'].map(
      (name, k) =>
        roomy.scheduler.submit(
          { client: name, tokens: syntheticPrompt(16, 20 + k), options: { maxTokens: 4 } },
          { onStart: () => both.push(`start ${name}`), onEnd: () => both.push(`end ${name}`) },
        ).done,
    ),
  );
  t.same(both.slice(0, 2), ['start x', 'start y'], 'both start at once when they fit');
  t.same(decoder.violations, []);
  // The newcomer's own reservation counts too: 10 + 4 held, and 16 + 40 more would not fit 64.
  const own = setup({ slots: 2, ctxPerSlot: 64, kvCells: 64 }, { outputReserve: 40 });
  const order: string[] = [];
  const [short, long] = await Promise.all(
    [
      ['short', 10, 4],
      ['long', 16, 40],
    ].map(
      ([name, n, max], k) =>
        own.scheduler.submit(
          { client: String(name), tokens: syntheticPrompt(Number(n), 30 + k), options: { maxTokens: Number(max) } },
          { onStart: () => order.push(`start ${name}`), onEnd: () => order.push(`end ${name}`) },
        ).done,
    ),
  );
  t.same(order, ['start short', 'end short', 'start long', 'end long'], 'its own reservation made the second wait');
  t.same([short?.preemptions, long?.preemptions], [0, 0]);
});

t.test('idle caches give their cells back, least recently used first, to the RAM cache', async (t) => {
  const { decoder, scheduler, cache } = setup(
    { slots: 2, ctxPerSlot: 64, kvCells: 64 },
    { outputReserve: 4, promptCacheBytes: 1 << 20, minReusePrefix: 4 },
  );
  const a = syntheticPrompt(30, 5);
  const b = syntheticPrompt(30, 6);
  await run(scheduler, a, 4).summary; // slot 0 keeps a's 33 cells
  await run(scheduler, b, 4, 'B').summary; // needs 34 of the 31 left: a's cache is saved and erased
  t.ok(
    decoder.calls.some((c) => c.op === 'saveState') && decoder.calls.some((c) => c.op === 'erase'),
    'saved to RAM, then erased',
  );
  t.ok(cache.some((e) => e.kind === 'saved'));
  const again = run(scheduler, [...a, 1, 2, 3], 2);
  const summary = await again.summary;
  t.ok(
    decoder.calls.some((c) => c.op === 'restoreState'),
    'its state came back from RAM',
  );
  t.ok(summary.cachedTokens >= a.length, `the prompt came back from RAM (${summary.cachedTokens} cached)`);
  t.ok(cache.some((e) => e.kind === 'hit'));
  t.same(again.tokens, fakeTokens([...a, 1, 2, 3], 2), 'and generates what it would have');
  t.match(scheduler.promptCacheStats(), { hits: 1 });
});

t.test('a slot reused for another prompt keeps the old one in RAM; the old prompt comes back restored', async (t) => {
  const { decoder, scheduler } = setup({ slots: 1, ctxPerSlot: 128 }, { promptCacheBytes: 1 << 20, minReusePrefix: 4 });
  const system = syntheticPrompt(40, 7);
  await run(scheduler, [...system, 11, 12], 3).summary;
  await run(scheduler, syntheticPrompt(20, 8), 3).summary;
  const back = await run(scheduler, [...system, 11, 12, 13], 3).summary;
  t.ok(
    decoder.calls.some((c) => c.op === 'restoreState'),
    'restored',
  );
  t.ok(back.cachedTokens >= system.length, `${back.cachedTokens} tokens reused`);
  // Off: the same sequence decodes the whole prompt again.
  const off = setup({ slots: 1, ctxPerSlot: 128 }, { minReusePrefix: 4 });
  await run(off.scheduler, [...system, 11, 12], 3).summary;
  await run(off.scheduler, syntheticPrompt(20, 8), 3).summary;
  const cold = await run(off.scheduler, [...system, 11, 12, 13], 3).summary;
  t.ok(cold.cachedTokens < system.length / 2, `off: the prompt is decoded again (${cold.cachedTokens} reused)`);
  t.notOk(off.decoder.calls.some((c) => c.op === 'saveState'));
});

t.test('a request cancelled while its slot is being prepared ends once, and the slot is free', async (t) => {
  const { decoder, scheduler } = setup({ slots: 1, ctxPerSlot: 128 }, { promptCacheBytes: 1 << 20, minReusePrefix: 4 });
  await run(scheduler, syntheticPrompt(40, 9), 2).summary;
  const controller = new AbortController();
  let ends = 0;
  const handle = scheduler.submit(
    { client: 'A', tokens: syntheticPrompt(20, 10), options: { maxTokens: 2 }, signal: controller.signal },
    { onEnd: () => ends++ },
  );
  // The slot's old prompt is being saved to RAM (admission awaits it): cancel then.
  const previous = decoder.onCall;
  decoder.onCall = (c) => {
    previous?.(c);
    if (c.op === 'saveState') controller.abort();
  };
  const summary = await handle.done;
  t.equal(summary.reason, 'cancelled');
  t.equal(ends, 1);
  t.equal(scheduler.busySlots, 0);
  const next = await run(scheduler, syntheticPrompt(8, 11), 2).summary;
  t.equal(next.reason, 'length', 'the slot serves the next request');
});

t.test('a full pool whose idle cache cannot be saved still gives its cells back; nobody fails', async (t) => {
  // 3 slots share 64 cells. An idle slot keeps 11 cells; two requests then grow past what is left (9 + 2 x 28 > 64):
  // the step reports the pool full, the idle cache goes back, and its save to RAM fails.
  const { decoder, scheduler, preempted } = setup(
    { slots: 3, ctxPerSlot: 64, kvCells: 64 },
    { outputReserve: 1, promptCacheBytes: 1 << 20, minReusePrefix: 4 },
  );
  await run(scheduler, syntheticPrompt(8, 30), 4).summary;
  decoder.failNextSave();
  const a = syntheticPrompt(8, 31);
  const b = syntheticPrompt(8, 32);
  const first = run(scheduler, a, 20, 'A');
  const second = run(scheduler, b, 20, 'B');
  const [sa, sb] = await Promise.all([first.summary, second.summary]);
  t.same([sa.reason, sb.reason], ['length', 'length'], 'both finish');
  t.same(first.tokens, fakeTokens(a, 20));
  t.same(second.tokens, fakeTokens(b, 20));
  const save = decoder.calls.findIndex((c) => c.op === 'saveState');
  t.ok(save >= 0, 'the idle cache was to be saved');
  t.ok(
    decoder.calls.slice(save).some((c) => c.op === 'erase'),
    'its cells went back to the pool although the save failed',
  );
  t.same(preempted, [], 'the idle cache made the room: no running request was preempted');
  t.same(decoder.violations, []);
});

t.test('a slot is saved to RAM again after each request, also when its cache ends at the same length', async (t) => {
  // Fixed-length traffic: every request leaves the slot with 23 cached tokens. Each one must reach the RAM cache
  // when the next prompt overwrites it, so each returning prompt is restored.
  const { decoder, scheduler } = setup({ slots: 1, ctxPerSlot: 128 }, { promptCacheBytes: 1 << 20, minReusePrefix: 4 });
  const prompts = [40, 41, 42].map((seed) => syntheticPrompt(20, seed));
  for (const p of prompts) await run(scheduler, p, 4).summary;
  const saves = decoder.calls.filter((c) => c.op === 'saveState').length;
  t.equal(saves, 2, 'the first two prompts were saved when the next overwrote them');
  for (const p of prompts.slice(0, 2)) {
    const back = await run(scheduler, [...p, 7], 2).summary;
    t.ok(back.cachedTokens >= p.length, `a returning prompt is restored (${back.cachedTokens} cached)`);
  }
});

t.test('a preempted request resumes before the requests its client queued after it', async (t) => {
  // One client, 2 slots over 64 cells: the first two requests outgrow the pool and the second gives its slot up.
  // It goes back to the head of its client's line, so it resumes before the third (a 12-token prompt) starts.
  const { decoder, scheduler, preempted } = setup({ slots: 2, ctxPerSlot: 64, kvCells: 64 }, { outputReserve: 1 });
  const runs = [
    run(scheduler, syntheticPrompt(8, 50), 30),
    run(scheduler, syntheticPrompt(8, 51), 30),
    run(scheduler, syntheticPrompt(12, 52), 5),
  ];
  const summaries = await Promise.all(runs.map((r) => r.summary));
  t.same(
    summaries.map((s) => s.reason),
    ['length', 'length', 'length'],
  );
  t.equal(preempted.length, 1, 'one preemption');
  const starts = decoder.calls.flatMap((c) => (c.op === 'start' ? [c.promptTokens] : []));
  const resumed = starts.findIndex((n) => n > 12);
  const third = starts.indexOf(12);
  t.ok(resumed > 0 && third > 0, `starts: ${starts.join(', ')}`);
  t.ok(resumed < third, `the preempted request resumed first (starts by prompt length: ${starts.join(', ')})`);
});

t.test('a conversation that comes back and goes the same way is not saved again', async (t) => {
  // One slot, two prompts taking turns: each is saved once; afterwards the RAM cache already holds what the slot
  // has each time it moves on (greedy: the same answer), so nothing is copied again, and each return is a restore.
  const { decoder, scheduler, cache } = setup(
    { slots: 1, ctxPerSlot: 128 },
    { promptCacheBytes: 1 << 20, minReusePrefix: 4 },
  );
  const a = syntheticPrompt(30, 60);
  const b = syntheticPrompt(30, 61);
  for (const p of [a, b, a, b, a, b]) {
    const r = run(scheduler, p, 4);
    await r.summary;
    t.same(r.tokens, fakeTokens(p, 4));
  }
  t.equal(decoder.calls.filter((c) => c.op === 'saveState').length, 2, 'two saves: one per conversation');
  t.equal(decoder.calls.filter((c) => c.op === 'restoreState').length, 4, 'every return restored');
  t.equal(cache.filter((e) => e.kind === 'saved').length, 2);
});
