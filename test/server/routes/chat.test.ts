// POST /v1/chat/completions over the real tiny model and scheduler.

import type { ServerResponse } from 'node:http';
import type { LightMyRequestResponse } from 'fastify';
import t, { type Test } from 'tap';
import type { ServedScheduler } from '../../../src/server/options.ts';
import { loadModel } from '../../helpers/models.ts';
import { errorOf, HELLO, makeHarness, NO_EOS, sseEvents, USER_HI } from '../harness.ts';

const model = await loadModel('tiny');
t.teardown(() => model.dispose());

const URL = '/v1/chat/completions';
const EOS = 2;

interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
  prompt_tokens_details: { cached_tokens: number };
}
interface Completion {
  id: string;
  object: string;
  created: number;
  model: string;
  system_fingerprint: string;
  choices: Array<{ index: number; message: { role: string; content: string }; logprobs: null; finish_reason: string }>;
  usage: Usage;
}
interface Chunk {
  id: string;
  object: string;
  created: number;
  model: string;
  system_fingerprint: string;
  choices: Array<{
    index: number;
    delta: { role?: string; content?: string };
    logprobs: null;
    finish_reason: string | null;
  }>;
  usage?: Usage | null;
}

const post = (app: { inject: (o: object) => Promise<LightMyRequestResponse> }, payload: object) =>
  app.inject({ method: 'POST', url: URL, payload });
const completionOf = (res: LightMyRequestResponse): Completion => res.json() as Completion;
const contentOf = (res: LightMyRequestResponse): string => completionOf(res).choices[0]?.message.content ?? '';

/** The chunks of a streamed response, checking the framing shared by every stream. */
function chunksOf(t: Test, res: LightMyRequestResponse): Chunk[] {
  t.equal(res.statusCode, 200);
  t.match(res.headers['content-type'], /^text\/event-stream/);
  const events = sseEvents(res.body);
  t.equal(events.at(-1), '[DONE]', 'ends with [DONE]');
  t.equal(events.filter((e) => e === '[DONE]').length, 1);
  return events.slice(0, -1) as Chunk[];
}

function streamedText(chunks: Chunk[]): string {
  return chunks.map((c) => c.choices[0]?.delta.content ?? '').join('');
}

/** The prompt tokens the server should build: the chat template, then tokenization with special tokens parsed. */
function promptTokens(messages: Array<{ role: string; content: string }>): number[] {
  return Array.from(
    model.tokenize(model.applyChatTemplate(messages, { addAssistant: true }), { addSpecial: true, parseSpecial: true }),
  );
}

t.test('a completion in OpenAI shape; the text is the greedy continuation of the templated prompt', async (t) => {
  const { app } = await makeHarness(t, model);
  const res = await post(app, { model: 'anything', messages: USER_HI, temperature: 0, max_tokens: 8 });
  t.equal(res.statusCode, 200);
  t.match(res.headers['content-type'], /application\/json/);
  const body = completionOf(res);
  t.match(body.id, /^chatcmpl-[0-9a-f]{32}$/);
  t.equal(body.object, 'chat.completion');
  t.ok(Number.isInteger(body.created) && Math.abs(body.created - Date.now() / 1000) < 60, 'created is now, in seconds');
  t.equal(body.model, 'tiny-F16-s1-g1.gguf');
  t.match(body.system_fingerprint, /^b[0-9a-f]+-[0-9a-f]+$/, "llama-server's b<build>-<commit> form");
  t.equal(body.choices.length, 1);
  t.same(Object.keys(body.choices[0] ?? {}).sort(), ['finish_reason', 'index', 'logprobs', 'message']);
  t.equal(body.choices[0]?.index, 0);
  t.equal(body.choices[0]?.message.role, 'assistant');
  t.equal(body.choices[0]?.logprobs, null);

  const prompt = promptTokens(USER_HI);
  const reference = await model.referenceGreedy(prompt, { nPredict: 8 });
  const end = reference.indexOf(EOS);
  const expected = end >= 0 ? reference.slice(0, end) : reference;
  t.equal(body.choices[0]?.message.content, Buffer.concat(expected.map((id) => model.tokenBytes(id))).toString('utf8'));
  t.equal(body.choices[0]?.finish_reason, end >= 0 ? 'stop' : 'length');
  t.same(body.usage, {
    prompt_tokens: prompt.length,
    completion_tokens: expected.length,
    total_tokens: prompt.length + expected.length,
    prompt_tokens_details: { cached_tokens: 0 },
  });
});

t.test('a repeated prompt reuses the slot cache: cached_tokens > 0, same text', async (t) => {
  const { app } = await makeHarness(t, model);
  const payload = {
    messages: [{ role: 'system', content: 'You are terse.' }, ...USER_HI],
    temperature: 0,
    max_tokens: 6,
  };
  const first = completionOf(await post(app, payload));
  const second = completionOf(await post(app, payload));
  t.equal(first.usage.prompt_tokens_details.cached_tokens, 0);
  t.ok(
    second.usage.prompt_tokens_details.cached_tokens > 0,
    `cached ${second.usage.prompt_tokens_details.cached_tokens}`,
  );
  t.ok(
    second.usage.prompt_tokens_details.cached_tokens < second.usage.prompt_tokens,
    'at least one token re-evaluated',
  );
  t.equal(second.choices[0]?.message.content, first.choices[0]?.message.content);
  t.not(second.id, first.id);
});

t.test('content parts and the developer role mean the same as strings and system', async (t) => {
  const { app } = await makeHarness(t, model);
  const plain = await post(app, {
    messages: [
      { role: 'system', content: 'Be kind.' },
      { role: 'user', content: 'hi\nthere' },
    ],
    temperature: 0,
    max_tokens: 5,
  });
  const parts = await post(app, {
    messages: [
      { role: 'developer', content: [{ type: 'text', text: 'Be kind.' }] },
      {
        role: 'user',
        content: [
          { type: 'text', text: 'hi' },
          { type: 'text', text: 'there' },
        ],
      },
    ],
    temperature: 0,
    max_tokens: 5,
  });
  t.equal(completionOf(parts).usage.prompt_tokens, completionOf(plain).usage.prompt_tokens);
  t.equal(contentOf(parts), contentOf(plain));
});

t.test('streaming: role first, content deltas, one id, a final finish_reason, [DONE]', async (t) => {
  const { app } = await makeHarness(t, model);
  const payload = { messages: USER_HI, temperature: 0, max_tokens: 10, logit_bias: NO_EOS };
  const whole = completionOf(await post(app, payload));
  const chunks = chunksOf(t, await post(app, { ...payload, stream: true }));
  t.ok(chunks.length >= 3);
  const [first] = chunks;
  t.same(
    first?.choices[0]?.delta,
    { role: 'assistant', content: null },
    'as llama-server: the role first, content null',
  );
  t.equal(first?.choices[0]?.finish_reason, null);
  for (const c of chunks) {
    t.equal(c.id, first?.id);
    t.equal(c.created, first?.created);
    t.equal(c.object, 'chat.completion.chunk');
    t.equal(c.model, whole.model);
    t.equal(c.system_fingerprint, whole.system_fingerprint);
    t.notOk('usage' in c, 'no usage without include_usage');
  }
  t.match(first?.id, /^chatcmpl-/);
  const middle = chunks.slice(1, -1);
  for (const c of middle) {
    t.equal(c.choices[0]?.finish_reason, null);
    t.same(Object.keys(c.choices[0]?.delta ?? {}), ['content']);
    t.not(c.choices[0]?.delta.content, '', 'no empty content deltas');
  }
  const last = chunks.at(-1);
  t.same(last?.choices[0]?.delta, {});
  t.equal(last?.choices[0]?.finish_reason, 'length');
  t.equal(streamedText(chunks), whole.choices[0]?.message.content, 'streamed text equals the non-streamed text');
});

t.test('stream_options.include_usage: usage null on every chunk, then a usage chunk with no choices', async (t) => {
  const { app } = await makeHarness(t, model);
  const payload = { messages: USER_HI, temperature: 0, max_tokens: 7, logit_bias: NO_EOS };
  const chunks = chunksOf(t, await post(app, { ...payload, stream: true, stream_options: { include_usage: true } }));
  const usageChunk = chunks.at(-1);
  t.same(usageChunk?.choices, []);
  for (const c of chunks.slice(0, -1)) t.equal(c.usage, null);
  const prompt = promptTokens(USER_HI).length;
  t.same(usageChunk?.usage, {
    prompt_tokens: prompt,
    completion_tokens: 7,
    total_tokens: prompt + 7,
    prompt_tokens_details: { cached_tokens: 0 },
  });
  t.equal(chunks.at(-2)?.choices[0]?.finish_reason, 'length');
  t.equal(usageChunk?.id, chunks[0]?.id);
  const off = chunksOf(t, await post(app, { ...payload, stream: true, stream_options: { include_usage: false } }));
  t.notOk(off.some((c) => 'usage' in c));
});

t.test('finish reasons and token limits', async (t) => {
  const { app } = await makeHarness(t, model);
  let body = completionOf(await post(app, { messages: USER_HI, temperature: 0, max_tokens: 3, logit_bias: NO_EOS }));
  t.equal(body.choices[0]?.finish_reason, 'length');
  t.equal(body.usage.completion_tokens, 3);

  body = completionOf(
    await post(app, { messages: USER_HI, temperature: 0, max_tokens: 9, max_completion_tokens: 2, logit_bias: NO_EOS }),
  );
  t.equal(body.usage.completion_tokens, 2, 'max_completion_tokens wins over max_tokens');

  body = completionOf(
    await post(app, { messages: USER_HI, temperature: 0, max_tokens: 5, logit_bias: { [EOS]: 100 } }),
  );
  t.equal(body.choices[0]?.finish_reason, 'stop', 'end of generation');
  t.equal(body.usage.completion_tokens, 0);
  t.equal(body.choices[0]?.message.content, '');

  body = completionOf(await post(app, { messages: USER_HI, temperature: 0, logit_bias: NO_EOS }));
  t.equal(body.choices[0]?.finish_reason, 'length', 'no max_tokens: until the slot is full');
  t.equal(body.usage.total_tokens, 256, 'prompt + completion fill the slot context');

  body = completionOf(await post(app, { messages: USER_HI, temperature: 0, max_tokens: 100_000, logit_bias: NO_EOS }));
  t.equal(body.usage.total_tokens, 256, 'a larger max_tokens is capped by the slot');
  t.equal(body.choices[0]?.finish_reason, 'length');
});

t.test('logit_bias forces and bans tokens; -100 is a ban', async (t) => {
  const { app } = await makeHarness(t, model);
  const forced = completionOf(
    await post(app, { messages: USER_HI, temperature: 0, max_tokens: 4, logit_bias: { [HELLO]: 100 } }),
  );
  t.equal(forced.choices[0]?.message.content, ' Hello Hello Hello Hello');
  const [firstToken] = await model.referenceGreedy(promptTokens(USER_HI), { nPredict: 1 });
  const banned = completionOf(
    await post(app, {
      messages: USER_HI,
      temperature: 0,
      max_tokens: 1,
      logit_bias: { [String(firstToken)]: -100, ...NO_EOS },
    }),
  );
  t.not(banned.choices[0]?.message.content, model.tokenToPiece(firstToken ?? 0), 'the greedy first token is banned');
});

t.test('sampling: a seed makes temperature > 0 repeatable', async (t) => {
  const { app } = await makeHarness(t, model);
  const payload = {
    messages: USER_HI,
    temperature: 1.5,
    top_k: 100,
    top_p: 0.95,
    min_p: 0.01,
    seed: 1234,
    max_tokens: 12,
    logit_bias: NO_EOS,
  };
  const a = contentOf(await post(app, payload));
  const b = contentOf(await post(app, payload));
  t.equal(a, b);
  const greedy = contentOf(await post(app, { ...payload, temperature: 0 }));
  const topP0 = contentOf(await post(app, { ...payload, top_p: 0 }));
  t.equal(topP0, greedy, 'top_p 0 is greedy');
});

t.test('stop strings: cut before the match, never leaked, even split across tokens', async (t) => {
  const { app, endedCount } = await makeHarness(t, model);
  const payload = { messages: USER_HI, temperature: 0, max_tokens: 20, logit_bias: { [HELLO]: 100 } };
  // The tokens are " Hello" " Hello" ...: "lo He" spans two of them.
  let body = completionOf(await post(app, { ...payload, stop: 'lo He' }));
  t.equal(body.choices[0]?.message.content, ' Hel');
  t.equal(body.choices[0]?.finish_reason, 'stop');
  t.equal(body.usage.completion_tokens, 2, 'counted up to the token that completed the match');
  const [summary] = await endedCount(1);
  t.equal(summary?.reason, 'cancelled', 'the scheduler request was stopped, not run to max_tokens');

  body = completionOf(await post(app, { ...payload, stop: ['never', 'o Hello Hel'] }));
  t.equal(body.choices[0]?.message.content, ' Hell');
  body = completionOf(await post(app, { ...payload, stop: [' H'] }));
  t.equal(body.choices[0]?.message.content, '', 'a match at the very start');
  body = completionOf(await post(app, { ...payload, max_tokens: 3, stop: ['absent', 'Hello!'] }));
  t.equal(body.choices[0]?.message.content, ' Hello Hello Hello', 'held-back text is released when generation ends');
  t.equal(body.choices[0]?.finish_reason, 'length');

  const chunks = chunksOf(
    t,
    await post(app, { ...payload, stream: true, stream_options: { include_usage: true }, stop: ['lo He'] }),
  );
  t.equal(streamedText(chunks), ' Hel');
  for (const c of chunks)
    t.notMatch(c.choices[0]?.delta.content ?? '', /lo|He(?!l)/, 'no part of the stop string in any chunk');
  t.equal(chunks.at(-2)?.choices[0]?.finish_reason, 'stop');
  t.equal(chunks.at(-1)?.usage?.completion_tokens, 2);
});

t.test('client disconnect cancels the request: its decoding stops and the decoder frees the slot', async (t) => {
  let raw: ServerResponse | null = null;
  const { app, scheduler, steps, endedCount, startedCount } = await makeHarness(t, model, {
    ctxPerSlot: 1024,
    setup: (app) =>
      app.addHook('onRequest', async (_request, reply) => {
        raw = reply.raw;
      }),
  });
  const payload = { messages: USER_HI, temperature: 0, max_tokens: 900, logit_bias: NO_EOS };
  // Streaming: the response arrives when the stream opens; then the client goes away.
  const stream = await app.inject({
    method: 'POST',
    url: URL,
    payload: { ...payload, stream: true },
    payloadAsStream: true,
  });
  t.equal(stream.statusCode, 200);
  stream.stream().on('error', () => {});
  let mark = steps.started;
  stream.raw.res.destroy();
  let [summary] = await endedCount(1);
  t.equal(summary?.reason, 'cancelled');
  t.ok((summary?.generatedTokens ?? 900) < 900, `stopped after ${summary?.generatedTokens} tokens`);
  // The step in flight at the disconnect, and at most one begun before the close was seen, decode for it.
  t.ok(steps.decodedFor(summary?.slot ?? -1, Math.max(0, mark - 1)) <= 2, 'its decoding stopped within two steps');
  t.same(await steps.states(), ['idle', 'idle'], 'the decoder itself holds both slots idle');

  // Not streaming: the socket closes while the request is generating.
  const pending = post(app, payload).catch((err: unknown) => err);
  await startedCount(2);
  mark = steps.started;
  (raw as ServerResponse | null)?.destroy();
  [, summary] = await endedCount(2);
  t.equal(summary?.reason, 'cancelled');
  t.ok((summary?.generatedTokens ?? 900) < 900);
  t.ok(steps.decodedFor(summary?.slot ?? -1, Math.max(0, mark - 1)) <= 2, 'its decoding stopped within two steps');
  await pending;
  t.equal(scheduler.busySlots, 0, 'slots are free');
  t.match(scheduler.snapshot(), [{ state: 'idle' }, { state: 'idle' }]);
  t.same(await steps.states(), ['idle', 'idle'], 'in the decoder too');
});

t.test('a disconnect while another request generates: no later step decodes for the gone one', async (t) => {
  const { app, steps, endedCount, startedCount } = await makeHarness(t, model, { ctxPerSlot: 1024 });
  const long = { messages: USER_HI, temperature: 0, logit_bias: NO_EOS, stream: true };
  const other = app.inject({ method: 'POST', url: URL, payload: { ...long, max_tokens: 300 } });
  const gone = await app.inject({
    method: 'POST',
    url: URL,
    payload: { ...long, max_tokens: 900 },
    payloadAsStream: true,
  });
  gone.stream().on('error', () => {});
  await startedCount(2);
  const mark = steps.started;
  gone.raw.res.destroy();
  const [summary] = await endedCount(1);
  t.equal(summary?.reason, 'cancelled');
  const goneSlot = summary?.slot;
  const done = await other;
  t.equal(done.statusCode, 200, 'the other request finished');
  t.ok(steps.records.length - mark >= 50, `${steps.records.length - mark} steps ran after the disconnect`);
  t.ok(
    steps.decodedFor(goneSlot ?? -1, Math.max(0, mark - 1)) <= 2,
    `steps after the disconnect that decoded for its slot: ${steps.decodedFor(goneSlot ?? -1, Math.max(0, mark - 1))} (at most 2)`,
  );
  t.same(await steps.states(), ['idle', 'idle']);
});

t.test('a client that never reads its stream is cancelled after the drain timeout', async (t) => {
  const { app, steps, endedCount } = await makeHarness(t, model, {
    ctxPerSlot: 1024,
    config: { streamDrainTimeoutMs: 100 },
  });
  const res = await app.inject({
    method: 'POST',
    url: URL,
    payload: { messages: USER_HI, temperature: 0, max_tokens: 1000, logit_bias: NO_EOS, stream: true },
    payloadAsStream: true,
  });
  t.equal(res.statusCode, 200);
  res.stream().on('error', () => {});
  // Never read. Past the stream buffer's high-water mark writes report backpressure and never drain.
  const [summary] = await endedCount(1);
  t.equal(summary?.reason, 'cancelled');
  t.ok((summary?.generatedTokens ?? 1000) < 1000, `cancelled after ${summary?.generatedTokens} tokens`);
  t.ok(res.raw.res.destroyed, 'the connection was dropped');
  t.same(await steps.states(), ['idle', 'idle'], 'the decoder stopped decoding for it');
});

t.test(
  '8 streams, 1 never read: the 7 others finish, the stuck one is cancelled after the drain timeout',
  async (t) => {
    const drainTimeoutMs = 500;
    const { app, steps, endedCount } = await makeHarness(t, model, {
      slots: 8,
      ctxPerSlot: 4096,
      config: { streamDrainTimeoutMs: drainTimeoutMs },
    });
    const stream = { messages: USER_HI, temperature: 0, logit_bias: NO_EOS, stream: true };
    // Far more than it can write before its buffers fill: it is still generating when the timeout comes.
    const stuck = await app.inject({
      method: 'POST',
      url: URL,
      payload: { ...stream, max_tokens: 4000, user: 'stuck' },
      payloadAsStream: true,
    });
    stuck.stream().on('error', () => {});
    const readers = Array.from({ length: 7 }, () =>
      post(app, { ...stream, max_tokens: 100, stream_options: { include_usage: true } }),
    );
    for (const res of await Promise.all(readers)) {
      const chunks = chunksOf(t, res);
      t.equal(chunks.at(-1)?.usage?.completion_tokens, 100, 'a reading stream got all its tokens');
    }
    const ended = await endedCount(8);
    // Which ends first depends on the machine's speed (7 x 100 tokens against a 500 ms timeout), not the rule.
    t.same(
      ended.map((s) => s.reason).sort(),
      ['cancelled', ...Array(7).fill('length')],
      'the 7 that read ended at their length, one was cancelled',
    );
    const last = ended.find((s) => s.reason === 'cancelled');
    t.ok((last?.generatedTokens ?? 4000) < 4000, `after ${last?.generatedTokens} tokens`);
    t.ok(
      (last?.endedAt ?? 0) - (last?.startedAt ?? 0) >= drainTimeoutMs,
      'not before a whole drain timeout had passed',
    );
    t.ok(stuck.raw.res.destroyed, 'its connection was dropped');
    t.same(await steps.states(), Array(8).fill('idle'), 'and its slot freed in the decoder');
  },
);

t.test('request deadline: 504 before the stream starts, an error event after', async (t) => {
  // The blocker keeps the only slot busy and has no deadline, so the next request's deadline passes in the queue.
  const noDeadlineForBlocker = (real: ServedScheduler): ServedScheduler => ({
    submit: (request, handlers) => {
      if (request.client !== 'user:blocker') return real.submit(request, handlers);
      const { timeoutMs: _dropped, ...rest } = request;
      return real.submit(rest, handlers);
    },
    snapshot: () => real.snapshot(),
    slotAction: (slot, action, file) => real.slotAction(slot, action, file),
  });
  const { app, endedCount } = await makeHarness(t, model, {
    slots: 1,
    ctxPerSlot: 1024,
    config: { requestTimeoutMs: 300 },
    wrap: noDeadlineForBlocker,
  });
  const long = { messages: USER_HI, temperature: 0, max_tokens: 1000, logit_bias: NO_EOS };
  const blocker = await app.inject({
    method: 'POST',
    url: URL,
    payload: { ...long, stream: true, user: 'blocker' },
    payloadAsStream: true,
  });
  blocker.stream().on('error', () => {});
  const queued = await post(app, { ...long, stream: true });
  t.equal(queued.statusCode, 504, 'timed out while queued: a plain error response');
  t.match(queued.headers['content-type'], /application\/json/);
  t.equal(errorOf(queued).type, 'timeout_error');
  t.equal(errorOf(queued).code, 'request_timeout');
  blocker.raw.res.destroy();
  await endedCount(2);

  const running = await app.inject({
    method: 'POST',
    url: URL,
    payload: { ...long, stream: true },
    payloadAsStream: true,
  });
  let text = '';
  for await (const chunk of running.stream()) text += String(chunk);
  const events = sseEvents(text);
  t.equal(events.at(-1), '[DONE]');
  const error = events.at(-2) as { error?: { type: string; code: string } };
  t.equal(error.error?.type, 'timeout_error', 'the error travels inside the stream');
  t.equal(error.error?.code, 'request_timeout');
  t.ok(events.length > 3, 'tokens were streamed before it');

  const whole = await post(app, long);
  t.equal(whole.statusCode, 504, 'not streaming: 504');
  const summaries = await endedCount(4);
  t.same(summaries.map((s) => s.reason).sort(), ['cancelled', 'timeout', 'timeout', 'timeout']);
});

t.test('shutdown during a stream: an error event, then [DONE]', async (t) => {
  const { app, scheduler } = await makeHarness(t, model, { ctxPerSlot: 1024 });
  const res = await app.inject({
    method: 'POST',
    url: URL,
    payload: { messages: USER_HI, max_tokens: 1000, logit_bias: NO_EOS, stream: true },
    payloadAsStream: true,
  });
  await scheduler.close(0);
  let text = '';
  for await (const chunk of res.stream()) text += String(chunk);
  const events = sseEvents(text);
  t.equal(events.at(-1), '[DONE]');
  t.match(events.at(-2), { error: { type: 'unavailable_error', code: 'shutting_down', param: null } });
});

t.test('fairness key: the request user, else the remote address', async (t) => {
  const { app, endedCount } = await makeHarness(t, model, { ctxPerSlot: 1024 });
  const payload = { messages: USER_HI, max_tokens: 1000, logit_bias: NO_EOS, stream: true };
  const a = await app.inject({
    method: 'POST',
    url: URL,
    payload: { ...payload, user: 'alice' },
    payloadAsStream: true,
  });
  const b = await app.inject({ method: 'POST', url: URL, payload, payloadAsStream: true });
  const clients = scheduler(await app.inject({ method: 'GET', url: '/slots' })).sort();
  t.same(clients, ['ip:127.0.0.1', 'user:alice']);
  a.raw.res.destroy();
  b.raw.res.destroy();
  await endedCount(2);

  function scheduler(res: LightMyRequestResponse): string[] {
    return (res.json() as Array<{ request: { client: string } | null }>).flatMap((s) =>
      s.request ? [s.request.client] : [],
    );
  }
});
