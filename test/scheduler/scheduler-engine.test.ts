// The scheduler over the real BatchDecoder: continuous batching must not change greedy output.
import t, { type Test } from 'tap';
import { BatchDecoder } from '../../src/engine/index.ts';
import { Scheduler } from '../../src/scheduler/scheduler.ts';
import type { RequestSummary } from '../../src/scheduler/types.ts';
import { syntheticPrompt } from '../helpers/decode.ts';
import { loadModel } from '../helpers/models.ts';
import { StepLog } from '../helpers/step-log.ts';

const model = await loadModel('tiny');
t.teardown(() => model.dispose());

interface Output {
  tokens: number[];
  text: string;
  summary: RequestSummary;
  /** Per token: the two most likely tokens and their log probabilities. */
  top: (readonly { token: number; logprob: number }[])[];
}

/**
 * Greedy output of a request run beside others equals its output alone, token for token, up to a near tie: llama.cpp's
 * CPU kernels are not bit-exact across batch shapes (on AVX2 builds they differ in the last bits), so where the
 * reference's two best tokens are within 1e-3 in log probability either may win. Past such a tie the texts are two
 * valid continuations, so the comparison ends there; anywhere else a difference is a failure.
 */
function sameUpToTie(t: Test, got: Output | undefined, alone: Output, label: string): void {
  const tokens = got?.tokens ?? [];
  const k = tokens.findIndex((tok, i) => tok !== alone.tokens[i]);
  if (k < 0) {
    t.same(tokens, alone.tokens, `${label}: same tokens`);
    t.equal(got?.text, alone.text, `${label}: same text`);
    return;
  }
  const [first, second] = alone.top[k] ?? [];
  const gap = (first?.logprob ?? 0) - (second?.logprob ?? Number.NEGATIVE_INFINITY);
  t.ok(
    gap < 1e-3 && tokens[k] === second?.token,
    `${label}: same tokens up to ${k}, where the reference's two best differ by ${gap.toExponential(2)} and the other won`,
  );
}

function generate(
  scheduler: Scheduler,
  client: string,
  tokens: number[],
  maxTokens: number,
  onToken?: (n: number) => void,
): Promise<Output> {
  return new Promise((resolve) => {
    const out: number[] = [];
    const top: Output['top'] = [];
    let text = '';
    scheduler.submit(
      { client, tokens, options: { maxTokens, nProbs: 2 } },
      {
        onToken(token, piece, probs) {
          out.push(token);
          top.push(probs?.top ?? []);
          text += piece;
          onToken?.(out.length);
        },
        onEnd(summary, tail) {
          resolve({ tokens: out, text: text + tail, summary, top });
        },
      },
    );
  });
}

// Some prompts share a long prefix, so the prompt cache and slot choice take part.
const shared = syntheticPrompt(48, 900);
const prompts = Array.from({ length: 8 }, (_, i) =>
  i % 3 === 0 ? [...shared, ...syntheticPrompt(8 + i, 910 + i).slice(1)] : syntheticPrompt(12 + i * 11, 920 + i),
);
const maxTokens = (i: number) => 10 + ((i * 7) % 19);

t.test('8 concurrent requests on 4 slots give the same greedy tokens as one by one', async (t) => {
  const decoder = new BatchDecoder(model, { slots: 4, ctxPerSlot: 256 });
  t.teardown(() => decoder.dispose());
  let fullSteps = 0;
  const scheduler = new Scheduler(
    decoder,
    { stepTokenBudget: 32 },
    { onStep: (s) => (fullSteps += s.busySlots === 4 ? 1 : 0) },
  );
  const together = await Promise.all(prompts.map((p, i) => generate(scheduler, `client${i % 3}`, p, maxTokens(i))));
  await scheduler.close(0);
  t.ok(fullSteps > 0, `${fullSteps} steps ran all 4 slots at once`);
  t.same(
    scheduler.snapshot().map((s) => s.state),
    ['idle', 'idle', 'idle', 'idle'],
  );

  const single = new BatchDecoder(model, { slots: 1, ctxPerSlot: 256 });
  t.teardown(() => single.dispose());
  const oneByOne = new Scheduler(single);
  for (const [i, p] of prompts.entries()) {
    const alone = await generate(oneByOne, 'solo', p, maxTokens(i));
    const got = together[i];
    sameUpToTie(t, got, alone, `request ${i}`);
    t.equal(got?.summary.reason, alone.summary.reason);
    t.ok((got?.tokens.length ?? 0) > 0);
  }
  await oneByOne.close(0);
});

/** A request whose handle is kept, with its tokens and its end. */
function submitted(
  scheduler: Scheduler,
  client: string,
  tokens: number[],
  maxTokens: number,
  onToken?: (n: number) => void,
) {
  const out: number[] = [];
  let resolve: (o: Output) => void = () => {};
  const ended = new Promise<Output>((r) => {
    resolve = r;
  });
  const handle = scheduler.submit(
    { client, tokens, options: { maxTokens } },
    {
      onToken(token) {
        out.push(token);
        onToken?.(out.length);
      },
      onEnd(summary, tail) {
        resolve({ tokens: out, text: tail, summary, top: [] });
      },
    },
  );
  return { handle, ended };
}

t.test('a cancel between steps: no later step decodes for the slot, and the decoder holds it idle', async (t) => {
  const decoder = new BatchDecoder(model, { slots: 2, ctxPerSlot: 512 });
  t.teardown(() => decoder.dispose());
  const log = new StepLog(decoder);
  const scheduler = new Scheduler(log, { stepTokenBudget: 64 });
  // The other request keeps steps running after the cancel: a slot still decoding would show in them.
  const other = submitted(scheduler, 'a', prompts[2] ?? [], 120);
  let mark = -1;
  let slot = -1;
  const victim = submitted(scheduler, 'b', prompts[3] ?? [], 200, (n) => {
    if (n !== 5) return;
    // Inside the scheduler's handling of a step's events: no step is in flight.
    mark = log.started;
    slot = scheduler.snapshot().find((s) => s.request?.client === 'b')?.id ?? -1;
    victim.handle.cancel();
  });
  const v = await victim.ended;
  t.equal(v.summary.reason, 'cancelled');
  t.equal(v.tokens.length, 5, 'no token after the cancel');
  t.ok(slot >= 0);
  t.equal(log.decodedFor(slot, mark), 0, 'no step after the cancel decoded for its slot');
  await other.ended;
  t.equal(log.stateAtStep(slot, mark), 'idle', 'the decoder itself held the slot idle at the next step');
  t.equal((await other.ended).summary.reason, 'length');
  t.ok(log.records.length - mark >= 10, `${log.records.length - mark} steps ran after the cancel`);
  t.equal(log.decodedFor(slot, mark), 0, 'nor any step after that');
  t.same(await log.states(), ['idle', 'idle']);
  await scheduler.close(0);
});

t.test('a cancel during a step: the step in flight ends the slot; the decoder holds it idle after it', async (t) => {
  const decoder = new BatchDecoder(model, { slots: 2, ctxPerSlot: 512 });
  t.teardown(() => decoder.dispose());
  const log = new StepLog(decoder);
  const scheduler = new Scheduler(log, { stepTokenBudget: 64 });
  const other = submitted(scheduler, 'a', prompts[2] ?? [], 150);
  let mark = -1;
  let slot = -1;
  const victim = submitted(scheduler, 'b', prompts[3] ?? [], 300, (n) => {
    if (mark >= 0 || n < 3) return;
    // After the scheduler has handed out this step's events it starts the next step; cancel while it runs.
    setImmediate(() => {
      if (mark >= 0 || !log.inFlight) return; // the step was already over: try at the next token
      mark = log.started;
      slot = scheduler.snapshot().find((s) => s.request?.client === 'b')?.id ?? -1;
      victim.handle.cancel();
    });
  });
  const v = await victim.ended;
  t.ok(mark >= 0, 'the cancel came while a step was in flight');
  t.equal(v.summary.reason, 'cancelled');
  t.ok(log.decodedFor(slot, mark - 1) <= 1, 'only the step in flight at the cancel decoded for its slot');
  await other.ended;
  t.equal(log.stateAtStep(slot, mark), 'idle', 'the decoder held the slot idle when the next step began');
  t.ok(log.records.length - mark >= 10, `${log.records.length - mark} steps ran after the cancel`);
  t.ok(log.decodedFor(slot, mark - 1) <= 1, 'no later step decoded for it');
  t.same(await log.states(), ['idle', 'idle']);
  await scheduler.close(0);
});

t.test('cancelling the only request: the loop stops with the decoder holding every slot idle', async (t) => {
  const decoder = new BatchDecoder(model, { slots: 1, ctxPerSlot: 512 });
  t.teardown(() => decoder.dispose());
  const log = new StepLog(decoder);
  const scheduler = new Scheduler(log, { stepTokenBudget: 64 });
  const victim = submitted(scheduler, 'a', syntheticPrompt(300, 950), 200, (n) => {
    if (n === 2) victim.handle.cancel();
  });
  const v = await victim.ended;
  t.equal(v.summary.reason, 'cancelled');
  await scheduler.close(0);
  t.same(await log.states(), ['idle'], 'no step will run again: the decoder must already hold it idle');
});

t.test('cancelling on the real decoder frees the slot within a step; the next request is unaffected', async (t) => {
  const decoder = new BatchDecoder(model, { slots: 1, ctxPerSlot: 512 });
  t.teardown(() => decoder.dispose());
  const log = new StepLog(decoder);
  const scheduler = new Scheduler(log, { stepTokenBudget: 64 });
  const victim = submitted(scheduler, 'a', syntheticPrompt(300, 950), 200);
  // Cancel while its prefill steps run (a step is in flight on the decoder thread most of the time).
  let mark = -1;
  setImmediate(() => {
    mark = log.started;
    victim.handle.cancel();
  });
  const next = generate(scheduler, 'b', prompts[1] ?? [], 12);
  const v = await victim.ended;
  t.equal(v.summary.reason, 'cancelled');
  t.ok(log.decodedFor(0, Math.max(0, mark - 1)) <= 1, 'at most the step in flight decoded for it');
  const n = await next;
  const single = new BatchDecoder(model, { slots: 1, ctxPerSlot: 256 });
  t.teardown(() => single.dispose());
  const reference = new Scheduler(single);
  const alone = await generate(reference, 'solo', prompts[1] ?? [], 12);
  t.same(n.tokens, alone.tokens);
  await scheduler.close(0);
  await reference.close(0);
});

for (const drafting of [false, true]) {
  t.test(
    `a unified pool too small for all slots at once: preemption, and every request ends as it would alone${drafting ? ', drafting' : ''}`,
    async (t) => {
      // 4 slots share 256 cells; each request needs 30 + 60 = 90, so all 4 at once (360) run the pool dry while
      // generating, and the most recently started gives its slot up (its state kept in RAM) and resumes later.
      // Drafting: the model drafts for itself (every draft accepted), so drafts take cells in every step.
      const speculative = drafting ? { speculative: { types: ['draft-simple'], draftModel: model, nMax: 4 } } : {};
      const decoder = new BatchDecoder(model, {
        slots: 4,
        ctxPerSlot: 64,
        kvUnified: true,
        slotCtxMax: 128,
        ...speculative,
      });
      t.teardown(() => decoder.dispose());
      const preempted: string[] = [];
      let restored = 0;
      let kvFullSteps = 0;
      const step = decoder.step.bind(decoder);
      decoder.step = async (budget?: number, limits?: readonly number[]) => {
        const r = await step(budget, limits);
        if (r.kvFull === true) kvFullSteps++;
        return r;
      };
      const scheduler = new Scheduler(
        decoder,
        { stepTokenBudget: 64, outputReserve: 8, promptCacheBytes: 16 << 20, draftPolicy: 'max' },
        {
          onPreempted: (p) => preempted.push(p.id),
          onPromptCache: (e) => (restored += e.kind === 'hit' ? e.tokens : 0),
        },
      );
      const requests = [0, 1, 2, 3].map((i) => syntheticPrompt(30, 950 + i));
      const together = await Promise.all(requests.map((p, i) => generate(scheduler, `client${i}`, p, 60)));
      await scheduler.close(0);
      t.ok(kvFullSteps > 0, `${kvFullSteps} steps found the pool full`);
      const preemptions = together.reduce((n, o) => n + o.summary.preemptions, 0);
      t.ok(preemptions > 0, `${preemptions} preemptions`);
      t.equal(preempted.length, preemptions, 'the observer saw each');
      t.ok(restored >= 30, `the preempted came back from their state in RAM (${restored} tokens restored)`);
      t.ok(decoder.info.kvCellsUsed <= 256);
      const drafted = together.reduce((n, o) => n + o.summary.draftTokens, 0);
      if (drafting) t.ok(drafted > 0, `${drafted} draft tokens verified`);
      else t.equal(drafted, 0);

      const single = new BatchDecoder(model, { slots: 1, ctxPerSlot: 128 });
      t.teardown(() => single.dispose());
      const oneByOne = new Scheduler(single);
      for (const [i, p] of requests.entries()) {
        const got = together[i];
        t.equal(got?.summary.reason, 'length', `request ${i} ends on its length, not a context error`);
        t.equal(got?.tokens.length, 60, `request ${i}: all its tokens`);
        t.equal(got?.summary.generatedTokens, 60);
        const alone = await generate(oneByOne, 'solo', p, 60);
        sameUpToTie(t, got, alone, `request ${i} (${got?.summary.preemptions} preemptions)`);
      }
      await oneByOne.close(0);
    },
  );
}

t.test(
  'sliding-window model, more conversations than slots: a returning one resumes from its RAM-cached checkpoint',
  async (t) => {
    const gemma = await loadModel('tiny-gemma3');
    t.teardown(() => gemma.dispose());
    const window = gemma.info.nSwa;
    const options = { slots: 1, ctxPerSlot: 1024, batchSize: 64, ubatchSize: 32 } as const;
    const decoder = new BatchDecoder(gemma, options);
    t.teardown(() => decoder.dispose());
    let restored = 0;
    const scheduler = new Scheduler(
      decoder,
      { promptCacheBytes: 256 << 20 },
      { onPromptCache: (e) => (restored += e.kind === 'hit' ? e.tokens : 0) },
    );
    const turn1 = syntheticPrompt(window * 3, 960);
    // A reply that outgrows the window, then another conversation takes the only slot.
    const reply = await generate(scheduler, 'a', turn1, window * 6);
    await generate(scheduler, 'b', syntheticPrompt(window * 2, 961), 8);
    // The client re-sends its history; its reply re-tokenizes differently after a few tokens.
    const turn2 = [...turn1, ...reply.tokens.slice(0, 5), ...syntheticPrompt(30, 962).slice(1)];
    const back = await generate(scheduler, 'a', turn2, 12);
    await scheduler.close(0);
    t.equal(back.summary.cachedTokens, turn1.length - 4, 'resumed 4 tokens before the first prompt ended');
    t.equal(restored, turn1.length - 4, 'from the state kept in RAM');

    const single = new BatchDecoder(gemma, options);
    t.teardown(() => single.dispose());
    const cold = new Scheduler(single);
    t.same(back.tokens, (await generate(cold, 'solo', turn2, 12)).tokens, 'the same tokens as a cold run');
    await cold.close(0);
  },
);
