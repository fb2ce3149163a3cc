// llama-server's own routes over the real tiny model and scheduler: POST /completion, /tokenize, /detokenize,
// /apply-template, GET /props, GET /slots and the slot actions, in its request and response shapes.

import { existsSync } from 'node:fs';
import { copyFile, mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import type { LightMyRequestResponse } from 'fastify';
import t from 'tap';
import { loadModel } from '../../helpers/models.ts';
import { errorOf, HELLO, makeHarness, NO_EOS, sseEvents } from '../harness.ts';

const model = await loadModel('tiny');
t.teardown(() => model.dispose());

const PROMPT = 'Once upon a time, in a quiet village by the sea, there lived an old fisherman and his clever cat.';
const tokensOf = (text: string) => Array.from(model.tokenize(text, { addSpecial: true, parseSpecial: true }));

interface Timings {
  cache_n: number;
  prompt_n: number;
  prompt_ms: number;
  predicted_n: number;
  predicted_ms: number;
  predicted_per_second: number;
  predicted_per_token_ms: number;
}
interface Completion {
  index: number;
  content: string;
  tokens: number[];
  id_slot: number;
  stop: boolean;
  tokens_predicted: number;
  tokens_evaluated: number;
  truncated: boolean;
  stop_type: string;
  stopping_word: string;
  tokens_cached: number;
  timings: Timings;
  generation_settings: Record<string, unknown>;
  prompt: string;
  completion_probabilities?: Array<{
    id: number;
    token: string;
    logprob?: number;
    prob?: number;
    bytes: number[];
    top_logprobs?: Array<{ id: number; logprob: number }>;
    top_probs?: Array<{ id: number; prob: number }>;
  }>;
}

type App = { inject: (o: object) => Promise<LightMyRequestResponse> };
const completion = async (app: App, payload: object): Promise<Completion> => {
  const res = await app.inject({ method: 'POST', url: '/completion', payload });
  if (res.statusCode !== 200) throw new Error(`${res.statusCode}: ${res.body}`);
  return res.json() as Completion;
};

t.test('POST /completion: the greedy continuation in llama-server shape, with its timings', async (t) => {
  const { app } = await makeHarness(t, model);
  const body = await completion(app, {
    prompt: PROMPT,
    n_predict: 6,
    temperature: 0,
    logit_bias: NO_EOS,
    return_tokens: true,
  });
  const prompt = tokensOf(PROMPT);
  const reference = await model.referenceGreedy(prompt, { nPredict: 6 });
  t.same(body.tokens, reference, 'the tokens greedy decoding gives');
  t.equal(body.content, Buffer.concat(reference.map((id) => model.tokenBytes(id))).toString('utf8'));
  t.match(body, {
    index: 0,
    stop: true,
    tokens_predicted: 6,
    tokens_evaluated: prompt.length,
    tokens_cached: prompt.length + 6,
    stop_type: 'limit',
    truncated: false,
    prompt: model.detokenize(prompt, { unparseSpecial: true }),
  });
  t.ok(body.id_slot >= 0, 'the slot that served it');
  t.equal(body.timings.prompt_n, prompt.length);
  t.equal(body.timings.predicted_n, 6);
  // As llama-server: the first token comes with the prompt, so the rate is over 5 decode steps.
  t.ok(Math.abs(body.timings.predicted_per_second - (1e3 / body.timings.predicted_ms) * 5) < 1e-6);
  t.ok(Math.abs(body.timings.predicted_per_token_ms - body.timings.predicted_ms / 5) < 1e-9);

  const one = await completion(app, { prompt: PROMPT, n_predict: 1, temperature: 0, logit_bias: NO_EOS });
  t.equal(one.timings.predicted_n, 1);
  t.equal(one.timings.predicted_per_second, 0, 'one token: no decode step of its own');

  // The same prompt again: the slot's cache serves all of it but the last token.
  const again = await completion(app, { prompt: PROMPT, n_predict: 2, temperature: 0, logit_bias: NO_EOS });
  t.equal(again.timings.cache_n, prompt.length - 1);
  t.equal(again.timings.prompt_n, 1);
  const fresh = await completion(app, {
    prompt: PROMPT,
    n_predict: 2,
    temperature: 0,
    logit_bias: NO_EOS,
    cache_prompt: false,
  });
  t.equal(fresh.timings.cache_n, 0, 'cache_prompt: false decodes the whole prompt');
});

t.test('POST /completion: prompts as text, token ids, a mix, {prompt_string}, and several at once', async (t) => {
  const { app } = await makeHarness(t, model);
  const ids = tokensOf('The cat sat on the mat');
  const fromText = await completion(app, { prompt: 'The cat sat on the mat', n_predict: 3, temperature: 0 });
  const fromIds = await completion(app, { prompt: ids, n_predict: 3, temperature: 0 });
  t.equal(fromIds.content, fromText.content, 'token ids decode like their text');
  t.equal(fromIds.tokens_evaluated, ids.length);
  const [bos, ...rest] = ids;
  const mixed = await completion(app, {
    prompt: [bos, 'The cat', ...tokensOf(' sat on the mat').slice(1)],
    n_predict: 1,
    temperature: 0,
  });
  t.ok(mixed.tokens_evaluated >= rest.length, 'text and ids in one sequence');
  const object = await completion(app, {
    prompt: { prompt_string: 'The cat sat on the mat' },
    n_predict: 3,
    temperature: 0,
  });
  t.equal(object.content, fromText.content);

  const res = await app.inject({
    method: 'POST',
    url: '/completion',
    payload: { prompt: ['The cat sat on the mat', 'Once upon a time'], n_predict: 2, temperature: 0 },
  });
  const both = res.json() as Completion[];
  t.equal(both.length, 2, 'an array of prompts answers with an array');
  t.same(
    both.map((c) => c.index),
    [0, 1],
  );
  t.equal(
    both[0]?.content,
    (await completion(app, { prompt: 'The cat sat on the mat', n_predict: 2, temperature: 0 })).content,
  );

  for (const [prompt, param] of [
    [[{ nope: 1 }], 'prompt[0]'],
    [[1, 999999], 'prompt'],
    [5, 'prompt'],
  ] as const) {
    const bad = await app.inject({ method: 'POST', url: '/completion', payload: { prompt } });
    t.equal(bad.statusCode, 400, JSON.stringify(prompt));
    t.equal(errorOf(bad).param, param);
  }
});

t.test('POST /completion stop types: a stop word, end of generation, the limit', async (t) => {
  const { app } = await makeHarness(t, model);
  const free = await completion(app, { prompt: PROMPT, n_predict: 8, temperature: 0, logit_bias: NO_EOS });
  const word = free.content.slice(2, 5);
  const stopped = await completion(app, {
    prompt: PROMPT,
    n_predict: 8,
    temperature: 0,
    logit_bias: NO_EOS,
    stop: [word],
  });
  t.equal(stopped.stop_type, 'word');
  t.equal(stopped.stopping_word, word);
  t.equal(stopped.content, free.content.slice(0, free.content.indexOf(word)));
  // Pushing end-of-generation to the top ends at once.
  const eos = await completion(app, { prompt: PROMPT, n_predict: 8, temperature: 0, logit_bias: [[2, 100]] });
  t.equal(eos.stop_type, 'eos');
  t.equal(eos.tokens_predicted, 0);
});

t.test("POST /completion: max_tokens is n_predict's alias, as in llama-server (n_predict first)", async (t) => {
  const { app } = await makeHarness(t, model);
  const base = { prompt: PROMPT, temperature: 0, logit_bias: NO_EOS };
  const aliased = await completion(app, { ...base, max_tokens: 3 });
  t.match(aliased, { tokens_predicted: 3, stop_type: 'limit', truncated: false });
  t.match(aliased.generation_settings, { n_predict: 3 });
  t.match(await completion(app, { ...base, max_tokens: 3, n_predict: 5 }), { tokens_predicted: 5 });
  const res = await app.inject({ method: 'POST', url: '/completion', payload: { ...base, max_tokens: 0 } });
  t.equal(res.statusCode, 400);
  t.equal(errorOf(res).param, 'max_tokens');
});

t.test(
  'POST /completion stream: tokens without text (a special token not rendered) are sent, as counted',
  async (t) => {
    const { app } = await makeHarness(t, model);
    // BOS (id 1) at every step: counted, its text empty; sent with its id all the same, at the token limit and when
    // the generation is cut by t_max_predict_ms.
    for (const limits of [{ n_predict: 3 }, { n_predict: 100, t_max_predict_ms: 5 }]) {
      const res = await app.inject({
        method: 'POST',
        url: '/completion',
        payload: { prompt: PROMPT, logit_bias: [[1, 100]], stream: true, ...limits },
      });
      const events = sseEvents(res.body) as Completion[];
      const last = events.at(-1) as Completion;
      t.match(last, { stop: true, stop_type: 'limit', content: '' });
      t.ok(last.tokens_predicted >= 1 && last.tokens_predicted <= limits.n_predict, `${last.tokens_predicted} tokens`);
      const streamed = events.slice(0, -1).flatMap((e) => e.tokens);
      t.same(streamed, Array(last.tokens_predicted).fill(1), `${JSON.stringify(limits)}: every token counted is sent`);
    }
    const chat = await app.inject({
      method: 'POST',
      url: '/v1/chat/completions',
      payload: { messages: [{ role: 'user', content: 'hi' }], max_tokens: 3, logit_bias: { 1: 100 }, logprobs: true },
    });
    const body = chat.json() as {
      choices: { logprobs: { content: unknown[] } }[];
      usage: { completion_tokens: number };
    };
    t.equal(
      body.choices[0]?.logprobs.content.length,
      body.usage.completion_tokens,
      'chat: a logprob per token counted',
    );
  },
);

t.test('POST /completion stream: bare data events, the last with stop, timings and progress on request', async (t) => {
  const { app } = await makeHarness(t, model, { app: { ready: true } });
  const res = await app.inject({
    method: 'POST',
    url: '/completion',
    payload: {
      prompt: PROMPT.repeat(3),
      n_predict: 4,
      temperature: 0,
      logit_bias: NO_EOS,
      stream: true,
      return_progress: true,
      timings_per_token: true,
    },
  });
  t.equal(res.statusCode, 200);
  const events = sseEvents(res.body) as Array<Partial<Completion> & { prompt_progress?: Record<string, number> }>;
  t.not(events.at(-1), '[DONE]', 'no [DONE]: the native stream ends with its stop event');
  const progress = events.filter((e) => e.prompt_progress !== undefined);
  t.ok(progress.length >= 1);
  t.match(progress[0], { prompt_progress: { processed: 0, cache: 0 }, timings: { prompt_n: 0, prompt_ms: 0 } });
  t.equal(progress.at(-1)?.prompt_progress?.processed, progress.at(-1)?.prompt_progress?.total, 'all of the prompt');
  const text = events.filter((e) => e.prompt_progress === undefined && e.stop === false);
  t.equal(text.length, 4, 'one event per token');
  for (const e of text) t.ok(e.timings !== undefined, 'timings_per_token: each token event has the timings so far');
  const last = events.at(-1);
  t.match(last, { stop: true, stop_type: 'limit', tokens_predicted: 4 });
  t.equal(
    text.map((e) => e.content).join(''),
    (await completion(app, { prompt: PROMPT.repeat(3), n_predict: 4, temperature: 0, logit_bias: NO_EOS })).content,
  );
});

t.test(
  'POST /completion n_probs: the chosen token and the most likely ones, as log-probabilities or after sampling',
  async (t) => {
    const { app } = await makeHarness(t, model);
    const body = await completion(app, {
      prompt: PROMPT,
      n_predict: 3,
      temperature: 0,
      logit_bias: NO_EOS,
      n_probs: 4,
    });
    const probs = body.completion_probabilities ?? [];
    t.equal(probs.length, 3);
    for (const p of probs) {
      t.equal(p.top_logprobs?.length, 4);
      t.equal(p.top_logprobs?.[0]?.id, p.id, 'greedy: the chosen token is the most likely');
      t.ok((p.logprob ?? 1) <= 0);
      t.same(Buffer.from(p.bytes).toString('utf8'), p.token);
      const lp = p.top_logprobs?.map((x) => x.logprob) ?? [];
      t.same(
        lp,
        [...lp].sort((a, b) => b - a),
        'most likely first',
      );
    }
    const post = await completion(app, {
      prompt: PROMPT,
      n_predict: 2,
      temperature: 0,
      logit_bias: NO_EOS,
      n_probs: 3,
      post_sampling_probs: true,
    });
    for (const p of post.completion_probabilities ?? []) {
      t.ok(p.prob !== undefined && p.prob > 0 && p.prob <= 1, 'a probability, not a log');
      t.ok((p.top_probs?.length ?? 0) >= 1);
    }
  },
);

t.test('POST /completion context shift: off, a full slot ends truncated; on, generation goes past it', async (t) => {
  const ctx = 64;
  const prompt = tokensOf(PROMPT);
  const off = await makeHarness(t, model, { ctxPerSlot: ctx, slots: 1 });
  const full = await completion(off.app, { prompt: PROMPT, n_predict: 100, temperature: 0, logit_bias: NO_EOS });
  t.equal(full.tokens_predicted, ctx - prompt.length, 'as many as the slot holds');
  t.equal(full.truncated, true);
  t.equal(full.stop_type, 'limit');

  const on = await makeHarness(t, model, {
    ctxPerSlot: ctx,
    slots: 1,
    config: { defaults: { contextShift: true } },
  });
  const shifted = await completion(on.app, { prompt: PROMPT, n_predict: 100, temperature: 0, logit_bias: NO_EOS });
  t.equal(shifted.tokens_predicted, 100, 'the slot dropped old tokens and went on');
  t.equal(shifted.truncated, true);
  const [summary] = await on.endedCount(1);
  t.ok((summary?.shiftedTokens ?? 0) > 0, 'the decoder shifted its context');
});

t.test('/tokenize and /detokenize round trip; pieces; /apply-template renders without generating', async (t) => {
  const { app, ended } = await makeHarness(t, model);
  const tok = (payload: object) => app.inject({ method: 'POST', url: '/tokenize', payload });
  const plain = (await tok({ content: 'Hello world' })).json() as { tokens: number[] };
  t.same(plain.tokens, Array.from(model.tokenize('Hello world', { addSpecial: false, parseSpecial: true })));
  const special = (await tok({ content: 'Hello world', add_special: true })).json() as { tokens: number[] };
  t.equal(special.tokens[0], model.info.bos, 'add_special: the BOS first');
  t.same(special.tokens.slice(1), plain.tokens);
  const pieces = (await tok({ content: 'Hello world', with_pieces: true })).json() as {
    tokens: Array<{ id: number; piece: string }>;
  };
  t.same(
    pieces.tokens.map((p) => p.id),
    plain.tokens,
  );
  t.equal(
    pieces.tokens.map((p) => p.piece).join(''),
    Buffer.concat(plain.tokens.map((id) => model.tokenBytes(id))).toString('utf8'),
    "each piece is its token's text",
  );
  const back = (await app.inject({ method: 'POST', url: '/detokenize', payload: { tokens: plain.tokens } })).json() as {
    content: string;
  };
  t.equal(back.content.trim(), 'Hello world');
  const bad = await app.inject({ method: 'POST', url: '/detokenize', payload: { tokens: [model.info.nVocab] } });
  t.equal(bad.statusCode, 400);
  t.equal(errorOf(bad).param, 'tokens');

  const rendered = (
    await app.inject({
      method: 'POST',
      url: '/apply-template',
      payload: { messages: [{ role: 'user', content: 'What is a llama?' }] },
    })
  ).json() as { prompt: string };
  t.match(rendered.prompt, /What is a llama\?/);
  t.equal(ended.length, 0, 'nothing was generated');
});

t.test('GET /props: defaults, slots, template and build; POST /props only with --props', async (t) => {
  const { app } = await makeHarness(t, model, {
    config: { defaults: { temperature: 0.3, nPredict: 50 }, buildInfo: 'b123-abcdef0' },
  });
  const props = (await app.inject({ method: 'GET', url: '/props' })).json() as Record<string, unknown> & {
    default_generation_settings: { n_ctx: number; params: Record<string, unknown> };
  };
  t.equal(props.total_slots, 2);
  t.equal(props.default_generation_settings.n_ctx, 256);
  t.match(props.default_generation_settings.params, { temperature: 0.3, n_predict: 50, top_k: 40, min_p: 0.05 });
  t.equal(props.build_info, 'b123-abcdef0');
  t.equal(props.model_path, model.info.path);
  t.type(props.chat_template, 'string');
  t.ok((props.chat_template as string).length > 0, "the model's chat template");
  const post = await app.inject({ method: 'POST', url: '/props', payload: {} });
  t.equal(post.statusCode, 501);
  t.equal(errorOf(post).type, 'not_supported_error');
  const on = await makeHarness(t, model, { config: { endpoints: { props: true } } });
  t.equal((await on.app.inject({ method: 'POST', url: '/props', payload: {} })).statusCode, 200);
});

t.test(
  'GET /slots: one entry per slot; fail_on_no_slot answers 503 only when every slot is busy; off with --no-slots',
  async (t) => {
    const { app, scheduler } = await makeHarness(t, model, { slots: 1 });
    const idle = (await app.inject({ method: 'GET', url: '/slots' })).json() as Array<Record<string, unknown>>;
    t.equal(idle.length, 1);
    t.match(idle[0], { id: 0, n_ctx: 256, is_processing: false });
    t.equal((await app.inject({ method: 'GET', url: '/slots?fail_on_no_slot=1' })).statusCode, 200);
    // A long generation holds the only slot.
    const pending = app.inject({
      method: 'POST',
      url: '/completion',
      payload: { prompt: PROMPT, n_predict: 200, temperature: 0, logit_bias: { ...NO_EOS, [HELLO]: 5 } },
    });
    while (scheduler.busySlots === 0) await new Promise((r) => setImmediate(r));
    const busy = await app.inject({ method: 'GET', url: '/slots?fail_on_no_slot=1' });
    t.equal(busy.statusCode, 503);
    const slots = (await app.inject({ method: 'GET', url: '/slots' })).json() as Array<Record<string, unknown>>;
    t.equal(slots[0]?.is_processing, true);
    await pending;

    const off = await makeHarness(t, model, { config: { endpoints: { slots: false } } });
    const res = await off.app.inject({ method: 'GET', url: '/slots' });
    t.equal(res.statusCode, 501);
    t.match(errorOf(res).message, /--slots/);
  },
);

t.test(
  'slot actions: save, erase and restore a slot cache under --slot-save-path; names cannot escape it',
  async (t) => {
    const dir = await mkdtemp(join(tmpdir(), 'slots-'));
    t.teardown(() => rm(dir, { recursive: true, force: true }));
    const { app, decoder } = await makeHarness(t, model, { slots: 1, config: { slotSavePath: dir } });
    const action = (a: string, payload: object = {}, id = 0) =>
      app.inject({ method: 'POST', url: `/slots/${id}?action=${a}`, payload });
    await completion(app, { prompt: PROMPT, n_predict: 4, temperature: 0, logit_bias: NO_EOS });
    const cached = [...decoder.cachedPrefix(0)];
    t.ok(cached.length > 0);

    const saved = await action('save', { filename: 'story.bin' });
    t.equal(saved.statusCode, 200, saved.body);
    t.match(saved.json(), { id_slot: 0, filename: 'story.bin', n_saved: cached.length });
    t.same(await readdir(dir), ['story.bin']);

    const erased = await action('erase');
    t.match(erased.json(), { id_slot: 0, n_erased: cached.length });
    t.same(decoder.cachedPrefix(0), [], 'the slot holds nothing');

    const restored = await action('restore', { filename: 'story.bin' });
    t.match(restored.json(), { id_slot: 0, n_restored: cached.length });
    t.same(decoder.cachedPrefix(0), cached, 'the slot holds what it saved');
    const reuse = await completion(app, { prompt: PROMPT, n_predict: 1, temperature: 0, logit_bias: NO_EOS });
    t.equal(reuse.timings.cache_n, tokensOf(PROMPT).length - 1, 'the restored cache serves the prompt');

    const escapee = `escape-${basename(dir)}.bin`;
    for (const filename of [`../${escapee}`, '/etc/passwd', '.hidden', 'a/b', '', 'x\\y', '..', 'a\0b', 42]) {
      const res = await action('save', { filename });
      t.equal(res.statusCode, 400, `filename ${JSON.stringify(filename)} is refused`);
      t.match(errorOf(res), { type: 'invalid_request_error', param: 'filename' });
    }
    t.same(await readdir(dir), ['story.bin'], 'nothing was written elsewhere');
    t.notOk(existsSync(join(dir, '..', escapee)), 'not beside the folder either');
    // A good slot file outside the folder is not read back, by a relative or an absolute name.
    const outside = await mkdtemp(join(tmpdir(), 'outside-'));
    t.teardown(() => rm(outside, { recursive: true, force: true }));
    await copyFile(join(dir, 'story.bin'), join(outside, 'story.bin'));
    await action('erase');
    for (const filename of [`../${basename(outside)}/story.bin`, join(outside, 'story.bin')]) {
      const res = await action('restore', { filename });
      t.equal(res.statusCode, 400, `restore from ${filename} is refused`);
      t.match(errorOf(res), { param: 'filename' });
    }
    t.same(decoder.cachedPrefix(0), [], 'nothing was restored from outside');
    const missing = await action('restore', { filename: 'nope.bin' });
    t.equal(missing.statusCode, 400);
    t.notMatch(errorOf(missing).message, dir, 'the server folder is not named');
    t.equal((await action('save', { filename: 'x' }, 5)).statusCode, 400, 'no slot 5');

    const off = await makeHarness(t, model);
    t.equal((await off.app.inject({ method: 'POST', url: '/slots/0?action=erase', payload: {} })).statusCode, 501);
  },
);
