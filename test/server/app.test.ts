// The HTTP surface: health, auth, errors, /v1/models, /slots, request validation.

import { basename } from 'node:path';
import t from 'tap';
import type { ServedScheduler } from '../../src/server/options.ts';
import { loadModel } from '../helpers/models.ts';
import { errorOf, HELLO, makeHarness, NO_EOS, USER_HI } from './harness.ts';

const model = await loadModel('tiny');
t.teardown(() => model.dispose());

const CHAT = '/v1/chat/completions';
const COMPLETIONS = '/v1/completions';
const chat = (extra: Record<string, unknown> = {}) => ({ messages: USER_HI, temperature: 0, max_tokens: 4, ...extra });
const completion = (extra: Record<string, unknown> = {}) => ({
  prompt: 'Once upon a time',
  temperature: 0,
  max_tokens: 4,
  ...extra,
});

t.test('/health is 503 loading until markReady(), then 200; generation waits for it too', async (t) => {
  const { app } = await makeHarness(t, model, { app: {} });
  t.equal(app.serverState, 'loading');
  let res = await app.inject({ method: 'GET', url: '/health' });
  t.equal(res.statusCode, 503);
  // llama-server's answer while it loads, which load balancers and its clients read.
  t.match(res.json(), { error: { code: 503, message: 'Loading model', type: 'unavailable_error' } });
  res = await app.inject({ method: 'POST', url: CHAT, payload: chat() });
  t.equal(res.statusCode, 503);
  t.equal(errorOf(res).type, 'unavailable_error');
  t.equal(
    (await app.inject({ method: 'GET', url: '/v1/models' })).statusCode,
    503,
    'as llama-server: nothing but the web page answers while the model loads',
  );

  app.markReady();
  res = await app.inject({ method: 'GET', url: '/health' });
  t.equal(res.statusCode, 200);
  t.same(res.json(), { status: 'ok' });
  t.equal((await app.inject({ method: 'POST', url: CHAT, payload: chat() })).statusCode, 200);
});

t.test('API keys: 401 on every route but /health', async (t) => {
  const { app } = await makeHarness(t, model, { config: { apiKeys: ['sk-one', 'sk-two'] } });
  const routes = [
    { method: 'GET', url: '/v1/models' },
    { method: 'GET', url: '/slots' },
    { method: 'POST', url: CHAT, payload: chat() },
    { method: 'POST', url: COMPLETIONS, payload: completion() },
    { method: 'GET', url: '/no/such/route' },
    { method: 'POST', url: CHAT, payload: { not: 'valid' } },
  ] as const;
  for (const r of routes) {
    for (const headers of [
      {},
      { authorization: 'Bearer sk-wrong' },
      { authorization: 'sk-one' },
      { authorization: 'Basic sk-one' },
      { 'x-api-key': 'nope' },
    ]) {
      const res = await app.inject({ ...r, headers });
      t.equal(res.statusCode, 401, `${r.method} ${r.url} with ${JSON.stringify(headers)}`);
      t.same(errorOf(res), {
        message: errorOf(res).message,
        type: 'authentication_error',
        param: null,
        code: 'invalid_api_key',
      });
    }
  }
  const health = await app.inject({ method: 'GET', url: '/health' });
  t.equal(health.statusCode, 200, '/health is open');

  const ok = [
    [{ method: 'GET', url: '/v1/models' }, 200],
    [{ method: 'GET', url: '/slots' }, 200],
    [{ method: 'POST', url: CHAT, payload: chat() }, 200],
    [{ method: 'POST', url: COMPLETIONS, payload: completion() }, 200],
    [{ method: 'GET', url: '/no/such/route' }, 404],
    [{ method: 'POST', url: CHAT, payload: { not: 'valid' } }, 400],
  ] as const;
  for (const [r, status] of ok) {
    t.equal(
      (await app.inject({ ...r, headers: { authorization: 'Bearer sk-two' } })).statusCode,
      status,
      `${r.url} with the second key`,
    );
  }
  t.equal(
    (await app.inject({ method: 'GET', url: '/v1/models', headers: { authorization: 'bearer   sk-one' } })).statusCode,
    200,
    'scheme is case-insensitive',
  );
  t.equal(
    (await app.inject({ method: 'GET', url: '/v1/models', headers: { 'x-api-key': 'sk-one' } })).statusCode,
    200,
    'X-Api-Key as llama-server',
  );
});

t.test('no keys configured: nothing asks for one', async (t) => {
  const { app } = await makeHarness(t, model, { config: { apiKeys: [] } });
  t.equal((await app.inject({ method: 'GET', url: '/v1/models' })).statusCode, 200);
  t.equal((await app.inject({ method: 'GET', url: '/slots' })).statusCode, 200);
  t.equal(
    (await app.inject({ method: 'POST', url: CHAT, payload: chat(), headers: { authorization: 'Bearer whatever' } }))
      .statusCode,
    200,
  );
  t.equal((await app.inject({ method: 'POST', url: COMPLETIONS, payload: completion() })).statusCode, 200);
});

t.test('unknown routes and methods: 404 in the OpenAI shape', async (t) => {
  const { app } = await makeHarness(t, model);
  for (const [method, url] of [
    ['GET', '/v1/nothing'],
    ['GET', CHAT],
    ['DELETE', '/v1/models'],
    ['POST', '/v1/nothing/else?x=1'],
  ] as const) {
    const res = await app.inject({ method, url });
    t.equal(res.statusCode, 404, `${method} ${url}`);
    t.match(res.headers['content-type'], /application\/json/);
    const e = errorOf(res);
    t.equal(e.type, 'not_found_error');
    t.equal(e.param, null);
    t.notMatch(e.message, /\?x=1/, 'no query string echoed');
  }
  // Anthropic's routes answer in Anthropic's shape, a wrong method too.
  for (const [method, url] of [
    ['GET', '/v1/messages'],
    ['PUT', '/v1/messages/count_tokens?beta=true'],
  ] as const) {
    const res = await app.inject({ method, url });
    t.equal(res.statusCode, 404, `${method} ${url}`);
    t.match(res.json(), {
      type: 'error',
      error: { type: 'not_found_error', message: `Unknown route: ${method} ${url.split('?')[0]}` },
    });
  }
  // A body that can't be read before the route is known (no route takes DELETE here) is refused in that shape too.
  const empty = await app.inject({
    method: 'DELETE',
    url: '/v1/messages',
    headers: { 'content-type': 'application/json' },
    payload: '',
  });
  t.equal(empty.statusCode, 400);
  t.match(empty.json(), { type: 'error', error: { type: 'invalid_request_error', message: /empty/ } });
});

t.test('bodies: too large is 413, invalid JSON is 400 (not 500), any content type is read as JSON', async (t) => {
  const { app } = await makeHarness(t, model, { config: { bodyLimitBytes: 2048 } });
  const big = { messages: [{ role: 'user', content: 'x'.repeat(4096) }] };
  let res = await app.inject({ method: 'POST', url: CHAT, payload: big });
  t.equal(res.statusCode, 413);
  t.equal(errorOf(res).type, 'invalid_request_error');
  t.equal(errorOf(res).code, 'request_too_large');

  for (const payload of ['{"messages": [', '{messages: 1}', 'null x', '[1,]']) {
    res = await app.inject({ method: 'POST', url: CHAT, payload, headers: { 'content-type': 'application/json' } });
    t.equal(res.statusCode, 400, `invalid JSON ${payload}`);
    t.equal(errorOf(res).type, 'invalid_request_error');
    t.equal(errorOf(res).code, 'invalid_json');
  }
  res = await app.inject({ method: 'POST', url: CHAT, payload: '', headers: { 'content-type': 'application/json' } });
  t.equal(res.statusCode, 400, 'empty JSON body');
  // As llama-server: `curl -d '{...}'` (form encoding) and text/plain bodies are JSON too.
  res = await app.inject({ method: 'POST', url: CHAT, payload: 'hello', headers: { 'content-type': 'text/csv' } });
  t.equal(res.statusCode, 400, 'not JSON under another content type');
  t.equal(errorOf(res).code, 'invalid_json');
  for (const type of ['application/x-www-form-urlencoded', 'text/plain']) {
    res = await app.inject({
      method: 'POST',
      url: CHAT,
      payload: JSON.stringify({ messages: USER_HI, max_tokens: 1 }),
      headers: { 'content-type': type },
    });
    t.equal(res.statusCode, 200, `JSON sent as ${type}`);
  }
  res = await app.inject({ method: 'POST', url: CHAT });
  t.equal(res.statusCode, 400, 'no body at all');
  t.equal(errorOf(res).type, 'invalid_request_error');
});

t.test('chat request validation: 400 naming the field', async (t) => {
  const { app, ended } = await makeHarness(t, model);
  const cases: Array<[string, unknown, string | null, RegExp?]> = [
    ['missing messages', { model: 'x' }, 'messages', /Missing required parameter: 'messages'/],
    ['empty messages', { messages: [] }, 'messages', /fewer than 1/],
    ['messages not an array', { messages: 'hi' }, 'messages', /must be array/],
    [
      'unknown role',
      { messages: [{ role: 'function', content: 'x' }] },
      'messages[0].role',
      /must be one of 'system', 'developer', 'user', 'assistant', 'tool'/,
    ],
    [
      'second message bad role',
      {
        messages: [
          { role: 'user', content: 'x' },
          { role: 'robot', content: 'y' },
        ],
      },
      'messages[1].role',
    ],
    ['missing content', { messages: [{ role: 'user' }] }, 'messages[0].content', /Missing required/],
    [
      'content a number',
      { messages: [{ role: 'user', content: 5 }] },
      'messages[0].content',
      /must be string or array or null/,
    ],
    [
      'image part',
      { messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'x' } }] }] },
      'messages[0].content[0].type',
      /'image_url' .* is not supported/,
    ],
    ['temperature > 2', { ...chat(), temperature: 2.5 }, 'temperature', /<= 2/],
    ['temperature < 0', { ...chat(), temperature: -0.1 }, 'temperature', />= 0/],
    ['temperature a string', { ...chat(), temperature: 'hot' }, 'temperature', /must be number or null/],
    ['top_p > 1', { ...chat(), top_p: 1.5 }, 'top_p'],
    ['top_k negative', { ...chat(), top_k: -1 }, 'top_k'],
    ['top_k fractional', { ...chat(), top_k: 1.5 }, 'top_k', /integer/],
    ['min_p > 1', { ...chat(), min_p: 2 }, 'min_p'],
    ['seed fractional', { ...chat(), seed: 0.5 }, 'seed'],
    ['presence_penalty > 2', { ...chat(), presence_penalty: 3 }, 'presence_penalty', /<= 2/],
    ['frequency_penalty < -2', { ...chat(), frequency_penalty: -2.5 }, 'frequency_penalty', />= -2/],
    ['logit_bias key outside the vocabulary', { ...chat(), logit_bias: { '32000': 1 } }, 'logit_bias', /0\.\.31999/],
    ['logit_bias pairs not pairs', { ...chat(), logit_bias: [1, 2] }, 'logit_bias[0]'],
    ['stop a number', { ...chat(), stop: 5 }, 'stop', /string or array or null/],
    ['stop array of numbers', { ...chat(), stop: [1] }, 'stop[0]'],
    ['max_tokens 0', { ...chat(), max_tokens: 0 }, 'max_tokens', />= 1/],
    ['max_tokens fractional', { ...chat(), max_tokens: 2.5 }, 'max_tokens'],
    ['max_completion_tokens a string', { ...chat(), max_completion_tokens: '5' }, 'max_completion_tokens'],
    ['stream a string', { ...chat(), stream: 'yes' }, 'stream', /boolean/],
    [
      'stream_options.include_usage a string',
      { ...chat(), stream: true, stream_options: { include_usage: 'yes' } },
      'stream_options.include_usage',
    ],
    ['n = 17', { ...chat(), n: 17 }, 'n', /<= 16/],
    ['n = 0', { ...chat(), n: 0 }, 'n', /must be >= 1/],
    ['top_logprobs > 20', { ...chat(), logprobs: true, top_logprobs: 21 }, 'top_logprobs', /<= 20/],
    ['user a number', { ...chat(), user: 5 }, 'user'],
    ['model a number', { ...chat(), model: 5 }, 'model'],
    ['body an array', [chat()], null, /must be object/],
  ];
  for (const [name, payload, param, message] of cases) {
    const res = await app.inject({ method: 'POST', url: CHAT, payload: payload as object });
    t.equal(res.statusCode, 400, `${name}: status`);
    const e = errorOf(res);
    t.equal(e.type, 'invalid_request_error', `${name}: type`);
    t.equal(e.param, param, `${name}: param`);
    if (param !== null) t.match(e.message, param.split(/[.[]/)[0] ?? '', `${name}: the message names the field`);
    if (message) t.match(e.message, message, `${name}: message`);
  }
  t.equal(ended.length, 0, 'nothing reached the scheduler');

  // Accepted variations: nulls for optional fields, n = 1, unknown fields ignored, text parts, developer role.
  for (const payload of [
    {
      ...chat(),
      temperature: null,
      top_p: null,
      stop: null,
      max_tokens: 2,
      n: 1,
      user: null,
      seed: null,
      logit_bias: null,
      stream: null,
    },
    {
      ...chat(),
      tools_choice_unknown_field: 'ignored',
      frequency_penalty: 0.5,
      presence_penalty: -0.5,
      top_k: 40,
      min_p: 0.05,
      top_p: 0.9,
      seed: -1,
    },
    {
      messages: [
        { role: 'developer', content: 'be brief' },
        { role: 'user', content: [{ type: 'text', text: 'hi' }] },
        { role: 'assistant', content: null },
      ],
      max_tokens: 2,
    },
    { ...chat(), logit_bias: { [String(HELLO)]: 100, ...NO_EOS }, stop: 'zzz', max_completion_tokens: 2 },
  ]) {
    const res = await app.inject({ method: 'POST', url: CHAT, payload });
    t.equal(res.statusCode, 200, JSON.stringify(payload));
  }
});

t.test('completion request validation', async (t) => {
  const { app, ended } = await makeHarness(t, model);
  const cases: Array<[string, unknown, string | null]> = [
    ['missing prompt', { max_tokens: 2 }, 'prompt'],
    ['prompt a number', { prompt: 5 }, 'prompt'],
    ['prompt an array of objects', { prompt: [{ a: 1 }] }, 'prompt[0]'],
    ['suffix', { ...completion(), suffix: 'end' }, 'suffix'],
    ['best_of 2', { ...completion(), best_of: 2 }, 'best_of'],
    ['n 17', { ...completion(), n: 17 }, 'n'],
    ['temperature 3', { ...completion(), temperature: 3 }, 'temperature'],
  ];
  for (const [name, payload, param] of cases) {
    const res = await app.inject({ method: 'POST', url: COMPLETIONS, payload: payload as object });
    t.equal(res.statusCode, 400, name);
    t.equal(errorOf(res).type, 'invalid_request_error', name);
    t.equal(errorOf(res).param, param, name);
  }
  t.equal(ended.length, 0);
});

t.test('a prompt longer than a slot: 400 exceed_context_size_error with the counts', async (t) => {
  const { app, ended } = await makeHarness(t, model, { ctxPerSlot: 64 });
  const long = 'word '.repeat(100);
  for (const [url, payload] of [
    [CHAT, { messages: [{ role: 'user', content: long }] }],
    [COMPLETIONS, { prompt: long }],
    [CHAT, { messages: [{ role: 'user', content: long }], stream: true }],
  ] as const) {
    const res = await app.inject({ method: 'POST', url, payload });
    t.equal(res.statusCode, 400);
    t.match(res.headers['content-type'], /application\/json/, 'refused before any stream starts');
    const e = errorOf(res);
    t.equal(e.type, 'exceed_context_size_error');
    t.equal(e.code, 'context_length_exceeded');
    t.equal(e.n_ctx, 64);
    t.ok(
      typeof e.n_prompt_tokens === 'number' && e.n_prompt_tokens > 64,
      `n_prompt_tokens ${String(e.n_prompt_tokens)}`,
    );
  }
  t.equal(ended.length, 0, 'never submitted');
});

t.test('queue full: 429 with Retry-After', async (t) => {
  const { app, scheduler, startedCount } = await makeHarness(t, model, {
    ctxPerSlot: 1024,
    scheduler: { maxQueuedRequests: 0, retryAfterSeconds: 2 },
  });
  // Two long generations take both slots; with no queue, the third is refused.
  const busy = [1, 2].map(() =>
    app.inject({ method: 'POST', url: CHAT, payload: chat({ max_tokens: 800, logit_bias: NO_EOS }) }),
  );
  await startedCount(2);
  const res = await app.inject({ method: 'POST', url: CHAT, payload: chat({ stream: true }) });
  t.equal(res.statusCode, 429);
  t.equal(res.headers['retry-after'], '2');
  t.equal(errorOf(res).type, 'rate_limit_exceeded');
  t.equal(errorOf(res).code, 'queue_full');
  await scheduler.close(0);
  for (const r of await Promise.all(busy)) t.equal(r.statusCode, 503, 'the running ones end with shutdown');
});

t.test('shutting down: 503 from the scheduler, and from the app once close() starts', async (t) => {
  const { app, scheduler } = await makeHarness(t, model);
  await scheduler.close(0);
  const res = await app.inject({ method: 'POST', url: CHAT, payload: chat() });
  t.equal(res.statusCode, 503);
  t.equal(errorOf(res).type, 'unavailable_error');
  t.equal(errorOf(res).code, 'shutting_down');

  // Requests that reach a closing app on kept-alive connections get 503 too (inject can't reach a closed app;
  // the listening-server tests cover that path). The state is visible here:
  const { app: app2 } = await makeHarness(t, model);
  await app2.close();
  t.equal(app2.serverState, 'shutting_down');
});

t.test('an unexpected failure is a 500 that leaks nothing', async (t) => {
  const faulty = (real: ServedScheduler): ServedScheduler => ({
    submit: () => {
      throw new Error('EACCES /var/secret/llama.node at 0x7fff');
    },
    snapshot: () => real.snapshot(),
    slotAction: (slot, action, file) => real.slotAction(slot, action, file),
  });
  const { app } = await makeHarness(t, model, { wrap: faulty });
  for (const payload of [chat(), chat({ stream: true })]) {
    const res = await app.inject({ method: 'POST', url: CHAT, payload });
    t.equal(res.statusCode, 500);
    t.equal(errorOf(res).type, 'server_error');
    t.notMatch(res.body, /secret|EACCES|0x7fff/);
  }
});

t.test('GET /v1/models', async (t) => {
  const { app } = await makeHarness(t, model, { ctxPerSlot: 512 });
  const res = await app.inject({ method: 'GET', url: '/v1/models' });
  t.equal(res.statusCode, 200);
  const body = res.json() as {
    object: string;
    data: Array<Record<string, unknown> & { meta: Record<string, unknown> }>;
  };
  t.equal(body.object, 'list');
  t.equal(body.data.length, 1);
  const m = body.data[0];
  t.equal(m?.id, basename(model.info.path), 'the file name by default');
  t.equal(m?.object, 'model');
  t.ok(Number.isInteger(m?.created) && (m?.created as number) > 1_600_000_000, 'created in seconds');
  t.equal(m?.owned_by, 'llamacpp');
  t.match(m?.meta, {
    n_ctx: 512,
    n_ctx_train: model.info.nCtxTrain,
    n_params: model.info.nParams,
    size: model.info.sizeBytes,
  });

  const { app: aliased } = await makeHarness(t, model, { config: { aliases: ['tiny-alias'] } });
  t.equal(
    ((await aliased.inject({ method: 'GET', url: '/v1/models' })).json() as typeof body).data[0]?.id,
    'tiny-alias',
  );
  const c = await aliased.inject({ method: 'POST', url: CHAT, payload: chat() });
  t.equal((c.json() as { model: string }).model, 'tiny-alias', 'responses carry the id');
});

t.test('GET /slots shows each slot and the fairness key of its client', async (t) => {
  const { app, steps, endedCount } = await makeHarness(t, model, {
    ctxPerSlot: 1024,
    config: { apiKeys: ['sk-secret-key'] },
  });
  const auth = { authorization: 'Bearer sk-secret-key' };
  let res = await app.inject({ method: 'GET', url: '/slots', headers: auth });
  t.equal(res.statusCode, 200);
  t.match(res.json(), [
    { id: 0, state: 'idle', request: null },
    { id: 1, state: 'idle', request: null },
  ]);
  // A stream keeps its slot while the test looks; the stream opens once the request has a slot.
  const stream = await app.inject({
    method: 'POST',
    url: CHAT,
    headers: auth,
    payload: chat({ stream: true, max_tokens: 900, logit_bias: NO_EOS, user: 'alice' }),
    payloadAsStream: true,
  });
  res = await app.inject({ method: 'GET', url: '/slots', headers: auth });
  const slots = res.json() as Array<{ request: { client: string } | null }>;
  const clients = slots.map((s) => s.request?.client).filter((c) => c !== undefined);
  t.equal(clients.length, 1);
  t.match(clients[0], /^key:[0-9a-f]{12}$/, 'the key wins over user, and appears only as a digest');
  t.notMatch(res.body, /sk-secret-key/);
  stream.raw.res.destroy();
  const [summary] = await endedCount(1);
  t.equal(summary?.reason, 'cancelled');
  t.same(await steps.states(), ['idle', 'idle'], 'the decoder let the slot go too');
});

t.test('logging redacts API keys, at every level', async (t) => {
  const lines: string[] = [];
  const stream = { write: (line: string) => void lines.push(line) };
  const levels = ['trace', 'debug', 'info', 'warn', 'error', 'fatal'] as const;
  const { app } = await makeHarness(t, model, {
    config: { apiKeys: ['sk-log-secret'] },
    app: { ready: true, logRequests: true, logger: { level: 'trace', stream } },
    // Headers and the whole request logged at each level, as an operator's hook might.
    setup: (app) =>
      app.addHook('onRequest', async (request) => {
        for (const level of levels) request.log[level]({ headers: request.headers, req: request.raw }, 'headers');
      }),
  });
  await app.inject({ method: 'GET', url: '/v1/models', headers: { authorization: 'Bearer sk-log-secret' } });
  await app.inject({ method: 'GET', url: '/v1/models', headers: { 'x-api-key': 'sk-log-secret' } });
  await app.inject({ method: 'GET', url: '/v1/models', headers: { authorization: 'Bearer sk-log-secretX' } });
  const levelsSeen = new Set(lines.map((l) => (JSON.parse(l) as { level: number }).level));
  t.same([...levelsSeen].sort(), [10, 20, 30, 40, 50, 60], 'lines at every level');
  t.ok(
    lines.some((l) => l.includes('"authorization":"[redacted]"')),
    'the header is logged, redacted',
  );
  t.ok(lines.some((l) => l.includes('"x-api-key":"[redacted]"')));
  t.notOk(
    lines.some((l) => l.includes('log-secret')),
    'the key is in no line',
  );
  const request = lines.map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => l.msg === 'request');
  t.match(request, { method: 'GET', url: '/v1/models', status: 200 }, 'one line per request');
});

t.test("a chat template that raises: 400 with the template's own message, nothing reaches the scheduler", async (t) => {
  const { app, ended } = await makeHarness(t, model, {
    chat: {
      template:
        "{% for m in messages %}{% if (m.role == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant') }}{% endif %}{{ m.content }}{% endfor %}",
    },
  });
  const res = await app.inject({
    method: 'POST',
    url: CHAT,
    payload: { messages: [...USER_HI, ...USER_HI], max_tokens: 2 },
  });
  t.equal(res.statusCode, 400);
  t.equal(errorOf(res).type, 'invalid_request_error');
  t.equal(errorOf(res).code, 'template_error');
  t.match(errorOf(res).message, /Conversation roles must alternate user\/assistant/);
  t.equal(ended.length, 0);
  const ok = await app.inject({ method: 'POST', url: CHAT, payload: chat() });
  t.equal(ok.statusCode, 200, 'a conversation the template takes is answered');
  t.equal(
    (await app.inject({ method: 'POST', url: COMPLETIONS, payload: completion() })).statusCode,
    200,
    'completions need no template',
  );
});
