// The scheduler over the real BatchDecoder: continuous batching must not change greedy output.
import t from 'tap';
import { BatchDecoder } from '../../src/engine/index.ts';
import { Scheduler } from '../../src/scheduler/scheduler.ts';
import type { RequestSummary } from '../../src/scheduler/types.ts';
import { syntheticPrompt } from '../helpers/decode.ts';
import { loadModel } from '../helpers/models.ts';

const model = await loadModel('tiny');
t.teardown(() => model.dispose());

interface Output {
  tokens: number[];
  text: string;
  summary: RequestSummary;
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
    let text = '';
    scheduler.submit(
      { client, tokens, options: { maxTokens } },
      {
        onToken(token, piece) {
          out.push(token);
          text += piece;
          onToken?.(out.length);
        },
        onEnd(summary, tail) {
          resolve({ tokens: out, text: text + tail, summary });
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
    t.same(got?.tokens, alone.tokens, `request ${i}: same tokens`);
    t.equal(got?.text, alone.text, `request ${i}: same text`);
    t.equal(got?.summary.reason, alone.summary.reason);
    t.ok((got?.tokens.length ?? 0) > 0);
  }
  await oneByOne.close(0);
});

t.test('cancelling on the real decoder frees the slot within a step; the next request is unaffected', async (t) => {
  const decoder = new BatchDecoder(model, { slots: 1, ctxPerSlot: 512 });
  t.teardown(() => decoder.dispose());
  const scheduler = new Scheduler(decoder, { stepTokenBudget: 64 });
  let cancel = () => {};
  const victim = new Promise<RequestSummary>((resolve) => {
    const handle = scheduler.submit(
      { client: 'a', tokens: syntheticPrompt(300, 950), options: { maxTokens: 200 } },
      {
        onToken: () => {},
        onEnd: (summary) => resolve(summary),
      },
    );
    cancel = () => handle.cancel();
  });
  // Cancel while its prefill steps run (a step is in flight on the decoder thread most of the time).
  setImmediate(() => cancel());
  const next = generate(scheduler, 'b', prompts[1] ?? [], 12);
  const v = await victim;
  t.equal(v.reason, 'cancelled');
  const n = await next;
  const single = new BatchDecoder(model, { slots: 1, ctxPerSlot: 256 });
  t.teardown(() => single.dispose());
  const reference = new Scheduler(single);
  const alone = await generate(reference, 'solo', prompts[1] ?? [], 12);
  t.same(n.tokens, alone.tokens);
  await scheduler.close(0);
  await reference.close(0);
});
