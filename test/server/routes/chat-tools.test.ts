// Tools and structured output with the official OpenAI SDK, on the tiny-qwen model (Qwen 2.5's vocabulary). The
// weights are random, so the text means nothing — but the grammar the chat layer builds makes every constrained
// answer valid, which is exactly what these tests check. Under tool_choice auto, llama.cpp's lazy tool grammar lets
// free text come before a call (until the template's call marker), which random weights never end; so the calls here
// use a minimal template whose marker is one token (test/fixtures/chat/tool-marker.jinja), opened by a logit bias as a
// client could. 'required' and a named function are forced by the grammar alone (forced-tools.test.ts, every template).
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Ajv } from 'ajv';
import OpenAI from 'openai';
import t, { type Test } from 'tap';
import { loadModel } from '../../helpers/models.ts';
import { lastPrompt, toolMarkerPrompt } from '../../helpers/prompts.ts';
import { errorOf, makeHarness } from '../harness.ts';

const model = await loadModel('tiny-qwen');
t.teardown(() => model.dispose());
const toolTemplate = await readFile(
  join(import.meta.dirname, '..', '..', 'fixtures', 'chat', 'tool-marker.jinja'),
  'utf8',
);

const TOOL_OPEN = 151657; // <tool_call>
const EOG = [151643, 151645]; // <|endoftext|>, <|im_end|>
/** Opens a call at once, and ends the answer once the grammar allows it (after the call). */
const CALL_NOW = { [String(TOOL_OPEN)]: 10, ...Object.fromEntries(EOG.map((t) => [String(t), 15])) };

const ajv = new Ajv({ strict: false });

// Small closed schemas: enums and booleans, so random weights finish a call in a few dozen tokens.
const WEATHER = {
  type: 'object',
  properties: { unit: { type: 'string', enum: ['celsius', 'fahrenheit'] }, detailed: { type: 'boolean' } },
  required: ['unit', 'detailed'],
  additionalProperties: false,
} as const;
const TIME = {
  type: 'object',
  properties: { zone: { type: 'string', enum: ['utc', 'local'] } },
  required: ['zone'],
  additionalProperties: false,
} as const;
const tools: OpenAI.Chat.Completions.ChatCompletionTool[] = [
  { type: 'function', function: { name: 'get_weather', description: 'Current weather', parameters: WEATHER } },
  { type: 'function', function: { name: 'get_time', description: 'Current time', parameters: TIME } },
];
const ask: OpenAI.Chat.Completions.ChatCompletionMessageParam[] = [
  { role: 'user', content: 'What is the weather in Paris?' },
];

async function sdk(t: Test, options: Parameters<typeof makeHarness>[2] = {}) {
  const h = await makeHarness(t, model, { slots: 2, ctxPerSlot: 1024, chat: { template: toolTemplate }, ...options });
  await h.app.listen({ host: '127.0.0.1', port: 0 });
  const address = h.app.server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  const client = new OpenAI({ baseURL: `http://127.0.0.1:${port}/v1`, apiKey: 'unused', maxRetries: 0 });
  return { ...h, client };
}

function validArguments(t: Test, call: { function: { name: string; arguments: string } } | undefined): void {
  t.ok(call, 'a tool call');
  if (!call) return;
  const schema = call.function.name === 'get_weather' ? WEATHER : TIME;
  let args: unknown;
  t.doesNotThrow(() => {
    args = JSON.parse(call.function.arguments);
  }, `arguments are JSON: ${call.function.arguments}`);
  t.ok(ajv.validate(schema, args), `arguments validate against ${call.function.name}'s schema: ${ajv.errorsText()}`);
}

t.test('tool_choice required: a valid call, finish_reason tool_calls, content null', async (t) => {
  const { client } = await sdk(t);
  const r = await client.chat.completions.create({
    model: 'm',
    messages: ask,
    tools,
    tool_choice: 'required',
    parallel_tool_calls: false,
    temperature: 0,
    max_tokens: 200,
    logit_bias: CALL_NOW,
  });
  const choice = r.choices[0];
  t.equal(choice?.finish_reason, 'tool_calls');
  t.equal(choice?.message.content, null);
  t.equal(choice?.message.tool_calls?.length, 1);
  const call = choice?.message.tool_calls?.[0];
  t.equal(call?.type, 'function');
  t.match(call?.id, /^call_[A-Za-z0-9]{24}$/);
  t.ok(['get_weather', 'get_time'].includes(call?.type === 'function' ? call.function.name : ''));
  validArguments(t, call?.type === 'function' ? call : undefined);
});

t.test('a named tool_choice picks that tool', async (t) => {
  const { client } = await sdk(t);
  for (const name of ['get_time', 'get_weather']) {
    const r = await client.chat.completions.create({
      model: 'm',
      messages: ask,
      tools,
      tool_choice: { type: 'function', function: { name } },
      parallel_tool_calls: false,
      temperature: 0,
      max_tokens: 200,
      logit_bias: CALL_NOW,
    });
    const calls = r.choices[0]?.message.tool_calls ?? [];
    t.ok(calls.length >= 1, `${name}: called`);
    for (const call of calls) {
      t.equal(call.type === 'function' ? call.function.name : '', name, `${name}: only that tool`);
      validArguments(t, call.type === 'function' ? call : undefined);
    }
  }
});

t.test('a streamed call assembled by the SDK equals the non-streamed one', async (t) => {
  const { client } = await sdk(t);
  const body = {
    model: 'm',
    messages: ask,
    tools,
    tool_choice: 'required' as const,
    parallel_tool_calls: false,
    temperature: 0,
    max_tokens: 200,
    logit_bias: CALL_NOW,
  };
  const plain = await client.chat.completions.create(body);
  const stream = client.chat.completions.stream(body);
  let deltas = 0;
  stream.on('chunk', (chunk) => {
    if (chunk.choices[0]?.delta.tool_calls) deltas++;
  });
  const streamed = await stream.finalChatCompletion();
  const a = plain.choices[0]?.message.tool_calls?.[0];
  const b = streamed.choices[0]?.message.tool_calls?.[0];
  t.ok(deltas >= 2, `the call arrived in pieces (${deltas} deltas)`);
  t.equal(streamed.choices[0]?.finish_reason, 'tool_calls');
  t.same(
    b?.type === 'function' ? b.function : null,
    a?.type === 'function' ? a.function : undefined,
    'same name and arguments',
  );
  t.match(b?.id, /^call_/);
  validArguments(t, b?.type === 'function' ? b : undefined);
});

t.test('a tool result round trip: the call and its result are rendered in their places in the prompt', async (t) => {
  const { client, steps } = await sdk(t);
  const first = await client.chat.completions.create({
    model: 'm',
    messages: ask,
    tools,
    tool_choice: 'required',
    parallel_tool_calls: false,
    temperature: 0,
    max_tokens: 200,
    logit_bias: CALL_NOW,
  });
  const call = first.choices[0]?.message.tool_calls?.[0];
  t.ok(call);
  if (call?.type !== 'function') return;
  const RESULT = '{"temperature": 21, "sky": "clear"}';
  const second = await client.chat.completions.create({
    model: 'm',
    messages: [
      ...ask,
      { role: 'assistant', content: null, tool_calls: [call] },
      { role: 'tool', tool_call_id: call.id, content: RESULT },
    ],
    tools,
    tool_choice: 'none',
    temperature: 0,
    max_tokens: 24,
  });
  // What the decoder was given for the second request: the template's rendering, the call (its arguments as the
  // object the client's string holds) after the question, the tool's text in the tool turn after it, then the
  // assistant's turn opened.
  const expected = toolMarkerPrompt(tools, [
    { role: 'user', content: 'What is the weather in Paris?' },
    { role: 'assistant', calls: [{ name: call.function.name, arguments: JSON.parse(call.function.arguments) }] },
    { role: 'tool', content: RESULT },
  ]);
  const prompt = lastPrompt(model, steps);
  t.equal(prompt.text, expected, "the decoder's prompt holds the call and the tool's result in their turns");
  t.same(
    prompt.tokens,
    Array.from(model.tokenize(expected, { addSpecial: true, parseSpecial: true })),
    'token for token',
  );
  // The answer is the greedy continuation of that prompt, as llama.cpp's own loop writes it.
  const reference = await model.referenceGreedy(prompt.tokens, { nPredict: 24 });
  const message = second.choices[0]?.message;
  t.equal(message?.content, Buffer.concat(reference.map((id) => model.tokenBytes(id))).toString('utf8'));
  t.notOk(message?.tool_calls, 'no tool call');
  t.equal(second.choices[0]?.finish_reason, reference.length < 24 ? 'stop' : 'length');
});

t.test('response_format json_schema: the output parses and validates, streamed or not', async (t) => {
  const { client } = await sdk(t);
  const schema = {
    type: 'object',
    properties: { answer: { type: 'string', enum: ['yes', 'no', 'maybe'] }, sure: { type: 'boolean' } },
    required: ['answer', 'sure'],
    additionalProperties: false,
  };
  const response_format = { type: 'json_schema' as const, json_schema: { name: 'verdict', schema, strict: true } };
  const r = await client.chat.completions.create({
    model: 'm',
    messages: [{ role: 'user', content: 'Is it raining?' }],
    response_format,
    temperature: 0,
    max_tokens: 120,
  });
  const text = r.choices[0]?.message.content ?? '';
  t.ok(ajv.validate(schema, JSON.parse(text)), `${text} validates: ${ajv.errorsText()}`);
  let streamed = '';
  for await (const chunk of await client.chat.completions.create({
    model: 'm',
    messages: [{ role: 'user', content: 'Is it raining?' }],
    response_format,
    temperature: 0,
    max_tokens: 120,
    stream: true,
  })) {
    streamed += chunk.choices[0]?.delta.content ?? '';
  }
  t.equal(streamed, text, 'the stream says the same');

  const obj = await client.chat.completions.create({
    model: 'm',
    messages: [{ role: 'user', content: 'Any JSON object' }],
    response_format: { type: 'json_object' },
    temperature: 0,
    max_tokens: 64,
    // A JSON object can be endless on random weights; a closed object ends quickly once } is likely.
    logit_bias: { [String(model.tokenize('}', { addSpecial: false })[0])]: 20 },
  });
  const parsed = (() => {
    try {
      return JSON.parse(obj.choices[0]?.message.content ?? '');
    } catch {
      return undefined;
    }
  })();
  if (obj.choices[0]?.finish_reason === 'stop') {
    t.equal(typeof parsed, 'object', 'json_object mode answers an object');
    t.notOk(Array.isArray(parsed));
  } else {
    t.match(obj.choices[0]?.message.content, /^\s*\{/, 'cut off by max_tokens, but an object so far');
  }
});

t.test('llama-server fields: grammar and json_schema in the body', async (t) => {
  const { app } = await makeHarness(t, model, { slots: 1, ctxPerSlot: 512 });
  const res = await app.inject({
    method: 'POST',
    url: '/v1/chat/completions',
    payload: {
      messages: [{ role: 'user', content: 'Pick' }],
      grammar: 'root ::= ("red" | "green" | "blue") "!"',
      temperature: 0,
      max_tokens: 10,
    },
  });
  t.equal(res.statusCode, 200);
  t.match(res.json().choices[0].message.content, /^(red|green|blue)!$/);
  const completion = await app.inject({
    method: 'POST',
    url: '/v1/completions',
    payload: { prompt: 'Colour:', json_schema: { type: 'boolean' }, temperature: 0, max_tokens: 10 },
  });
  t.equal(completion.statusCode, 200);
  t.match(completion.json().choices[0].text, /^(true|false)$/);
});

t.test('refusals: a 400 that names the problem, and nothing reaches the scheduler', async (t) => {
  const { app, ended } = await makeHarness(t, model, { slots: 1, ctxPerSlot: 512 });
  const cases: [string, object, RegExp, string | null][] = [
    [
      'tool_choice names a function not in tools',
      { tools, tool_choice: { type: 'function', function: { name: 'nope' } } },
      /'nope', which is not in 'tools'/,
      'tool_choice.function.name',
    ],
    [
      'a tool without a name',
      { tools: [{ type: 'function', function: { parameters: WEATHER } }] },
      /tools\[0\]\.function\.name/,
      'tools[0].function.name',
    ],
    [
      'parameters not a JSON Schema object',
      { tools: [{ type: 'function', function: { name: 'f', parameters: { type: 'objekt' } } }] },
      /not a JSON Schema/,
      'tools[0].function.parameters',
    ],
    [
      'parameters an array',
      { tools: [{ type: 'function', function: { name: 'f', parameters: [1, 2] } }] },
      /parameters/,
      'tools[0].function.parameters',
    ],
    [
      'two tools with one name',
      { tools: [tools[0], tools[0]] },
      /Duplicate tool name 'get_weather'/,
      'tools[1].function.name',
    ],
    ['tool_choice required without tools', { tool_choice: 'required' }, /needs 'tools'/, 'tool_choice'],
    [
      'a json_schema that is not a schema',
      { response_format: { type: 'json_schema', json_schema: { name: 'x', schema: { type: 12 } } } },
      /not a JSON Schema/,
      'response_format',
    ],
    ['a grammar that does not parse', { grammar: 'root ::= undefined-rule' }, /grammar does not parse/, null],
    [
      'grammar and json_schema together',
      { grammar: 'root ::= "a"', json_schema: { type: 'string' } },
      /together/,
      'grammar',
    ],
    [
      'tools with response_format',
      { tools, response_format: { type: 'json_object' } },
      /cannot be combined with 'response_format'/,
      'tools',
    ],
    [
      'an image part',
      { messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'data:,' } }] }] },
      /'image_url' .* not supported/,
      'messages[0].content[0].type',
    ],
    [
      'an audio part',
      { messages: [{ role: 'user', content: [{ type: 'input_audio', input_audio: { data: '', format: 'wav' } }] }] },
      /'input_audio' .* not supported/,
      'messages[0].content[0].type',
    ],
    [
      'a tool message without tool_call_id',
      { messages: [...ask, { role: 'tool', content: 'x' }] },
      /tool_call_id/,
      'messages[1].tool_call_id',
    ],
  ];
  for (const [name, extra, message, param] of cases) {
    const res = await app.inject({
      method: 'POST',
      url: '/v1/chat/completions',
      payload: { messages: ask, max_tokens: 4, ...extra },
    });
    t.equal(res.statusCode, 400, `${name}: 400 (${res.body.slice(0, 200)})`);
    const e = errorOf(res);
    t.equal(e.type, 'invalid_request_error', `${name}: type`);
    t.match(e.message, message, `${name}: message`);
    if (param !== null) t.equal(e.param, param, `${name}: param`);
  }
  t.equal(ended.length, 0, 'no request reached the scheduler');
});

t.test('--no-jinja (legacy renderer): tools are refused with a 400, plain chat works', async (t) => {
  const { app } = await makeHarness(t, model, { slots: 1, ctxPerSlot: 512, chat: { jinja: false } });
  const refused = await app.inject({
    method: 'POST',
    url: '/v1/chat/completions',
    payload: { messages: ask, tools, max_tokens: 4 },
  });
  t.equal(refused.statusCode, 400);
  t.equal(errorOf(refused).param, 'tools');
  t.match(errorOf(refused).message, /Jinja chat template/);
  const ok = await app.inject({
    method: 'POST',
    url: '/v1/chat/completions',
    payload: { messages: ask, max_tokens: 4 },
  });
  t.equal(ok.statusCode, 200);
});
