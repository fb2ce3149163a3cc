// The fuzzer's rules, each shown holding on an answer in its route's shape and breaking on one that is not: the
// answers are written here by hand, in the shapes the server sends (test/fuzz/run.test.ts shows real ones pass).
import t from 'tap';
import { errorShapeProblem, type FuzzResponse, type SentRequest, violations } from '../../src/fuzz/invariants.ts';

const ID = { 'x-request-id': 'abc' };
const JSON_TYPE = { 'content-type': 'application/json; charset=utf-8', ...ID };
const SSE_TYPE = { 'content-type': 'text/event-stream; charset=utf-8', ...ID };
const error = (e: object) => JSON.stringify({ error: e });
const CTX = { ctxPerSlot: 128 };

const sent = (url: string, body: object = {}, server: SentRequest['server'] = 'generation'): SentRequest => ({
  method: 'POST',
  url,
  server,
  payload: Buffer.from(JSON.stringify(body)),
});
const ok = (body: unknown): FuzzResponse => ({ status: 200, headers: JSON_TYPE, body: JSON.stringify(body) });
/** An SSE body: named events for [name, data] pairs, bare data events for data alone. */
const sse = (events: readonly (unknown | [string, unknown])[]): FuzzResponse => ({
  status: 200,
  headers: SSE_TYPE,
  body: events
    .map((e) =>
      Array.isArray(e) && e.length === 2 && typeof e[0] === 'string'
        ? `event: ${e[0]}\ndata: ${JSON.stringify(e[1])}\n\n`
        : `data: ${typeof e === 'string' ? e : JSON.stringify(e)}\n\n`,
    )
    .join(''),
});
/** A copy of `value` with `edit` applied (fixtures stay untouched). */
const edited = <T>(value: T, edit: (v: T) => void): T => {
  const copy = structuredClone(value);
  edit(copy);
  return copy;
};

t.test('an OpenAI error passes; anything else in its place is named', async (t) => {
  t.same(
    violations({ status: 400, headers: JSON_TYPE, body: error({ message: 'm', type: 't', param: null, code: 'c' }) }),
    [],
  );
  t.match(
    violations({ status: 500, headers: JSON_TYPE, body: error({ message: 'm', type: 't', param: null, code: null }) }),
    ['status 500'],
  );
  t.match(violations({ status: 400, headers: JSON_TYPE, body: '{"error":"text"}' }), [/no error object/]);
  t.match(violations({ status: 400, headers: JSON_TYPE, body: error({ message: 'm', type: 't', code: null }) }), [
    /param/,
  ]);
  t.match(
    violations({ status: 400, headers: JSON_TYPE, body: error({ message: '', type: 't', param: null, code: null }) }),
    [/message/],
  );
  t.match(violations({ status: 413, headers: JSON_TYPE, body: 'Payload Too Large' }), [/not JSON/]);
  t.match(
    violations({
      status: 400,
      headers: { 'content-type': 'text/plain', ...ID },
      body: error({ message: 'm', type: 't', param: null, code: null }),
    }),
    [/content-type/],
  );
  t.equal(errorShapeProblem({ error: { message: 'm', type: 't', param: 'p', code: 'c', extra: 1 } }), null);
});

t.test("Anthropic's routes answer errors in Anthropic's shape, whatever the status", async (t) => {
  const anthropic = JSON.stringify({ type: 'error', error: { type: 'not_found_error', message: 'm' } });
  const openai = error({ message: 'm', type: 't', param: null, code: null });
  for (const url of ['/v1/messages', '/v1/messages/count_tokens']) {
    t.same(violations({ status: 404, headers: JSON_TYPE, body: anthropic }, sent(url)), [], url);
    t.match(violations({ status: 400, headers: JSON_TYPE, body: openai }, sent(url)), [/not in Anthropic's shape/]);
  }
  t.match(violations({ status: 400, headers: JSON_TYPE, body: anthropic }, sent('/v1/chat/completions')), [
    /not in OpenAI's shape/,
  ]);
});

t.test('every response carries a sane X-Request-Id', async (t) => {
  t.same(violations({ status: 200, headers: { 'x-request-id': 'r-1' }, body: '{}' }), []);
  t.match(violations({ status: 200, headers: {}, body: '{}' }), [/x-request-id/]);
  t.match(violations({ status: 200, headers: { 'x-request-id': 'a b' }, body: '{}' }), [/x-request-id/]);
});

t.test(
  'streams: events are JSON, errors in shape and not server errors, [DONE] last where the route sends it',
  async (t) => {
    t.same(violations(sse([{ a: 1 }, '[DONE]'])), []);
    t.match(violations(sse([{ a: 1 }])), ['stream does not end with [DONE]']);
    t.match(violations(sse([{ a: 1 }, '[DONE]', { a: 2 }])), [/\[DONE\] is not the last/]);
    t.match(violations(sse(['{oops', '[DONE]'])), [/not JSON/]);
    const serverError = { error: { message: 'm', type: 'server_error', param: null, code: null } };
    t.match(violations(sse([serverError, '[DONE]'])), ['stream error is a server_error']);
    const timeout = { error: { message: 'm', type: 'timeout_error', param: null, code: null } };
    t.same(violations(sse([timeout, '[DONE]'])), []);
    t.match(violations(sse([timeout, { a: 1 }, '[DONE]'])), ['events after a stream error']);
    // llama-server's /completion ends without [DONE], its last event the result with stop: true.
    const last = { content: '', stop: true, tokens: [], tokens_predicted: 1, tokens_evaluated: 3, stop_type: 'limit' };
    const chunk = { content: 'a', stop: false, tokens: [7] };
    t.same(violations(sse([chunk, last]), sent('/completion', { stream: true, n_predict: 1 }), CTX), []);
    t.match(violations(sse([chunk, last, '[DONE]']), sent('/completion', { stream: true }), CTX), [
      /\[DONE\] on a route/,
    ]);
    t.match(violations(sse([chunk, chunk, last]), sent('/completion', { stream: true, n_predict: 1 }), CTX), [
      /2 token ids streamed, but completion_tokens 1/,
    ]);
    t.match(violations(sse([chunk, last]), sent('/completion', { stream: false }), CTX), [/did not ask for one/]);
  },
);

const usage = (prompt: number, completion: number, cached = 0) => ({
  prompt_tokens: prompt,
  completion_tokens: completion,
  total_tokens: prompt + completion,
  prompt_tokens_details: { cached_tokens: cached },
});

const chatCompletion = {
  id: 'chatcmpl-1',
  object: 'chat.completion',
  created: 1,
  model: 'm',
  system_fingerprint: 'b0',
  choices: [{ index: 0, message: { role: 'assistant', content: 'hi' }, logprobs: null, finish_reason: 'length' }],
  usage: usage(20, 4, 3),
};

t.test('chat.completion: shape, usage, finish reasons, n choices, the token limit', async (t) => {
  const chat = (body: object) => sent('/v1/chat/completions', body);
  t.same(violations(ok(chatCompletion), chat({ max_tokens: 4 }), CTX), []);
  t.match(violations(ok(edited(chatCompletion, (c) => delete (c as Partial<typeof c>).id)), chat({}), CTX), [
    /chat.completion is not in its shape: \/ must have required property 'id'/,
  ]);
  t.match(violations(ok(edited(chatCompletion, (c) => (c.usage.total_tokens = 25))), chat({ max_tokens: 4 }), CTX), [
    'usage.total_tokens 25 != prompt 20 + completion 4',
  ]);
  t.match(
    violations(
      ok(edited(chatCompletion, (c) => (c.usage.prompt_tokens_details.cached_tokens = 21))),
      chat({ max_tokens: 4 }),
      CTX,
    ),
    [/cached_tokens 21 > prompt_tokens 20/],
  );
  t.match(violations(ok(chatCompletion), chat({ max_tokens: 3 }), CTX), [/past the request's limit of 3/, /cut at/]);
  t.match(violations(ok(chatCompletion), chat({ max_tokens: 9 }), CTX), [
    /cut at the token limit after 4 tokens, the limit being 9/,
  ]);
  t.same(violations(ok(chatCompletion), chat({ max_tokens: 9, t_max_predict_ms: 5 }), CTX), [], 'time-limited');
  const timings = { cache_n: 3, prompt_n: 17, predicted_n: 4 };
  t.same(violations(ok({ ...chatCompletion, timings }), chat({ max_tokens: 4 }), CTX), [], 'timings agree');
  t.match(
    violations(ok({ ...chatCompletion, timings: { ...timings, predicted_n: 5 } }), chat({ max_tokens: 4 }), CTX),
    [/timings.predicted_n 5, usage.completion_tokens 4/],
  );
  t.match(
    violations(
      ok({ ...chatCompletion, timings: { ...timings, prompt_n: 16, cache_n: 4 } }),
      chat({ max_tokens: 4 }),
      CTX,
    ),
    [/timings.cache_n 4, usage cached_tokens 3/],
  );
  t.same(violations(ok(chatCompletion), chat({ max_completion_tokens: 4, max_tokens: 2 }), CTX), [], 'its own first');
  t.match(violations(ok(chatCompletion), chat({ max_tokens: 4, n: 2 }), CTX), [
    /choice indexes \[0\], expected \[0,1\]/,
  ]);
  t.match(
    violations(
      ok(edited(chatCompletion, (c) => ((c.choices[0] as { finish_reason: string }).finish_reason = 'tool_calls'))),
      chat({}),
      CTX,
    ),
    [/finish_reason tool_calls without a tool call/],
  );
  t.match(
    violations(
      ok(edited(chatCompletion, (c) => ((c.choices[0] as { finish_reason: string }).finish_reason = 'content_filter'))),
      chat({}),
      CTX,
    ),
    [/'content_filter' is not one this server gives/],
  );
  const withLogprobs = edited(chatCompletion, (c) => {
    (c.choices[0] as { logprobs: unknown }).logprobs = {
      content: [1, 2, 3].map(() => ({ token: 'a', logprob: -1, bytes: [97], top_logprobs: [] })),
    };
  });
  t.match(violations(ok(withLogprobs), chat({ max_tokens: 4, logprobs: true }), CTX), [
    /3 logprobs entries, but completion_tokens 4/,
  ]);
  t.same(
    violations(ok(withLogprobs), chat({ max_tokens: 4, logprobs: true, stop: ['x'] }), CTX),
    [],
    'a stop string eats tokens',
  );
  t.match(violations(ok(withLogprobs), chat({ max_tokens: 4 }), CTX), [/logprobs not asked, given/]);
  t.match(violations(ok(edited(chatCompletion, (c) => (c.usage = usage(126, 4)))), chat({}), CTX), [
    /past the slot's room of 2/,
  ]);
  t.match(violations(ok(chatCompletion), sent('/v1/chat/completions', {}, 'embeddings'), CTX), [
    /chat answered 200 on an embedding server/,
  ]);
});

const chunk = (delta: object, finish: string | null, index = 0) => ({
  id: 'chatcmpl-1',
  object: 'chat.completion.chunk',
  created: 1,
  model: 'm',
  choices: [{ index, delta, logprobs: null, finish_reason: finish }],
  usage: null,
});
const usageChunk = {
  id: 'chatcmpl-1',
  object: 'chat.completion.chunk',
  created: 1,
  model: 'm',
  choices: [],
  usage: usage(20, 2),
};

t.test('chat streams: chunks in shape, one finish per choice, the usage chunk last with include_usage', async (t) => {
  const body = { stream: true, stream_options: { include_usage: true }, max_tokens: 2 };
  const good = [
    chunk({ role: 'assistant', content: null }, null),
    chunk({ content: 'a' }, null),
    chunk({}, 'length'),
    usageChunk,
    '[DONE]',
  ];
  t.same(violations(sse(good), sent('/v1/chat/completions', body), CTX), []);
  t.match(violations(sse(good.slice(0, -1)), sent('/v1/chat/completions', body), CTX), [
    'stream does not end with [DONE]',
  ]);
  t.match(
    violations(
      sse([...good.slice(0, 3), chunk({}, 'stop'), usageChunk, '[DONE]']),
      sent('/v1/chat/completions', body),
      CTX,
    ),
    [/choice 0: a chunk after its finish_reason/],
  );
  t.match(violations(sse([good[0], good[1], good[2], '[DONE]']), sent('/v1/chat/completions', body), CTX), [
    /0 usage chunks with include_usage/,
  ]);
  t.match(violations(sse(good), sent('/v1/chat/completions', { stream: true, max_tokens: 2 }), CTX), [
    /usage streamed without stream_options.include_usage/,
  ]);
  t.match(violations(sse(good), sent('/v1/chat/completions', { ...body, n: 2 }), CTX), [
    /stream finish_reason: choice indexes \[0\], expected \[0,1\]/,
  ]);
  t.match(violations(sse(good), sent('/v1/chat/completions', { ...body, max_tokens: 1 }), CTX), [
    /past the request's limit of 1/,
  ]);
  t.match(
    violations(sse([chunk({ content: 7 }, null), '[DONE]']), sent('/v1/chat/completions', { stream: true }), CTX),
    [/chat.completion.chunk is not in its shape/],
  );
});

t.test('text completions: n choices, or one per prompt; no tool_calls finish', async (t) => {
  const completion = {
    id: 'cmpl-1',
    object: 'text_completion',
    created: 1,
    model: 'm',
    choices: [
      { index: 0, text: 'a', logprobs: null, finish_reason: 'stop' },
      { index: 1, text: 'b', logprobs: null, finish_reason: 'length' },
    ],
    usage: usage(10, 5),
  };
  t.same(violations(ok(completion), sent('/v1/completions', { prompt: ['a', 'b'], max_tokens: 4 }), CTX), []);
  t.same(violations(ok(completion), sent('/v1/completions', { prompt: 'a', n: 2 }), CTX), []);
  t.match(violations(ok(completion), sent('/v1/completions', { prompt: 'a' }), CTX), [
    /choice indexes \[0,1\], expected \[0\]/,
  ]);
  t.match(violations(ok(completion), sent('/v1/completions', { prompt: [1, 2, 3], n: 2, max_tokens: 2 }), CTX), [
    /past the request's limit of 2/,
  ]);
  const tools = edited(completion, (c) => ((c.choices[0] as { finish_reason: string }).finish_reason = 'tool_calls'));
  t.match(violations(ok(tools), sent('/v1/completions', { prompt: ['a', 'b'] }), CTX), [
    /text_completion is not in its shape/,
  ]);
});

t.test("/completion: n_predict first, then max_tokens (llama-server's alias)", async (t) => {
  const result = { content: 'abc', stop: true, tokens: [], tokens_predicted: 9, tokens_evaluated: 3, stop_type: 'eos' };
  t.same(violations(ok(result), sent('/completion', { n_predict: 9, max_tokens: 2 }), CTX), []);
  t.match(violations(ok(result), sent('/completion', { max_tokens: 2 }), CTX), [/past the request's limit of 2/]);
  t.match(violations(ok({ ...result, stop_type: 'limit' }), sent('/completion', { max_tokens: 12 }), CTX), [
    /cut at the token limit after 9 tokens, the limit being 12/,
  ]);
  t.same(
    violations(
      ok({ tokens_predicted: 99 }),
      sent('/completion', { max_tokens: 2, response_fields: ['tokens_predicted'] }),
      CTX,
    ),
    [],
    'only the fields asked for',
  );
  t.same(violations(ok([result, result]), sent('/completion', { prompt: ['a', 'b'] }), CTX), [], 'several prompts');
});

const response = {
  id: 'resp_1',
  object: 'response',
  created_at: 1,
  completed_at: 2,
  status: 'incomplete',
  error: null,
  incomplete_details: { reason: 'max_output_tokens' },
  model: 'm',
  instructions: null,
  metadata: {},
  parallel_tool_calls: true,
  temperature: 0.8,
  top_p: 0.95,
  tool_choice: 'auto',
  tools: [],
  output: [
    {
      type: 'message',
      id: 'msg_1',
      status: 'incomplete',
      role: 'assistant',
      content: [{ type: 'output_text', text: 'ab', annotations: [], logprobs: [] }],
    },
  ],
  usage: {
    input_tokens: 20,
    input_tokens_details: { cached_tokens: 0 },
    output_tokens: 2,
    output_tokens_details: { reasoning_tokens: 0 },
    total_tokens: 22,
  },
};

t.test('the Responses API: its object, status and incomplete_details, usage, the token limit', async (t) => {
  const req = sent('/v1/responses', { input: 'hi', max_output_tokens: 2 });
  t.same(violations(ok(response), req, CTX), []);
  t.match(violations(ok({ ...response, incomplete_details: null }), req, CTX), [
    /incomplete without incomplete_details/,
  ]);
  t.match(violations(ok({ ...response, status: 'completed' }), req, CTX), [/status completed with incomplete_details/]);
  t.match(violations(ok(response), sent('/v1/responses', { input: 'hi', max_output_tokens: 5 }), CTX), [
    /cut at the token limit after 2 tokens, the limit being 5/,
  ]);
  t.match(violations(ok(edited(response, (r) => (r.usage.total_tokens = 2))), req, CTX), [
    /usage.total_tokens 2 != input 20 \+ output 2/,
  ]);
  t.match(violations(ok({ ...response, status: 'failed' }), req, CTX), [/final response with status 'failed'/]);
  const call = edited(response, (r) => {
    (r.output as unknown[]).push({
      type: 'function_call',
      id: 'fc_1',
      call_id: 'call_1',
      name: 'f',
      arguments: '{}',
      status: 'completed',
    });
  });
  t.match(violations(ok(call), req, CTX), [/a function_call without tools/]);
});

t.test(
  'Responses streams: in shape, numbered, created first, one terminal event last, text = its deltas',
  async (t) => {
    const req = sent('/v1/responses', { input: 'hi', max_output_tokens: 2, stream: true });
    const started = {
      ...response,
      status: 'in_progress',
      incomplete_details: null,
      completed_at: null,
      output: [],
      usage: null,
    };
    const item = { type: 'message', id: 'msg_1', status: 'in_progress', role: 'assistant', content: [] };
    const at = { item_id: 'msg_1', output_index: 0 };
    const part = { type: 'output_text', text: '', annotations: [], logprobs: [] };
    const events: [string, Record<string, unknown>][] = [
      ['response.created', { response: started }],
      ['response.in_progress', { response: started }],
      ['response.output_item.added', { output_index: 0, item }],
      ['response.content_part.added', { ...at, content_index: 0, part }],
      ['response.output_text.delta', { ...at, content_index: 0, delta: 'a', logprobs: [] }],
      ['response.output_text.delta', { ...at, content_index: 0, delta: 'b', logprobs: [] }],
      ['response.output_text.done', { ...at, content_index: 0, text: 'ab', logprobs: [] }],
      ['response.content_part.done', { ...at, content_index: 0, part: { ...part, text: 'ab' } }],
      ['response.output_item.done', { output_index: 0, item: response.output[0] }],
      ['response.incomplete', { response }],
    ];
    const numbered = (list: typeof events) =>
      sse(list.map(([type, data], i): [string, unknown] => [type, { type, sequence_number: i, ...data }]));
    t.same(violations(numbered(events), req, CTX), []);
    t.match(violations(numbered(events.slice(0, -1)), req, CTX), ['terminal events: none']);
    t.match(violations(numbered([...events, events.at(-1) as (typeof events)[number]]), req, CTX), [
      /terminal events: response.incomplete, response.incomplete/,
    ]);
    t.match(violations(numbered(events.slice(1)), req, CTX), [/starts with 'response.in_progress'/]);
    t.match(violations(numbered(events.filter((_, i) => i !== 5)), req, CTX), [
      /output_text.done: the text is not its deltas joined/,
    ]);
    const gap = sse(
      events.map(([type, data], i): [string, unknown] => [type, { type, sequence_number: i === 3 ? 9 : i, ...data }]),
    );
    t.match(violations(gap, req, CTX), [/sequence_number is not 0, 1, 2/]);
    const misnamed = sse(
      events.map(([type, data], i): [string, unknown] => [
        i === 2 ? 'message' : type,
        { type, sequence_number: i, ...data },
      ]),
    );
    t.match(violations(misnamed, req, CTX), [/event 'message' carries data of type 'response.output_item.added'/]);
    const failed: typeof events = [
      ...events.slice(0, 5),
      ['error', { code: 'request_timeout', message: 'late', param: null }],
      [
        'response.failed',
        { response: { ...started, status: 'failed', error: { code: 'request_timeout', message: 'late' } } },
      ],
    ];
    t.same(violations(numbered(failed), req, CTX), [], 'a failure: error, then response.failed');
    const serverError = failed.map(([type, data]): (typeof events)[number] =>
      type === 'response.failed'
        ? [type, { response: { ...started, status: 'failed', error: { code: 'generation_failed', message: 'x' } } }]
        : [type, data],
    );
    t.match(violations(numbered(serverError), req, CTX), [/response.failed with code 'generation_failed'/]);
  },
);

const message = {
  id: 'msg_1',
  type: 'message',
  role: 'assistant',
  model: 'm',
  content: [{ type: 'text', text: 'ab', citations: null }],
  stop_reason: 'max_tokens',
  stop_sequence: null,
  usage: { input_tokens: 5, output_tokens: 2, cache_creation_input_tokens: 0, cache_read_input_tokens: 15 },
};

t.test("Anthropic's message: stop_reason and stop_sequence, tool_use, usage, max_tokens", async (t) => {
  const req = sent('/v1/messages', { max_tokens: 2, messages: [], stop_sequences: ['x'] });
  t.same(violations(ok(message), req, CTX), []);
  t.match(violations(ok(message), sent('/v1/messages', { max_tokens: 3 }), CTX), [
    /stop_reason max_tokens after 2 tokens, max_tokens 3/,
  ]);
  t.match(violations(ok({ ...message, stop_reason: 'stop_sequence', stop_sequence: 'y' }), req, CTX), [
    /stop_sequence 'y' is not one of the request's/,
  ]);
  t.same(violations(ok({ ...message, stop_reason: 'stop_sequence', stop_sequence: 'x' }), req, CTX), []);
  t.match(violations(ok({ ...message, stop_reason: 'end_turn', stop_sequence: 'x' }), req, CTX), [
    /stop_sequence with stop_reason 'end_turn'/,
  ]);
  t.match(violations(ok({ ...message, stop_reason: 'tool_use' }), req, CTX), [/'tool_use' without a tool_use block/]);
  t.match(violations(ok({ ...message, stop_reason: 'refusal' }), req, CTX), [/stop_reason 'refusal'/]);
  const window = { ...message, stop_reason: 'model_context_window_exceeded' };
  t.match(violations(ok(window), req, CTX), [/model_context_window_exceeded at 20 \+ 2 tokens, the window being 128/]);
  t.same(violations(ok(window), req, { ctxPerSlot: 22 }), []);
  t.match(violations(ok({ ...message, role: 'user' }), req, CTX), [/message is not in its shape/]);
});

t.test("Anthropic's stream: message_start first, blocks in order, message_delta then message_stop, last", async (t) => {
  const req = sent('/v1/messages', { max_tokens: 2, stream: true });
  const start = {
    ...message,
    content: [],
    stop_reason: null,
    usage: { ...message.usage, input_tokens: 20, cache_read_input_tokens: 0 },
  };
  const events: [string, Record<string, unknown>][] = [
    ['message_start', { message: start }],
    ['content_block_start', { index: 0, content_block: { type: 'text', text: '', citations: null } }],
    ['content_block_delta', { index: 0, delta: { type: 'text_delta', text: 'ab' } }],
    ['content_block_stop', { index: 0 }],
    ['message_delta', { delta: { stop_reason: 'max_tokens', stop_sequence: null }, usage: message.usage }],
    ['message_stop', {}],
  ];
  const stream = (list: typeof events) => sse(list.map(([type, data]): [string, unknown] => [type, { type, ...data }]));
  t.same(violations(stream(events), req, CTX), []);
  t.match(violations(stream(events.slice(0, -1)), req, CTX), ['terminal events: none']);
  t.match(violations(stream([events[0], ...events.slice(2)] as typeof events), req, CTX), [
    /a delta for a block not open/,
  ]);
  const wrongDelta = events.map(([type, data], i): (typeof events)[number] =>
    i === 2 ? [type, { index: 0, delta: { type: 'input_json_delta', partial_json: '{' } }] : [type, data],
  );
  t.match(violations(stream(wrongDelta), req, CTX), [/a input_json_delta in a text block/]);
  const moreInput = events.map(([type, data], i): (typeof events)[number] =>
    i === 4 ? [type, { ...data, usage: { ...message.usage, input_tokens: 9 } }] : [type, data],
  );
  t.match(violations(stream(moreInput), req, CTX), [/message_start counts 20 input tokens, message_delta 24/]);
  const failed: typeof events = [
    ...events.slice(0, 3),
    ['error', { error: { type: 'timeout_error', message: 'late' } }],
  ];
  t.same(violations(stream(failed), req, CTX), [], 'a failure ends with the error event');
  const apiError: typeof events = [...events.slice(0, 3), ['error', { error: { type: 'api_error', message: 'x' } }]];
  t.match(violations(stream(apiError), req, CTX), [/a stream error of type 'api_error'/]);
});

t.test(
  'embeddings: one unit vector per input, in order, in the encoding asked; refused where not served',
  async (t) => {
    const unit = (i: number) => Array.from({ length: 4 }, (_, k) => (k === i ? 1 : 0));
    const list = {
      object: 'list',
      model: 'm',
      data: [0, 1].map((i) => ({ object: 'embedding', index: i, embedding: unit(i) })),
      usage: { prompt_tokens: 6, total_tokens: 6 },
    };
    const req = (body: object) => sent('/v1/embeddings', body, 'embeddings');
    t.same(violations(ok(list), req({ input: ['a', 'b'] })), []);
    t.match(violations(ok(list), req({ input: 'a' })), [/2 embeddings for 1 inputs/]);
    t.match(
      violations(
        ok(edited(list, (l) => ((l.data[1] as { embedding: number[] }).embedding = [0, 2, 0, 0]))),
        req({ input: ['a', 'b'] }),
      ),
      [/an embedding of norm 2/],
    );
    t.match(violations(ok(list), req({ input: ['a', 'b'], encoding_format: 'base64' })), [
      /not in the encoding asked \(base64\)/,
    ]);
    const base64 = edited(list, (l) => {
      for (const d of l.data as { embedding: unknown; index: number }[])
        d.embedding = Buffer.from(Float32Array.from(unit(d.index)).buffer).toString('base64');
    });
    t.same(
      violations(
        ok(base64),
        req({
          input: [
            [1, 2, 3],
            [4, 5, 6],
          ],
          encoding_format: 'base64',
        }),
      ),
      [],
    );
    t.match(violations(ok(base64), req({ input: [[1, 2], [3]], encoding_format: 'base64' })), [
      /6 prompt tokens for 3 token ids given/,
    ]);
    t.match(violations(ok(edited(list, (l) => (l.usage.total_tokens = 7))), req({ input: ['a', 'b'] })), [
      /total_tokens != prompt_tokens/,
    ]);
    t.match(violations(ok(list), sent('/v1/embeddings', { input: 'a' })), [
      /an embeddings route answered 200 on a generation server/,
    ]);
  },
);
