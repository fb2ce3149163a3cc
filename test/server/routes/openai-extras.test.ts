// OpenAI fields llama-server users rely on, over the real tiny model: n choices from one prefill, chat logprobs,
// completions logprobs and echo, and llama-server's logit_bias forms.

import type { LightMyRequestResponse } from 'fastify';
import t from 'tap';
import { loadModel } from '../../helpers/models.ts';
import { errorOf, HELLO, makeHarness, NO_EOS, sseEvents, USER_HI } from '../harness.ts';

const model = await loadModel('tiny');
t.teardown(() => model.dispose());

const PROMPT = 'Once upon a time, in a quiet village by the sea, there lived an old fisherman and his clever cat.';
type App = { inject: (o: object) => Promise<LightMyRequestResponse> };
const post = async <T>(app: App, url: string, payload: object): Promise<T> => {
  const res = await app.inject({ method: 'POST', url, payload });
  if (res.statusCode !== 200) throw new Error(`${res.statusCode}: ${res.body}`);
  return res.json() as T;
};

interface ChatBody {
  choices: Array<{
    index: number;
    message: { content: string };
    finish_reason: string;
    logprobs: {
      content: Array<{
        token: string;
        logprob: number;
        bytes: number[];
        top_logprobs: Array<{ token: string; logprob: number }>;
      }>;
    } | null;
  }>;
  usage: { prompt_tokens: number; completion_tokens: number };
}
interface TextBody {
  choices: Array<{
    index: number;
    text: string;
    logprobs: {
      tokens: string[];
      token_logprobs: number[];
      top_logprobs: Record<string, number>[];
      text_offset: number[];
    } | null;
  }>;
  usage: { prompt_tokens: number; completion_tokens: number };
}

t.test('n choices: one prefill shared through a KV copy, each choice sampled on its own', async (t) => {
  const { app, endedCount } = await makeHarness(t, model, { slots: 3 });
  const greedy = await post<ChatBody>(app, '/v1/chat/completions', {
    messages: USER_HI,
    max_tokens: 5,
    temperature: 0,
    logit_bias: NO_EOS,
  });
  const before = (await endedCount(1)).length;
  const body = await post<ChatBody>(app, '/v1/chat/completions', {
    messages: USER_HI,
    max_tokens: 5,
    temperature: 0,
    logit_bias: NO_EOS,
    n: 3,
  });
  t.same(
    body.choices.map((c) => c.index),
    [0, 1, 2],
  );
  for (const c of body.choices) t.equal(c.message.content, greedy.choices[0]?.message.content, 'greedy: the same text');
  t.equal(body.usage.completion_tokens, 15, 'completions summed');
  t.equal(body.usage.prompt_tokens, greedy.usage.prompt_tokens, 'the prompt counted once');
  const runs = (await endedCount(before + 3)).slice(before);
  const slots = new Set(runs.map((r) => r.slot));
  t.equal(slots.size, 3, 'three slots ran at once');
  const promptDecoded = runs.map((r) => r.promptTokens - r.cachedTokens).sort((a, b) => a - b);
  // The leader decodes what its slot did not hold; each follower starts from a copy of the leader's KV and
  // decodes only the prompt's last token (its logits).
  t.same(promptDecoded.slice(0, 2), [1, 1], 'followers decode one prompt token each');

  const varied = await post<ChatBody>(app, '/v1/chat/completions', {
    messages: USER_HI,
    max_tokens: 12,
    temperature: 1.5,
    top_k: 0,
    top_p: 1,
    min_p: 0,
    seed: 7,
    logit_bias: NO_EOS,
    n: 3,
  });
  t.ok(new Set(varied.choices.map((c) => c.message.content)).size > 1, 'sampled choices differ');

  const text = await post<TextBody>(app, '/v1/completions', {
    prompt: PROMPT,
    max_tokens: 3,
    temperature: 0,
    logit_bias: NO_EOS,
    n: 2,
  });
  t.same(
    text.choices.map((c) => c.index),
    [0, 1],
  );
  t.equal(text.choices[0]?.text, text.choices[1]?.text);

  const short = await post<ChatBody>(app, '/v1/chat/completions', {
    messages: USER_HI,
    max_tokens: 3,
    temperature: 0,
    logit_bias: NO_EOS,
  });
  const stream = await app.inject({
    method: 'POST',
    url: '/v1/chat/completions',
    payload: { messages: USER_HI, max_tokens: 3, temperature: 0, logit_bias: NO_EOS, n: 2, stream: true },
  });
  const chunks = sseEvents(stream.body).slice(0, -1) as Array<{
    choices: Array<{ index: number; delta: { content?: string | null }; finish_reason: string | null }>;
  }>;
  for (const i of [0, 1]) {
    const own = chunks.flatMap((c) => c.choices).filter((c) => c.index === i);
    t.equal(
      own.map((c) => c.delta.content ?? '').join(''),
      short.choices[0]?.message.content,
      `choice ${i} streams its own deltas`,
    );
    t.equal(own.at(-1)?.finish_reason, 'length');
  }
});

t.test('chat logprobs: the chosen token and top_logprobs per generated token', async (t) => {
  const { app } = await makeHarness(t, model);
  const body = await post<ChatBody>(app, '/v1/chat/completions', {
    messages: USER_HI,
    max_tokens: 4,
    temperature: 0,
    logit_bias: NO_EOS,
    logprobs: true,
    top_logprobs: 3,
  });
  const content = body.choices[0]?.logprobs?.content ?? [];
  t.equal(content.length, 4);
  t.equal(content.map((c) => c.token).join(''), body.choices[0]?.message.content);
  for (const c of content) {
    t.ok(c.logprob <= 0);
    t.equal(c.top_logprobs.length, 3);
    t.equal(c.top_logprobs[0]?.token, c.token, 'greedy picks the most likely');
    t.same(Buffer.from(c.bytes).toString('utf8'), c.token);
  }
  const without = await post<ChatBody>(app, '/v1/chat/completions', {
    messages: USER_HI,
    max_tokens: 2,
    temperature: 0,
  });
  t.equal(without.choices[0]?.logprobs, null, 'absent unless asked');
  const none = await post<ChatBody>(app, '/v1/chat/completions', {
    messages: USER_HI,
    max_tokens: 2,
    temperature: 0,
    logit_bias: NO_EOS,
    logprobs: true,
  });
  t.same(
    none.choices[0]?.logprobs?.content.map((c) => c.top_logprobs.length),
    [0, 0],
    'logprobs without top_logprobs: only the chosen token',
  );
});

t.test('completions: logprobs as an integer, echo prepends the prompt', async (t) => {
  const { app } = await makeHarness(t, model);
  const body = await post<TextBody>(app, '/v1/completions', {
    prompt: PROMPT,
    max_tokens: 3,
    temperature: 0,
    logit_bias: NO_EOS,
    logprobs: 2,
  });
  const lp = body.choices[0]?.logprobs;
  t.equal(lp?.tokens.length, 3);
  t.equal(lp?.tokens.join(''), body.choices[0]?.text);
  t.same(lp?.text_offset, [0, lp?.tokens[0]?.length, (lp?.tokens[0]?.length ?? 0) + (lp?.tokens[1]?.length ?? 0)]);
  for (const top of lp?.top_logprobs ?? []) t.ok(Object.keys(top).length >= 1 && Object.keys(top).length <= 2);

  const echoed = await post<TextBody>(app, '/v1/completions', {
    prompt: PROMPT,
    max_tokens: 3,
    temperature: 0,
    logit_bias: NO_EOS,
    echo: true,
  });
  t.equal(echoed.choices[0]?.text, PROMPT + (body.choices[0]?.text ?? ''));
  const both = await app.inject({
    method: 'POST',
    url: '/v1/completions',
    payload: { prompt: PROMPT, max_tokens: 1, echo: true, logprobs: 1 },
  });
  t.equal(both.statusCode, 400, 'prompt logprobs are not computed: refused, not faked');
  t.equal(errorOf(both).param, 'echo');
});

t.test("logit_bias in llama-server's forms: an object, [id, bias] and [text, bias] pairs, false bans", async (t) => {
  const { app } = await makeHarness(t, model);
  const first = async (logit_bias: unknown) =>
    (
      await post<{ tokens: number[] }>(app, '/completion', {
        prompt: PROMPT,
        n_predict: 2,
        temperature: 0,
        return_tokens: true,
        logit_bias,
      })
    ).tokens;
  t.same(await first({ [HELLO]: 100, ...NO_EOS }), [HELLO, HELLO], 'object form');
  t.same(
    await first([
      [HELLO, 100],
      [2, false],
    ]),
    [HELLO, HELLO],
    'pairs, with false as a ban',
  );
  const hello = Array.from(model.tokenize(' Hello', { addSpecial: false, parseSpecial: false }));
  const out = await first([
    [' Hello', 100],
    [2, false],
  ]);
  t.ok(hello.length >= 1 && out.every((id) => hello.includes(id)), 'text: every token of it is biased');
  const free = await first(NO_EOS);
  const banned = await first([
    [free[0], false],
    [2, false],
  ]);
  t.not(banned[0], free[0], 'false bans the token greedy decoding would pick');
});
