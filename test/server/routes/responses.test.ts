// POST /v1/responses with the official openai SDK (responses.create, responses.stream, inputTokens.count) over a real
// listening app, on the tiny-qwen model (random weights: the text means nothing, the shapes, event order, usage and
// grammar-forced tool calls are what is checked). Tool calls use the one-token call marker template
// (test/fixtures/chat/tool-marker.jinja) opened by a logit bias, as in chat-tools.test.ts.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Ajv } from 'ajv';
import OpenAI from 'openai';
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
/** Opens a call at once, and ends the answer once the grammar allows it (after the call). */
const CALL_NOW = { [String(TOOL_OPEN)]: 10, ...Object.fromEntries(EOG.map((t) => [String(t), 15])) };
/** No end of generation: answers run to their token limit. */
const NO_EOG = Object.fromEntries(EOG.map((t) => [String(t), -100]));

const WEATHER = {
  type: 'object',
  properties: { unit: { type: 'string', enum: ['celsius', 'fahrenheit'] }, detailed: { type: 'boolean' } },
  required: ['unit', 'detailed'],
  additionalProperties: false,
} as const;
const tools: OpenAI.Responses.FunctionTool[] = [
  { type: 'function', name: 'get_weather', description: 'Current weather', parameters: WEATHER, strict: true },
];
const ajv = new Ajv({ strict: false });

/** llama-server's fields the SDK's types don't know (logit_bias, grammar): sent as they are. */
type Extra = Record<string, unknown>;
function params<T>(body: T, extra: Extra): T {
  return { ...body, ...extra };
}

async function sdk(t: Test, options: Parameters<typeof makeHarness>[2] = {}, apiKey = 'unused') {
  const h = await makeHarness(t, model, { slots: 2, ctxPerSlot: 1024, chat: { template: toolTemplate }, ...options });
  await h.app.listen({ host: '127.0.0.1', port: 0 });
  const address = h.app.server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  const url = `http://127.0.0.1:${port}`;
  const client = new OpenAI({ baseURL: `${url}/v1`, apiKey, maxRetries: 0 });
  return { ...h, client, url };
}

async function failure(p: PromiseLike<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (err) {
    return err;
  }
  throw new Error('expected the call to fail');
}

t.test('responses.create: a message item, incomplete at max_output_tokens, usage that adds up', async (t) => {
  const { client } = await sdk(t);
  const r = await client.responses.create(
    params({ model: 'm', input: 'Say something', max_output_tokens: 8, temperature: 0 }, { logit_bias: NO_EOG }),
  );
  t.equal(r.object, 'response');
  t.match(r.id, /^resp_[0-9a-f]{32}$/);
  t.equal(r.status, 'incomplete');
  t.same(r.incomplete_details, { reason: 'max_output_tokens' });
  t.equal(r.error, null);
  t.equal(r.output.length, 1);
  const item = r.output[0];
  t.equal(item?.type, 'message');
  if (item?.type !== 'message') return;
  t.match(item.id, /^msg_/);
  t.equal(item.role, 'assistant');
  t.equal(item.status, 'incomplete');
  t.equal(item.content[0]?.type, 'output_text');
  t.equal(
    r.output_text,
    item.content[0]?.type === 'output_text' ? item.content[0].text : null,
    "the SDK's output_text",
  );
  t.ok(r.output_text.length > 0);
  t.equal(r.usage?.output_tokens, 8);
  t.ok((r.usage?.input_tokens ?? 0) > 0);
  t.equal(r.usage?.total_tokens, (r.usage?.input_tokens ?? 0) + 8);
  t.equal(r.usage?.output_tokens_details.reasoning_tokens, 0);
  t.equal(r.max_output_tokens, 8, 'settings echoed');
  t.equal(r.temperature, 0);
  t.equal(r.tool_choice, 'auto');
  t.same(r.tools, []);

  const short = await client.responses.create({ model: 'm', input: 'Hi', instructions: 'Be brief.', temperature: 0 });
  t.equal(short.instructions, 'Be brief.');
  t.ok(['completed', 'incomplete'].includes(short.status ?? ''));
});

t.test('responses.stream: the event sequence the SDK assembles, equal to the non-streamed answer', async (t) => {
  const { client } = await sdk(t);
  // Long enough for the prompt cache to reuse it (the scheduler reuses prefixes of 16 tokens or more).
  const input = 'Say something about the weather in Paris, London and Rome, in one short sentence each.';
  const body = params({ model: 'm', input, max_output_tokens: 12, temperature: 0 }, { logit_bias: NO_EOG });
  const plain = await client.responses.create(body);
  const stream = client.responses.stream(body);
  const events: OpenAI.Responses.ResponseStreamEvent[] = [];
  let deltas = '';
  stream.on('event', (e) => events.push(e));
  stream.on('response.output_text.delta', (e) => {
    deltas += e.delta;
  });
  const final = await stream.finalResponse();
  const types = events.map((e) => e.type);
  t.same(
    types.filter((x) => x !== 'response.output_text.delta'),
    [
      'response.created',
      'response.in_progress',
      'response.output_item.added',
      'response.content_part.added',
      'response.output_text.done',
      'response.content_part.done',
      'response.output_item.done',
      'response.incomplete',
    ],
    'event order',
  );
  t.ok(types.filter((x) => x === 'response.output_text.delta').length >= 2, 'text in several deltas');
  t.same(
    events.map((e) => e.sequence_number),
    events.map((_, i) => i),
    'sequence numbers count from 0',
  );
  t.equal(deltas, plain.output_text, 'the deltas are the greedy text');
  t.equal(final.output_text, plain.output_text, 'the final response says the same');
  t.equal(final.id, (events[0] as OpenAI.Responses.ResponseCreatedEvent).response.id, 'one id throughout');
  t.equal(final.status, 'incomplete');
  t.same(
    final.output.map((o) => o.type === 'message' && o.status),
    ['incomplete'],
    'the item cut by the limit is incomplete',
  );
  t.same(final.usage, { ...plain.usage, input_tokens_details: final.usage?.input_tokens_details });
  t.ok((final.usage?.input_tokens_details.cached_tokens ?? 0) > 0, 'the repeated prompt came from the cache');
  const done = events.find((e) => e.type === 'response.output_item.done');
  // (the SDK adds `parsed: null` to the final one's text)
  t.match(final.output[0], done?.type === 'response.output_item.done' ? done.item : null, 'item done = final item');
});

t.test('a function call round trip: explicit items, then previous_response_id', async (t) => {
  const { client, url, steps } = await sdk(t);
  const input: OpenAI.Responses.ResponseInput = [{ role: 'user', content: 'What is the weather in Paris?' }];
  const first = await client.responses.create(
    params(
      { model: 'm', input, tools, tool_choice: 'required' as const, parallel_tool_calls: false, temperature: 0 },
      { logit_bias: CALL_NOW, max_output_tokens: 200 },
    ),
  );
  t.equal(first.status, 'completed');
  const call = first.output.find((o) => o.type === 'function_call');
  t.ok(call, 'a function_call item');
  if (call?.type !== 'function_call') return;
  t.equal(call.name, 'get_weather');
  t.match(call.call_id, /^call_/);
  t.match(call.id, /^fc_/);
  t.equal(call.status, 'completed');
  t.ok(ajv.validate(WEATHER, JSON.parse(call.arguments)), `arguments validate: ${call.arguments}`);

  const result: OpenAI.Responses.ResponseInputItem = {
    type: 'function_call_output',
    call_id: call.call_id,
    output: '{"temperature": 21}',
  };
  const explicit = [...input, ...first.output, result] as OpenAI.Responses.ResponseInput;
  const answer = await client.responses.create({
    model: 'm',
    input: explicit,
    tools,
    tool_choice: 'none',
    temperature: 0,
    max_output_tokens: 16,
  });
  // The decoder's prompt: the call after the question, the function's output in the tool turn after it.
  const chatTools = [
    { type: 'function', function: { name: 'get_weather', description: 'Current weather', parameters: WEATHER } },
  ];
  const expected = toolMarkerPrompt(chatTools, [
    { role: 'user', content: 'What is the weather in Paris?' },
    { role: 'assistant', calls: [{ name: call.name, arguments: JSON.parse(call.arguments) }] },
    { role: 'tool', content: '{"temperature": 21}' },
  ]);
  const prompt = lastPrompt(model, steps);
  t.equal(prompt.text, expected, "the call and the function's output are rendered in their turns");
  t.same(
    prompt.tokens,
    Array.from(model.tokenize(expected, { addSpecial: true, parseSpecial: true })),
    'token for token',
  );
  // The answer: a message item holding the greedy continuation of that prompt.
  const reference = await model.referenceGreedy(prompt.tokens, { nPredict: 16 });
  t.same(
    answer.output.map((o) => o.type),
    ['message'],
    'text after the tool result',
  );
  t.equal(answer.output_text, Buffer.concat(reference.map((id) => model.tokenBytes(id))).toString('utf8'));

  // The stored conversation renders to the same prompt as the explicit one, token for token.
  const chained = await client.responses.create({
    model: 'm',
    previous_response_id: first.id,
    input: [result],
    tools,
    tool_choice: 'none',
    temperature: 0,
    max_output_tokens: 16,
  });
  t.equal(chained.previous_response_id, first.id);
  t.same(lastPrompt(model, steps).tokens, prompt.tokens, 'the same prompt, token for token');
  t.equal(chained.output_text, answer.output_text, 'same greedy answer');
  const counted = await client.responses.inputTokens.count({ model: 'm', input: explicit, tools, tool_choice: 'none' });
  t.equal(counted.object, 'response.input_tokens');
  t.equal(counted.input_tokens, prompt.tokens.length, "inputTokens.count counts the decoder's prompt");
  t.equal(answer.usage?.input_tokens, prompt.tokens.length, 'as usage.input_tokens does');
  // The same conversation in chat's shape renders to the same prompt, character for character.
  const chat = await fetch(`${url}/apply-template`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      tools: chatTools,
      tool_choice: 'none',
      messages: [
        { role: 'user', content: 'What is the weather in Paris?' },
        {
          role: 'assistant',
          content: null,
          tool_calls: [
            { id: call.call_id, type: 'function', function: { name: call.name, arguments: call.arguments } },
          ],
        },
        { role: 'tool', tool_call_id: call.call_id, content: '{"temperature": 21}' },
      ],
    }),
  });
  t.equal(((await chat.json()) as { prompt: string }).prompt, prompt.text, 'as chat renders it');
  const countedChain = await client.responses.inputTokens.count({
    model: 'm',
    previous_response_id: first.id,
    input: [result],
    tools,
    tool_choice: 'none',
  });
  t.equal(countedChain.input_tokens, counted.input_tokens);

  const stored = await client.responses.retrieve(chained.id);
  t.same(stored.output, chained.output, 'GET /v1/responses/{id}');
  await client.responses.delete(chained.id);
  t.match(await failure(client.responses.retrieve(chained.id)), { status: 404 });
});

t.test('a streamed function call: argument deltas, assembled equal to the non-streamed call', async (t) => {
  const { client } = await sdk(t);
  const body = params(
    {
      model: 'm',
      input: 'Weather?',
      tools,
      tool_choice: { type: 'function' as const, name: 'get_weather' },
      parallel_tool_calls: false,
      temperature: 0,
      max_output_tokens: 200,
    },
    { logit_bias: CALL_NOW },
  );
  const plain = await client.responses.create(body);
  const stream = client.responses.stream(body);
  const types: string[] = [];
  let args = '';
  stream.on('event', (e) => types.push(e.type));
  stream.on('response.function_call_arguments.delta', (e) => {
    args += e.delta;
  });
  const final = await stream.finalResponse();
  const a = plain.output.find((o) => o.type === 'function_call');
  const b = final.output.find((o) => o.type === 'function_call');
  t.ok(types.filter((x) => x === 'response.function_call_arguments.delta').length >= 2, 'arguments in pieces');
  t.ok(types.includes('response.function_call_arguments.done'));
  t.equal(types.at(-1), 'response.completed');
  t.equal(b?.type === 'function_call' ? b.arguments : null, args, 'deltas make the arguments');
  t.equal(b?.type === 'function_call' ? b.arguments : null, a?.type === 'function_call' ? a.arguments : undefined);
  t.equal(b?.type === 'function_call' ? b.name : null, 'get_weather');
});

t.test('tool_choice allowed_tools: only the allowed functions are offered', async (t) => {
  const { client } = await sdk(t);
  const TIME = { type: 'object', properties: { zone: { type: 'string', enum: ['utc'] } }, required: ['zone'] };
  const both: OpenAI.Responses.FunctionTool[] = [
    ...tools,
    { type: 'function', name: 'get_time', parameters: TIME, strict: true },
  ];
  const r = await client.responses.create(
    params(
      {
        model: 'm',
        input: 'Time?',
        tools: both,
        tool_choice: {
          type: 'allowed_tools' as const,
          mode: 'required' as const,
          tools: [{ type: 'function' as const, name: 'get_time' }],
        },
        parallel_tool_calls: false,
        temperature: 0,
        max_output_tokens: 200,
      },
      { logit_bias: CALL_NOW },
    ),
  );
  const calls = r.output.filter((o) => o.type === 'function_call');
  t.ok(calls.length >= 1, 'a call, as required');
  t.same(
    calls.map((c) => (c.type === 'function_call' ? c.name : '')),
    calls.map(() => 'get_time'),
    'only the allowed one',
  );
});

t.test('text.format json_schema: the output validates', async (t) => {
  const { client } = await sdk(t);
  const schema = {
    type: 'object',
    properties: { answer: { type: 'string', enum: ['yes', 'no'] } },
    required: ['answer'],
    additionalProperties: false,
  };
  const r = await client.responses.create({
    model: 'm',
    input: 'Is it raining?',
    text: { format: { type: 'json_schema', name: 'verdict', schema, strict: true } },
    temperature: 0,
    max_output_tokens: 60,
  });
  t.ok(ajv.validate(schema, JSON.parse(r.output_text)), `${r.output_text} validates`);
  t.same(r.text?.format, { type: 'json_schema', name: 'verdict', schema, strict: true });
});

t.test('reasoning: a reasoning item before the message, streamed as reasoning_text', async (t) => {
  const template = await templateText('llama-cpp-deepseek-r1');
  const { client, steps } = await sdk(t, { chat: { template } });
  // A grammar fixes the output: the template opened <think>, the model closes it and answers.
  const body = params(
    { model: 'm', input: 'Is it?', max_output_tokens: 30 },
    { grammar: 'root ::= "I weigh it" "</think>" "Yes."' },
  );
  const r = await client.responses.create(body);
  t.same(
    r.output.map((o) => o.type),
    ['reasoning', 'message'],
  );
  const thought = r.output[0];
  t.equal(thought?.type === 'reasoning' ? thought.content?.[0]?.text.trim() : null, 'I weigh it');
  t.equal(r.output_text, 'Yes.');
  t.ok((r.usage?.output_tokens_details.reasoning_tokens ?? 0) > 0, 'reasoning tokens counted');
  t.ok((r.usage?.output_tokens_details.reasoning_tokens ?? 0) < (r.usage?.output_tokens ?? 0));

  const stream = client.responses.stream(body);
  const types: string[] = [];
  stream.on('event', (e) => types.push(e.type));
  const final = await stream.finalResponse();
  t.match(
    final.output,
    r.output.map((o, i) => ({ ...o, id: final.output[i]?.id })),
    'the same items, streamed',
  );
  t.ok(types.indexOf('response.reasoning_text.delta') < types.indexOf('response.output_text.delta'));
  t.ok(types.includes('response.reasoning_text.done'));

  // The reasoning item goes back as the assistant's reasoning; the template decides whether it renders it. DeepSeek
  // R1's drops an earlier turn's thought and keeps its answer; the new reply is split as llama.cpp's parser splits
  // the text the grammar fixes.
  const conversation = [{ role: 'user', content: 'Is it?' }, ...r.output, { role: 'user', content: 'Sure?' }];
  const grammar = 'root ::= "Still weighing" "</think>" "No."';
  const next = await client.responses.create(
    params(
      { model: 'm', input: conversation, max_output_tokens: 30 } as OpenAI.Responses.ResponseCreateParamsNonStreaming,
      {
        grammar,
      },
    ),
  );
  t.equal(
    lastPrompt(model, steps).text,
    '<|endoftext|><｜User｜>Is it?<｜end▁of▁sentence｜><｜Assistant｜>Yes.<｜end▁of▁sentence｜><｜User｜>Sure?<｜end▁of▁sentence｜><｜Assistant｜><think>\n',
    'the earlier answer is rendered, its reasoning dropped, as the template says',
  );
  const split = await parsedReply(model, template, 'Still weighing</think>No.');
  // (llama.cpp keeps the newline the template wrote after <think> in the thought)
  t.same(split, { reasoning: '\nStill weighing', content: 'No.' }, 'the parser splits at </think>');
  t.same(
    next.output.map((o) => (o.type === 'reasoning' ? ['reasoning', o.content?.[0]?.text] : [o.type, next.output_text])),
    [
      ['reasoning', split.reasoning],
      ['message', split.content],
    ],
    "the reply's reasoning and message are the parser's split",
  );

  // A template that renders an earlier thought (Bielik's): the reasoning item reaches the prompt, in its turn.
  const bielik = await sdk(t, { chat: { template: await templateText('Bielik-11B-v3.0-Instruct') } });
  await bielik.client.responses.create({
    model: 'm',
    input: conversation,
    max_output_tokens: 1,
  } as OpenAI.Responses.ResponseCreateParamsNonStreaming);
  t.equal(
    lastPrompt(model, bielik.steps).text,
    '<|endoftext|><|im_start|>user\nIs it?<|im_end|>\n<|im_start|>assistant\n<think>\nI weigh it\n</think>\nYes.<|im_end|>\n<|im_start|>user\nSure?<|im_end|>\n<|im_start|>assistant\n<think>\n',
    'the earlier reasoning is rendered where the template puts it',
  );
});

t.test('store: false keeps nothing; an unknown previous_response_id is a 400 that says why', async (t) => {
  const { client } = await sdk(t);
  const r = await client.responses.create({ model: 'm', input: 'Hi', max_output_tokens: 2, store: false });
  t.equal((r as { store?: boolean }).store, false, 'echoed');
  t.match(await failure(client.responses.retrieve(r.id)), { status: 404 });
  const err = await failure(client.responses.create({ model: 'm', input: 'Hi', previous_response_id: r.id }));
  t.type(err, OpenAI.BadRequestError);
  t.match(err, {
    status: 400,
    error: {
      param: 'previous_response_id',
      code: 'previous_response_not_found',
      message: /kept in this server's memory/,
    },
  });
});

t.test('refusals: a 400 naming the field, in OpenAI shape, and nothing reaches the scheduler', async (t) => {
  const { client, ended } = await sdk(t);
  const cases: [string, Record<string, unknown>, string, RegExp][] = [
    ['a hosted tool', { tools: [{ type: 'web_search' }] }, 'tools[0].type', /no hosted tools/],
    ['a function without a name', { tools: [{ type: 'function', parameters: WEATHER }] }, 'tools[0].name', /name/],
    [
      'parameters not a schema',
      { tools: [{ type: 'function', name: 'f', parameters: { type: 'objekt' } }] },
      'tools[0].parameters',
      /not a JSON Schema/,
    ],
    ['a duplicate tool', { tools: [tools[0], tools[0]] }, 'tools[1].name', /Duplicate tool name/],
    [
      'tool_choice naming an unknown function',
      { tools, tool_choice: { type: 'function', name: 'nope' } },
      'tool_choice.name',
      /'nope', which is not in 'tools'/,
    ],
    [
      'an image',
      { input: [{ role: 'user', content: [{ type: 'input_image', image_url: 'data:,' }] }] },
      'input[0].content[0].type',
      /text-only model/,
    ],
    [
      'a function_call without call_id',
      { input: [{ type: 'function_call', name: 'f', arguments: '{}' }] },
      'input[0].call_id',
      /Missing required parameter/,
    ],
    [
      'an item_reference',
      { input: [{ type: 'item_reference', id: 'msg_1' }] },
      'input[0].type',
      /previous_response_id/,
    ],
    ['an unknown item', { input: [{ type: 'computer_call', id: 'x' }] }, 'input[0].type', /not supported/],
    ['an item without type or role', { input: [{ content: 'x' }] }, 'input[0].type', /or a 'role'/],
    [
      'a hosted tool_choice',
      { tools, tool_choice: { type: 'web_search_preview' } },
      'tool_choice.type',
      /no hosted tools/,
    ],
    [
      'allowed_tools naming an unknown function',
      { tools, tool_choice: { type: 'allowed_tools', mode: 'auto', tools: [{ type: 'function', name: 'nope' }] } },
      'tool_choice.tools[0].name',
      /not in 'tools'/,
    ],
    ['text.verbosity', { text: { verbosity: 'low' } }, 'text.verbosity', /medium/],
    ['no input', { input: undefined }, 'input', /Missing required parameter/],
    ['background', { background: true }, 'background', /not supported/],
    ['truncation auto', { truncation: 'auto' }, 'truncation', /never cut/],
    ['top_logprobs', { top_logprobs: 3 }, 'top_logprobs', /chat\/completions/],
    ['logprobs included', { include: ['message.output_text.logprobs'] }, 'include[0]', /log probabilities/],
    [
      'a json_schema that is not a schema',
      { text: { format: { type: 'json_schema', name: 'x', schema: { type: 12 } } } },
      'text.format.schema',
      /not a JSON Schema/,
    ],
    [
      'tools with a JSON format',
      { tools, text: { format: { type: 'json_object' } } },
      'text.format',
      /cannot be combined/,
    ],
    ['a bad temperature', { temperature: 7 }, 'temperature', /must be <= 2/],
    ['a zero limit', { max_output_tokens: 0 }, 'max_output_tokens', /must be >= 1/],
  ];
  for (const [name, extra, param, message] of cases) {
    const err = await failure(client.responses.create({ model: 'm', input: 'Hi', ...extra } as never));
    t.type(err, OpenAI.BadRequestError, name);
    t.match(err, { status: 400, error: { type: 'invalid_request_error', param, message } }, name);
  }
  t.equal(ended.length, 0, 'no request reached the scheduler');
});

t.test('the API key: 401 in OpenAI shape; a stream cut by shutdown ends with error and response.failed', async (t) => {
  const { client, url, scheduler } = await sdk(
    t,
    { config: { ctxPerSlot: 1024, slots: 2, apiKeys: ['sk-r'] } },
    'sk-r',
  );
  const wrong = new OpenAI({ baseURL: `${url}/v1`, apiKey: 'sk-wrong', maxRetries: 0 });
  const denied = await failure(wrong.responses.create({ model: 'm', input: 'Hi' }));
  t.type(denied, OpenAI.AuthenticationError);
  t.match(denied, { status: 401, error: { type: 'authentication_error', code: 'invalid_api_key' } });

  const raw = await client.responses.create(
    params({ model: 'm', input: 'Go on', max_output_tokens: 1000, stream: true as const }, { logit_bias: NO_EOG }),
  );
  const types: string[] = [];
  let last: OpenAI.Responses.ResponseStreamEvent | undefined;
  for await (const e of raw) {
    types.push(e.type);
    if (e.type === 'response.output_text.delta' && types.length === 5) await scheduler.close(0);
    last = e;
  }
  t.equal(types.at(-2), 'error');
  t.equal(types.at(-1), 'response.failed');
  t.match(last, { response: { status: 'failed', error: { code: 'shutting_down', message: /shutting down/ } } });
});

t.test('metrics count these responses as chat ones', async (t) => {
  const { client, url } = await sdk(t, { config: { ctxPerSlot: 1024, slots: 2, endpoints: { metrics: true } } });
  const read = async () => parseExposition(await (await fetch(`${url}/metrics`)).text());
  const before = await read();
  const r = await client.responses.create(
    params({ model: 'm', input: 'Count me', max_output_tokens: 5 }, { logit_bias: NO_EOG }),
  );
  const after = await read();
  const delta = (name: string) => sampleValue(after, name) - sampleValue(before, name);
  t.equal(delta('llamacpp:tokens_predicted_total'), r.usage?.output_tokens);
  t.equal(
    delta('llamacpp:prompt_tokens_total'),
    (r.usage?.input_tokens ?? 0) - (r.usage?.input_tokens_details.cached_tokens ?? 0),
  );
});
