// POST /v1/completions over the real tiny model and scheduler.

import type { LightMyRequestResponse } from 'fastify';
import t, { type Test } from 'tap';
import { loadModel } from '../../helpers/models.ts';
import { HELLO, makeHarness, NO_EOS, sseEvents } from '../harness.ts';

const model = await loadModel('tiny');
t.teardown(() => model.dispose());

const URL = '/v1/completions';
// Longer than the scheduler's minimum reusable prefix (16 tokens), so a repeat goes back to the same slot.
const PROMPT = 'Once upon a time, in a quiet village by the sea, there lived an old fisherman and his clever cat.';

interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
  prompt_tokens_details: { cached_tokens: number };
}
interface TextCompletion {
  id: string;
  object: string;
  created: number;
  model: string;
  system_fingerprint: string;
  choices: Array<{ index: number; text: string; logprobs: null; finish_reason: string | null }>;
  usage?: Usage | null;
}

const post = (app: { inject: (o: object) => Promise<LightMyRequestResponse> }, payload: object) =>
  app.inject({ method: 'POST', url: URL, payload });

function chunksOf(t: Test, res: LightMyRequestResponse): TextCompletion[] {
  t.equal(res.statusCode, 200);
  t.match(res.headers['content-type'], /^text\/event-stream/);
  const events = sseEvents(res.body);
  t.equal(events.at(-1), '[DONE]');
  return events.slice(0, -1) as TextCompletion[];
}

t.test('a text completion in OpenAI shape; the prompt is tokenized as it is', async (t) => {
  const { app } = await makeHarness(t, model);
  const res = await post(app, { prompt: PROMPT, temperature: 0, max_tokens: 6, logit_bias: NO_EOS });
  t.equal(res.statusCode, 200);
  const body = res.json() as TextCompletion;
  t.match(body.id, /^cmpl-[0-9a-f]{32}$/);
  t.equal(body.object, 'text_completion');
  t.equal(body.model, 'tiny-F16-s1-g1.gguf');
  t.match(body.system_fingerprint, /^b/);
  t.equal(body.choices.length, 1);
  t.equal(body.choices[0]?.index, 0);
  t.equal(body.choices[0]?.logprobs, null);
  t.equal(body.choices[0]?.finish_reason, 'length');

  const prompt = Array.from(model.tokenize(PROMPT, { addSpecial: true, parseSpecial: true }));
  // llama.cpp's own single-sequence loop, unbiased: it stops at end-of-generation (not returned), this request bans
  // it. Always compared: the two agree up to where the reference ended (all 6 tokens when it did not end).
  const reference = await model.referenceGreedy(prompt, { nPredict: 6 });
  const referenceText = Buffer.concat(reference.map((id) => model.tokenBytes(id))).toString('utf8');
  t.equal(body.choices[0]?.text.slice(0, referenceText.length), referenceText, 'the greedy continuation');
  if (reference.length === 6) t.equal(body.choices[0]?.text, referenceText, 'all of it');
  // Unbiased, the request is the reference run to its end: the same text, ending where (and as) it ends.
  const free = (await post(app, { prompt: PROMPT, temperature: 0, max_tokens: 6 })).json() as TextCompletion;
  t.equal(free.choices[0]?.text, referenceText, 'unbiased: the reference, to its end');
  t.equal(free.choices[0]?.finish_reason, reference.length < 6 ? 'stop' : 'length');
  t.equal(free.usage?.completion_tokens, reference.length);
  t.same(body.usage, {
    prompt_tokens: prompt.length,
    completion_tokens: 6,
    total_tokens: prompt.length + 6,
    prompt_tokens_details: { cached_tokens: 0 },
  });

  const again = res.json() as TextCompletion;
  const second = (
    await post(app, { prompt: PROMPT, temperature: 0, max_tokens: 6, logit_bias: NO_EOS })
  ).json() as TextCompletion;
  t.equal(second.choices[0]?.text, again.choices[0]?.text);
  t.ok((second.usage?.prompt_tokens_details.cached_tokens ?? 0) > 0, 'the repeated prompt reuses the cache');
});

t.test('streaming: text chunks, a final finish_reason, usage on request, [DONE]', async (t) => {
  const { app } = await makeHarness(t, model);
  const payload = { prompt: PROMPT, temperature: 0, max_tokens: 8, logit_bias: NO_EOS };
  const whole = (await post(app, payload)).json() as TextCompletion;
  const chunks = chunksOf(t, await post(app, { ...payload, stream: true, stream_options: { include_usage: true } }));
  const usage = chunks.at(-1);
  t.same(usage?.choices, []);
  t.equal(usage?.usage?.completion_tokens, 8);
  t.equal(usage?.usage?.total_tokens, whole.usage?.total_tokens);
  const text = chunks.slice(0, -1);
  for (const c of text) {
    t.equal(c.object, 'text_completion');
    t.equal(c.id, chunks[0]?.id);
    t.equal(c.created, chunks[0]?.created);
    t.equal(c.usage, null);
  }
  t.equal(text.at(-1)?.choices[0]?.finish_reason, 'length');
  t.equal(text.at(-1)?.choices[0]?.text, '');
  for (const c of text.slice(0, -1)) t.equal(c.choices[0]?.finish_reason, null);
  t.equal(text.map((c) => c.choices[0]?.text ?? '').join(''), whole.choices[0]?.text);

  const plain = chunksOf(t, await post(app, { ...payload, stream: true }));
  t.notOk(plain.some((c) => 'usage' in c));
});

t.test('stop strings and special tokens in the prompt', async (t) => {
  const { app } = await makeHarness(t, model);
  let body = (
    await post(app, { prompt: PROMPT, temperature: 0, max_tokens: 10, logit_bias: { [HELLO]: 100 }, stop: ['llo Hel'] })
  ).json() as TextCompletion;
  t.equal(body.choices[0]?.text, ' He');
  t.equal(body.choices[0]?.finish_reason, 'stop');
  const chunks = chunksOf(
    t,
    await post(app, {
      prompt: PROMPT,
      temperature: 0,
      max_tokens: 10,
      logit_bias: { [HELLO]: 100 },
      stop: 'llo Hel',
      stream: true,
    }),
  );
  t.equal(chunks.map((c) => c.choices[0]?.text ?? '').join(''), ' He');

  // "<s>" in the text is parsed as the BOS token (as llama-server does), so it adds one token, not three.
  body = (await post(app, { prompt: `<s>${PROMPT}`, temperature: 0, max_tokens: 1 })).json() as TextCompletion;
  const plain = Array.from(model.tokenize(PROMPT, { addSpecial: true, parseSpecial: true })).length;
  t.ok((body.usage?.prompt_tokens ?? 0) <= plain + 1, `prompt tokens ${body.usage?.prompt_tokens} vs ${plain}`);
});
