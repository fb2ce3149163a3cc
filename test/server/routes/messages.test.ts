// POST /v1/messages and /v1/messages/count_tokens with the official @anthropic-ai/sdk (messages.create,
// messages.stream, countTokens) over a real listening app, on the tiny-qwen model (random weights: shapes, event
// order, usage and grammar-forced tool calls are what is checked). Tool calls use the one-token call marker template
// (test/fixtures/chat/tool-marker.jinja) opened by a logit bias, as in chat-tools.test.ts.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import Anthropic from '@anthropic-ai/sdk';
import { Ajv } from 'ajv';
import t, { type Test } from 'tap';
import { loadModel, templateText } from '../../helpers/models.ts';
import { lastPrompt, parsedReply, toolMarkerPrompt } from '../../helpers/prompts.ts';
import { parseExposition, sampleValue } from '../../metrics/helpers.ts';
import { makeHarness } from '../harness.ts';

const model = await loadModel('tiny-qwen');
t.teardown(() => model.dispose());
const toolTemplate = await readFile(
  join(import.meta.dirname, '..', '..', 'fixtures', 'chat', 'tool-marker.jinja'),
  'utf8',
);

const TOOL_OPEN = 151657; // <tool_call>
const EOG = [151643, 151645]; // <|endoftext|>, <|im_end|>
const CALL_NOW = { [String(TOOL_OPEN)]: 10, ...Object.fromEntries(EOG.map((t) => [String(t), 15])) };
const NO_EOG = Object.fromEntries(EOG.map((t) => [String(t), -100]));

const WEATHER = {
  type: 'object' as const,
  properties: { unit: { type: 'string', enum: ['celsius', 'fahrenheit'] }, detailed: { type: 'boolean' } },
  required: ['unit', 'detailed'],
  additionalProperties: false,
};
const tools: Anthropic.Tool[] = [{ name: 'get_weather', description: 'Current weather', input_schema: WEATHER }];
const ask: Anthropic.MessageParam[] = [{ role: 'user', content: 'What is the weather in Paris?' }];
const ajv = new Ajv({ strict: false });

/** llama-server's fields the SDK's types don't know (logit_bias, grammar): sent as they are. */
function params<T>(body: T, extra: Record<string, unknown>): T {
  return { ...body, ...extra };
}

async function sdk(t: Test, options: Parameters<typeof makeHarness>[2] = {}, apiKey = 'unused') {
  const h = await makeHarness(t, model, { slots: 2, ctxPerSlot: 1024, chat: { template: toolTemplate }, ...options });
  await h.app.listen({ host: '127.0.0.1', port: 0 });
  const address = h.app.server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  const url = `http://127.0.0.1:${port}`;
  return { ...h, url, client: new Anthropic({ baseURL: url, apiKey, maxRetries: 0 }) };
}

async function failure(p: PromiseLike<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (err) {
    return err;
  }
  throw new Error('expected the call to fail');
}

t.test('messages.create: a text block, max_tokens as the stop reason, usage that adds up', async (t) => {
  const { client } = await sdk(t);
  const m = await client.messages.create(
    params({ model: 'm', max_tokens: 8, messages: ask }, { temperature: 0, logit_bias: NO_EOG }),
  );
  t.equal(m.type, 'message');
  t.match(m.id, /^msg_/);
  t.equal(m.role, 'assistant');
  t.equal(m.stop_reason, 'max_tokens');
  t.equal(m.stop_sequence, null);
  t.equal(m.content.length, 1);
  t.equal(m.content[0]?.type, 'text');
  t.ok(m.content[0]?.type === 'text' && m.content[0].text.length > 0);
  t.equal(m.usage.output_tokens, 8);
  t.ok(m.usage.input_tokens > 0);
  t.equal(m.usage.cache_read_input_tokens, 0, 'a first prompt: nothing from the cache');

  const system = await client.messages.create({
    model: 'm',
    max_tokens: 4,
    system: [{ type: 'text', text: 'Be brief.' }],
    messages: ask,
  });
  const counted = await client.messages.countTokens({ model: 'm', system: 'Be brief.', messages: ask });
  t.equal(
    counted.input_tokens,
    system.usage.input_tokens + (system.usage.cache_read_input_tokens ?? 0),
    'countTokens equals the prompt (input + cache read)',
  );
  t.ok(counted.input_tokens > m.usage.input_tokens, 'the system prompt counts');
});

t.test('stop_sequences: stop_reason stop_sequence, naming it', async (t) => {
  const { client } = await sdk(t);
  const HELLO = model.tokenize(' Hello', { addSpecial: false })[0] ?? 0;
  const m = await client.messages.create(
    params(
      { model: 'm', max_tokens: 30, messages: ask, stop_sequences: ['Hello'] },
      { temperature: 0, logit_bias: { ...NO_EOG, [String(HELLO)]: 30 } },
    ),
  );
  t.equal(m.stop_reason, 'stop_sequence');
  t.equal(m.stop_sequence, 'Hello');
  t.notMatch(m.content[0]?.type === 'text' ? m.content[0].text : '', /Hello/, 'the stop sequence is not sent');
});

t.test('messages.stream: the event sequence the SDK assembles, equal to the non-streamed answer', async (t) => {
  const { client } = await sdk(t);
  // Long enough for the prompt cache to reuse it (the scheduler reuses prefixes of 16 tokens or more).
  const long: Anthropic.MessageParam[] = [
    { role: 'user', content: 'Say something about the weather in Paris, London and Rome, in one short sentence each.' },
  ];
  const body = params({ model: 'm', max_tokens: 12, messages: long }, { temperature: 0, logit_bias: NO_EOG });
  const plain = await client.messages.create(body);
  const stream = client.messages.stream(body);
  const types: string[] = [];
  let text = '';
  stream.on('streamEvent', (e) => types.push(e.type));
  stream.on('text', (delta) => {
    text += delta;
  });
  const final = await stream.finalMessage();
  t.same(
    types.filter((x) => x !== 'content_block_delta'),
    ['message_start', 'content_block_start', 'content_block_stop', 'message_delta', 'message_stop'],
    'event order',
  );
  t.ok(types.filter((x) => x === 'content_block_delta').length >= 2, 'text in several deltas');
  t.same(final.content, plain.content, 'the same blocks');
  t.equal(text, plain.content[0]?.type === 'text' ? plain.content[0].text : null);
  t.equal(final.stop_reason, 'max_tokens');
  t.equal(final.usage.output_tokens, 12);
  t.ok((final.usage.cache_read_input_tokens ?? 0) > 0, 'the repeated prompt came from the cache');
  t.equal(
    final.usage.input_tokens + (final.usage.cache_read_input_tokens ?? 0),
    plain.usage.input_tokens + (plain.usage.cache_read_input_tokens ?? 0),
    'the same prompt, split between input and cache read',
  );
});

t.test('a tool_use / tool_result round trip, streamed and not', async (t) => {
  const { client, url, steps } = await sdk(t);
  const body = params(
    { model: 'm', max_tokens: 200, messages: ask, tools, tool_choice: { type: 'any' as const } },
    { temperature: 0, logit_bias: CALL_NOW },
  );
  const first = await client.messages.create({
    ...body,
    tool_choice: { type: 'any', disable_parallel_tool_use: true },
  });
  t.equal(first.stop_reason, 'tool_use');
  const use = first.content.find((b) => b.type === 'tool_use');
  t.ok(use, 'a tool_use block');
  if (use?.type !== 'tool_use') return;
  t.equal(use.name, 'get_weather');
  t.match(use.id, /^call_/);
  t.ok(ajv.validate(WEATHER, use.input), `input validates: ${JSON.stringify(use.input)}`);

  const stream = client.messages.stream({
    ...body,
    tool_choice: { type: 'tool', name: 'get_weather', disable_parallel_tool_use: true },
  });
  let partial = '';
  stream.on('inputJson', (delta) => {
    partial += delta;
  });
  const streamed = await stream.finalMessage();
  const streamedUse = streamed.content.find((b) => b.type === 'tool_use');
  t.equal(streamed.stop_reason, 'tool_use');
  t.same(streamedUse?.type === 'tool_use' ? streamedUse.input : null, use.input, 'the SDK assembled the same input');
  t.same(JSON.parse(partial), use.input, 'from input_json_delta pieces');

  const conversation: Anthropic.MessageParam[] = [
    ...ask,
    { role: 'assistant', content: first.content },
    { role: 'user', content: [{ type: 'tool_result', tool_use_id: use.id, content: '{"temperature": 21}' }] },
  ];
  const answer = await client.messages.create(
    params(
      { model: 'm', max_tokens: 16, tools, tool_choice: { type: 'none' as const }, messages: conversation },
      { temperature: 0 },
    ),
  );
  // The decoder's prompt: the tool_use as the assistant's call after the question, the tool_result's text in the
  // tool turn after it.
  const chatTools = tools.map((x) => ({
    type: 'function',
    function: { name: x.name, description: x.description, parameters: x.input_schema },
  }));
  const expected = toolMarkerPrompt(chatTools, [
    { role: 'user', content: 'What is the weather in Paris?' },
    { role: 'assistant', calls: [{ name: use.name, arguments: use.input }] },
    { role: 'tool', content: '{"temperature": 21}' },
  ]);
  const prompt = lastPrompt(model, steps);
  t.equal(prompt.text, expected, 'the tool_use and the tool_result are rendered in their turns');
  t.same(
    prompt.tokens,
    Array.from(model.tokenize(expected, { addSpecial: true, parseSpecial: true })),
    'token for token',
  );
  // The answer: one text block holding the greedy continuation of that prompt.
  const reference = await model.referenceGreedy(prompt.tokens, { nPredict: 16 });
  t.same(
    answer.content,
    [
      {
        type: 'text',
        text: Buffer.concat(reference.map((id) => model.tokenBytes(id))).toString('utf8'),
        citations: null,
      },
    ],
    'text after the tool result',
  );
  t.equal(answer.stop_reason, reference.length < 16 ? 'end_turn' : 'max_tokens');
  const counted = await client.messages.countTokens({ model: 'm', tools, messages: conversation });
  t.equal(counted.input_tokens, prompt.tokens.length, "countTokens counts the decoder's prompt");
  t.equal(
    answer.usage.input_tokens + (answer.usage.cache_read_input_tokens ?? 0),
    prompt.tokens.length,
    'as usage does (input + cache read)',
  );
  // The same conversation in OpenAI's chat shape renders to the same prompt, character for character.
  const chat = await fetch(`${url}/apply-template`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      tools: chatTools,
      messages: [
        ...ask,
        {
          role: 'assistant',
          content: null,
          tool_calls: [
            { id: use.id, type: 'function', function: { name: use.name, arguments: JSON.stringify(use.input) } },
          ],
        },
        { role: 'tool', tool_call_id: use.id, content: '{"temperature": 21}' },
      ],
    }),
  });
  t.equal(((await chat.json()) as { prompt: string }).prompt, prompt.text, 'as chat renders it');
});

t.test('thinking: a thinking block before the text, streamed as thinking deltas', async (t) => {
  const template = await templateText('llama-cpp-deepseek-r1');
  const { client, steps } = await sdk(t, { chat: { template } });
  const body = params(
    { model: 'm', max_tokens: 2048, messages: ask, thinking: { type: 'enabled' as const, budget_tokens: 1024 } },
    { grammar: 'root ::= "I weigh it" "</think>" "Yes."' },
  );
  const m = await client.messages.create(body);
  t.same(
    m.content.map((b) => b.type),
    ['thinking', 'text'],
  );
  t.equal(m.content[0]?.type === 'thinking' ? m.content[0].thinking.trim() : null, 'I weigh it');
  t.equal(m.content[1]?.type === 'text' ? m.content[1].text : null, 'Yes.');
  t.equal(m.stop_reason, 'end_turn');
  const stream = client.messages.stream(body);
  const deltas: string[] = [];
  stream.on('streamEvent', (e) => {
    if (e.type === 'content_block_delta') deltas.push(e.delta.type);
  });
  const final = await stream.finalMessage();
  t.same(final.content, m.content, 'the same blocks, streamed');
  t.ok(deltas.indexOf('thinking_delta') < deltas.indexOf('text_delta'));

  for (const [thinking, message] of [
    [{ type: 'enabled', budget_tokens: 100 }, /at least 1024/],
    [{ type: 'enabled', budget_tokens: 4096 }, /less than 'max_tokens'/],
    [{ type: 'enabled' }, /thinking\.budget_tokens/],
  ] as const) {
    const err = await failure(client.messages.create({ ...body, thinking } as never));
    t.match(err, { status: 400, error: { error: { type: 'invalid_request_error', message } } }, message.source);
  }
  const omitted = await client.messages.create({
    ...body,
    thinking: { type: 'enabled', budget_tokens: 1024, display: 'omitted' },
  });
  t.equal(omitted.content[0]?.type === 'thinking' ? omitted.content[0].thinking : null, '', 'display omitted');

  // The thinking block goes back as the assistant's reasoning; the template decides whether it renders it. DeepSeek
  // R1's drops an earlier turn's thought and keeps its answer; the new reply is split as llama.cpp's parser splits
  // the text the grammar fixes.
  const conversation: Anthropic.MessageParam[] = [
    ...ask,
    { role: 'assistant', content: m.content },
    { role: 'user', content: 'Sure?' },
  ];
  const next = await client.messages.create(
    params({ ...body, messages: conversation }, { grammar: 'root ::= "Still weighing" "</think>" "No."' }),
  );
  t.equal(
    lastPrompt(model, steps).text,
    '<|endoftext|><｜User｜>What is the weather in Paris?<｜end▁of▁sentence｜><｜Assistant｜>Yes.<｜end▁of▁sentence｜><｜User｜>Sure?<｜end▁of▁sentence｜><｜Assistant｜><think>\n',
    'the earlier answer is rendered, its thinking dropped, as the template says',
  );
  const split = await parsedReply(model, template, 'Still weighing</think>No.');
  t.same(split, { reasoning: '\nStill weighing', content: 'No.' }, 'the parser splits at </think>');
  t.same(
    next.content.map((b) =>
      b.type === 'thinking' ? [b.type, b.thinking] : b.type === 'text' ? [b.type, b.text] : [b.type],
    ),
    [
      ['thinking', split.reasoning],
      ['text', split.content],
    ],
    "the reply's thinking and text blocks are the parser's split",
  );

  // A template that renders an earlier thought (Bielik's): the thinking block reaches the prompt, in its turn.
  const bielik = await sdk(t, { chat: { template: await templateText('Bielik-11B-v3.0-Instruct') } });
  await bielik.client.messages.create({ model: 'm', max_tokens: 1, messages: conversation });
  t.equal(
    lastPrompt(model, bielik.steps).text,
    '<|endoftext|><|im_start|>user\nWhat is the weather in Paris?<|im_end|>\n<|im_start|>assistant\n<think>\nI weigh it\n</think>\nYes.<|im_end|>\n<|im_start|>user\nSure?<|im_end|>\n<|im_start|>assistant\n<think>\n',
    'the earlier thinking is rendered where the template puts it',
  );
});

t.test('thinking disabled or enabled: the template is told (Qwen 3 closes an empty thought)', async (t) => {
  const template = await templateText('Qwen-Qwen3-0.6B');
  const { client } = await sdk(t, { chat: { template } });
  const count = async (thinking?: Anthropic.ThinkingConfigParam) =>
    (await client.messages.countTokens({ model: 'm', messages: ask, ...(thinking ? { thinking } : {}) })).input_tokens;
  const on = await count({ type: 'enabled', budget_tokens: 1024 });
  const off = await count({ type: 'disabled' });
  t.equal(on, await count(), 'thinking is the default here');
  t.equal(off - on, model.tokenize('<think>\n\n</think>\n\n', { addSpecial: false, parseSpecial: true }).length);
});

t.test('output_config.format: the output validates against the schema', async (t) => {
  const { client } = await sdk(t);
  const schema = {
    type: 'object',
    properties: { answer: { type: 'string', enum: ['yes', 'no'] } },
    required: ['answer'],
    additionalProperties: false,
  };
  const m = await client.messages.create(
    params(
      {
        model: 'm',
        max_tokens: 60,
        messages: ask,
        output_config: { format: { type: 'json_schema' as const, schema } },
      },
      { temperature: 0 },
    ),
  );
  const text = m.content[0]?.type === 'text' ? m.content[0].text : '';
  t.ok(ajv.validate(schema, JSON.parse(text)), `${text} validates`);
});

t.test('a tool_result with is_error and text blocks reaches the template as an error', async (t) => {
  const { client, steps } = await sdk(t);
  const turn = (result: Anthropic.ToolResultBlockParam): Anthropic.MessageParam[] => [
    ...ask,
    {
      role: 'assistant',
      content: [{ type: 'tool_use', id: 'call_1', name: 'get_weather', input: { unit: 'celsius' } }],
    },
    { role: 'user', content: [result, { type: 'text', text: 'And now?' }] },
  ];
  // The prompt the decoder is given for each: the result's text in the tool turn (marked when is_error), the
  // user's text after it.
  const promptOf = async (result: Anthropic.ToolResultBlockParam): Promise<string> => {
    await client.messages.create(
      params({ model: 'm', max_tokens: 1, tools, messages: turn(result) }, { temperature: 0 }),
    );
    return lastPrompt(model, steps).text;
  };
  const expected = (text: string) =>
    toolMarkerPrompt(
      tools.map((x) => ({
        type: 'function',
        function: { name: x.name, description: x.description, parameters: x.input_schema },
      })),
      [
        { role: 'user', content: 'What is the weather in Paris?' },
        { role: 'assistant', calls: [{ name: 'get_weather', arguments: { unit: 'celsius' } }] },
        { role: 'tool', content: text },
        { role: 'user', content: 'And now?' },
      ],
    );
  t.equal(
    await promptOf({ type: 'tool_result', tool_use_id: 'call_1', content: [{ type: 'text', text: 'no network' }] }),
    expected('no network'),
    'text blocks: the text in the tool turn',
  );
  t.equal(
    await promptOf({ type: 'tool_result', tool_use_id: 'call_1', content: 'no network', is_error: true }),
    expected('Error: no network'),
    'is_error: the result is marked as an error',
  );
});

t.test('errors in Anthropic shape: validation, refusals, 401; nothing reaches the scheduler', async (t) => {
  const { client, ended, url } = await sdk(t, { config: { ctxPerSlot: 1024, slots: 2, apiKeys: ['sk-a'] } }, 'sk-a');
  const cases: [string, Record<string, unknown>, RegExp][] = [
    ['no max_tokens', { max_tokens: undefined }, /Missing required parameter: 'max_tokens'/],
    ['no messages', { messages: [] }, /messages/],
    ['a bad role', { messages: [{ role: 'system', content: 'x' }] }, /messages\[0\]\.role/],
    [
      'an image',
      { messages: [{ role: 'user', content: [{ type: 'image', source: { type: 'url', url: 'x' } }] }] },
      /'image' in messages\[0\]\.content\[0\] is not supported: .*text-only/,
    ],
    [
      'a tool_result without tool_use_id',
      { messages: [{ role: 'user', content: [{ type: 'tool_result', content: 'x' }] }] },
      /messages\[0\]\.content\[0\]\.tool_use_id/,
    ],
    [
      'a server tool',
      { tools: [{ type: 'web_search_20250305', name: 'web_search' }] },
      /tools\[0\]\.type|no server tools/,
    ],
    [
      'an input_schema that is not a schema',
      { tools: [{ name: 'f', input_schema: { type: 'objekt' } }] },
      /tools\[0\]\.input_schema.*not a JSON Schema/,
    ],
    [
      'tool_choice naming an unknown tool',
      { tools, tool_choice: { type: 'tool', name: 'nope' } },
      /'nope', which is not in 'tools'/,
    ],
    ['thinking on a template without it', { thinking: { type: 'enabled', budget_tokens: 1024 } }, /no thinking mode/],
    ['mcp_servers', { mcp_servers: [{ type: 'url', url: 'x', name: 'y' }] }, /mcp_servers/],
    ['a container', { container: 'c' }, /container/],
    [
      'a server tool block in a turn',
      {
        messages: [
          ...ask,
          { role: 'assistant', content: [{ type: 'server_tool_use', id: 'x', name: 'y', input: {} }] },
        ],
      },
      /'server_tool_use' in messages\[1\]\.content\[0\]/,
    ],
    [
      'a tool_use input that is not an object',
      { messages: [...ask, { role: 'assistant', content: [{ type: 'tool_use', id: 'x', name: 'f', input: [1] }] }] },
      /messages\[1\]\.content\[0\]\.input/,
    ],
    ['a system block that is not text', { system: [{ type: 'image', source: {} }] }, /'image' in system\[0\]/],
    [
      'output_config.format with tools',
      { tools, output_config: { format: { type: 'json_schema', schema: { type: 'object' } } } },
      /cannot be combined with 'output_config.format'/,
    ],
    [
      'output_config.format that is not a schema',
      { output_config: { format: { type: 'json_schema', schema: { type: 'objekt' } } } },
      /output_config\.format\.schema.*not a JSON Schema/,
    ],
    ['tool_choice any without tools', { tool_choice: { type: 'any' } }, /needs 'tools'/],
    ['a bad temperature', { temperature: 7 }, /temperature/],
  ];
  for (const [name, extra, message] of cases) {
    const err = await failure(client.messages.create({ model: 'm', max_tokens: 4, messages: ask, ...extra } as never));
    t.type(err, Anthropic.BadRequestError, name);
    t.match(err, { status: 400, error: { type: 'error', error: { type: 'invalid_request_error', message } } }, name);
  }
  t.equal(ended.length, 0, 'no request reached the scheduler');

  const wrong = new Anthropic({ baseURL: url, apiKey: 'sk-wrong', maxRetries: 0 });
  const denied = await failure(wrong.messages.create({ model: 'm', max_tokens: 4, messages: ask }));
  t.type(denied, Anthropic.AuthenticationError);
  t.match(denied, { status: 401, error: { type: 'error', error: { type: 'authentication_error' } } });
  t.type(await failure(wrong.messages.countTokens({ model: 'm', messages: ask })), Anthropic.AuthenticationError);
  const bearer = new Anthropic({ baseURL: url, authToken: 'sk-a', apiKey: null, maxRetries: 0 });
  t.equal((await bearer.messages.countTokens({ model: 'm', messages: ask })).input_tokens > 0, true, 'Bearer too');
  const raw = await fetch(`${url}/v1/messages`, { method: 'POST', headers: { 'x-api-key': 'sk-a' }, body: '{' });
  t.equal(raw.status, 400);
  t.match(await raw.json(), { type: 'error', error: { type: 'invalid_request_error', message: /not valid JSON/ } });
});

t.test('a stream cut by shutdown ends with an error event the SDK raises', async (t) => {
  const { client, scheduler } = await sdk(t);
  const stream = client.messages.stream(
    params({ model: 'm', max_tokens: 1000, messages: ask }, { logit_bias: NO_EOG }),
  );
  let deltas = 0;
  stream.on('text', () => {
    if (++deltas === 3) void scheduler.close(0);
  });
  const err = await failure(stream.finalMessage());
  t.type(err, Anthropic.APIError);
  t.match(err, { error: { type: 'error', error: { type: 'overloaded_error', message: /shutting down/ } } });
});

t.test('metrics count these messages as chat ones', async (t) => {
  const { client, url } = await sdk(t, { config: { ctxPerSlot: 1024, slots: 2, endpoints: { metrics: true } } });
  const read = async () => parseExposition(await (await fetch(`${url}/metrics`)).text());
  const before = await read();
  const m = await client.messages.create(params({ model: 'm', max_tokens: 5, messages: ask }, { logit_bias: NO_EOG }));
  const after = await read();
  const delta = (name: string) => sampleValue(after, name) - sampleValue(before, name);
  t.equal(delta('llamacpp:tokens_predicted_total'), m.usage.output_tokens);
  t.equal(delta('llamacpp:prompt_tokens_total'), m.usage.input_tokens);
});
