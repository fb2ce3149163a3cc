// llama.cpp's chat layer through the engine: every template of llama.cpp's corpus renders, output parsing (tool
// calls, reasoning) as a request's text grows, grammar conversion and checks.
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import t from 'tap';
import { ChatTemplates, chatTemplateMarkers, checkGrammar, jsonSchemaToGrammar } from '../../src/engine/index.ts';
import { ArgumentError, TemplateError, ToolChoiceError } from '../../src/errors.ts';
import { llamaCppDir } from '../../src/paths.ts';
import { loadModel, templateText } from '../helpers/models.ts';

const model = await loadModel('tiny-qwen');
t.teardown(() => model.dispose());

const WEATHER_TOOL = {
  type: 'function',
  function: {
    name: 'get_weather',
    description: 'Current weather in a city',
    parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
  },
};
/** The three conversations every template is asked to render. */
const CONVERSATIONS = {
  plain: { messages: [{ role: 'user', content: 'Hello there, template' }] },
  'system + multi-turn': {
    messages: [
      { role: 'system', content: 'Be brief.' },
      { role: 'user', content: 'Hi' },
      { role: 'assistant', content: 'Hello!' },
      { role: 'user', content: 'How are you, template?' },
    ],
  },
  'tool call + tool result': {
    tools: [WEATHER_TOOL],
    messages: [
      { role: 'user', content: 'Weather in Paris, template?' },
      {
        role: 'assistant',
        content: null,
        tool_calls: [
          { id: 'call_1', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris"}' } },
        ],
      },
      { role: 'tool', tool_call_id: 'call_1', content: '{"temperature": 21}' },
    ],
  },
} as const;

t.test(
  "every template in llama.cpp's corpus renders three conversations, or refuses with its own message",
  async (t) => {
    const dir = join(llamaCppDir(), 'models', 'templates');
    const files = (await readdir(dir)).filter((f) => f.endsWith('.jinja')).sort();
    t.ok(files.length >= 60, `${files.length} templates`);
    let rendered = 0;
    const refusals: string[] = [];
    for (const file of files) {
      const chat = new ChatTemplates(model, { template: await readFile(join(dir, file), 'utf8') });
      t.ok(chat.info.jinja, `${file}: rendered by Jinja`);
      for (const [name, conversation] of Object.entries(CONVERSATIONS)) {
        try {
          const prompt = await chat.apply(conversation);
          // The user's words are in the prompt (the last user turn of each conversation says "template").
          t.match(prompt.prompt, /template/, `${file} / ${name}: the prompt holds the conversation`);
          t.not(prompt.format, '', `${file} / ${name}: a chat format`);
          rendered++;
        } catch (err) {
          t.ok(
            err instanceof TemplateError || err instanceof ArgumentError,
            `${file} / ${name}: a typed refusal (${err})`,
          );
          t.ok((err as Error).message.length > 0, `${file} / ${name}: with a message`);
          refusals.push(`${file} / ${name}: ${(err as Error).message}`);
        }
      }
      chat.dispose();
    }
    t.comment(`${rendered} of ${files.length * 3} rendered; refusals:\n${refusals.join('\n')}`);
    t.ok(rendered >= files.length * 3 - 6, 'nearly all render');
    // Known complaints, in the templates' own words.
    t.ok(refusals.some((r) => /gemma-2.*roles must alternate/i.test(r)));
    t.ok(refusals.some((r) => /Mistral.*Tool call IDs should be alphanumeric strings with length 9/i.test(r)));
  },
);

t.test('a template that does not parse is refused when the chat layer is made', async (t) => {
  t.throws(() => new ChatTemplates(model, { template: '{% for m in messages %}{{ m.content }' }), {
    code: 'TEMPLATE_FAILED',
    message: /does not parse/,
  });
});

t.test(
  "the model's own template by default; chatml when a model has none; built-in names use the legacy renderer",
  async (t) => {
    const own = new ChatTemplates(model);
    t.ok(own.info.fromModel);
    t.equal(own.info.source.trim(), (await templateText('Qwen-Qwen2.5-7B-Instruct')).trim());
    t.ok(own.info.caps.supports_tools);
    t.teardown(() => own.dispose());
    const named = new ChatTemplates(model, { template: 'llama3' });
    t.notOk(named.info.jinja, 'a built-in name is rendered by the legacy renderer');
    const prompt = await named.apply({ messages: [{ role: 'user', content: 'hi' }] });
    t.match(prompt.prompt, /<\|start_header_id\|>user<\|end_header_id\|>\n\nhi<\|eot_id\|>/);
    await t.rejects(named.apply({ messages: [{ role: 'user', content: 'hi' }], tools: [WEATHER_TOOL] }), {
      message: /tools need a Jinja chat template/,
    });
    named.dispose();
    const legacy = new ChatTemplates(model, { jinja: false, template: await templateText('google-gemma-4-31B-it') });
    await t.rejects(
      legacy.apply({ messages: [{ role: 'user', content: 'hi' }] }),
      TemplateError,
      'Gemma 4 needs Jinja',
    );
    legacy.dispose();
  },
);

t.test("tool_choice required: a grammar of the calls alone, from the generated text's first token", async (t) => {
  const chat = new ChatTemplates(model);
  t.teardown(() => chat.dispose());
  const ask = {
    messages: [{ role: 'user', content: 'weather?' }],
    tools: [WEATHER_TOOL],
    tool_choice: 'required' as const,
  };
  const prompt = await chat.apply({ ...ask, parallel_tool_calls: false });
  t.equal(prompt.grammar?.lazy, false, 'not lazy');
  t.equal(prompt.grammar?.kind, 0, 'applied from its root to the output, not advanced past the prompt');
  t.same(prompt.grammar?.triggers, []);
  const grammar = prompt.grammar?.text ?? '';
  // Qwen 2.5's calls: `<tool_call>` opens the answer, and its repetition of calls is held to one.
  t.match(grammar, /^root ::= tool-calls$/m);
  t.match(grammar, /^tool-calls ::= \(tool-call\)$/m, 'one call: parallel_tool_calls false');
  t.notMatch(grammar, /until/, 'no free text anywhere');
  await checkGrammar(model, grammar);
  const parallel = await chat.apply(ask);
  t.match(parallel.grammar?.text ?? '', /^tool-calls ::= \(tool-call\)\+$/m, 'parallel: one or more');

  // A template whose grammar can't hold the arguments to their schema refuses, saying why.
  const gemma4 = new ChatTemplates(model, { template: await templateText('google-gemma-4-31B-it') });
  t.teardown(() => gemma4.dispose());
  await t.rejects(gemma4.apply(ask), ToolChoiceError);
  await t.rejects(gemma4.apply(ask), { code: 'TOOL_CHOICE_UNFORCEABLE', message: /arguments are free-form/ });
  const ping = { type: 'function', function: { name: 'ping', parameters: { type: 'object', properties: {} } } };
  const free = await gemma4.apply({ ...ask, tools: [ping] });
  t.match(free.grammar?.text ?? '', /^root ::= .*tool-call$/m, 'a tool without parameters can be forced');
  t.equal(free.reasoningStart, '<|channel>thought');
  t.same(free.reasoningEnds, ['<channel|>']);
});

t.test("chatTemplateMarkers: the markers llama.cpp's chat layer names for a template", async (t) => {
  const markers = await chatTemplateMarkers(await templateText('google-gemma-4-31B-it'));
  for (const m of ['<|tool_call>', '<tool_call|>', '<|channel>thought', '<channel|>']) t.ok(markers.includes(m), m);
  await t.rejects(chatTemplateMarkers(''), ArgumentError);
  await t.rejects(chatTemplateMarkers('{% if %}'), TemplateError);
});

t.test('tool calls parse as the text grows: id and name once, then the arguments in pieces', async (t) => {
  const chat = new ChatTemplates(model);
  t.teardown(() => chat.dispose());
  const prompt = await chat.apply({ messages: [{ role: 'user', content: 'weather?' }], tools: [WEATHER_TOOL] });
  t.ok(prompt.grammar?.lazy, 'tool_choice auto: a lazy grammar');
  t.ok((prompt.grammar?.triggers.length ?? 0) > 0, 'with triggers');
  const parser = chat.parser(prompt.parserConfig);
  const output = 'Let me check.<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>';
  const deltas = [];
  for (let i = 0; i < output.length; i += 5) deltas.push(...parser.push(output.slice(i, i + 5)));
  deltas.push(...parser.push('', true));
  const content = deltas.map((d) => d.content ?? '').join('');
  t.equal(content, 'Let me check.');
  const headers = deltas.filter((d) => d.toolName !== undefined);
  t.equal(headers.length, 1, 'the name is sent once');
  t.equal(headers[0]?.toolName, 'get_weather');
  t.match(headers[0]?.toolId, /^call_/);
  const args = deltas.map((d) => d.toolArguments ?? '').join('');
  t.same(JSON.parse(args), { city: 'Paris' });
  t.ok(deltas.filter((d) => d.toolArguments !== undefined).length > 1, 'arguments in pieces');
  const message = parser.message();
  t.equal(message.toolCalls.length, 1);
  t.equal(message.toolCalls[0]?.id, headers[0]?.toolId, 'the streamed id is the message id');
  t.equal(message.toolCalls[0]?.arguments, args);
});

t.test('output that is off the template format is kept as content, not dropped', async (t) => {
  const chat = new ChatTemplates(model);
  t.teardown(() => chat.dispose());
  const prompt = await chat.apply({ messages: [{ role: 'user', content: 'x' }], tools: [WEATHER_TOOL] });
  const parser = chat.parser(prompt.parserConfig);
  parser.push('plain words <tool_call>\n{"name": "get_weather", "argu');
  parser.push('', true);
  const m = parser.message();
  t.ok(m.content.length > 0 || m.toolCalls.length > 0, 'something of it survives');
  t.match(m.content + m.toolCalls.map((c) => c.name).join(''), /plain words/);
});

t.test('reasoning: <think> goes to reasoning_content (deepseek), stays in content (none)', async (t) => {
  const source = await templateText('llama-cpp-deepseek-r1');
  for (const [format, reasoning, content] of [
    ['deepseek', 'weighing it', 'The answer.'],
    ['none', '', /<think>|weighing it<\/think>The answer\./],
  ] as const) {
    const chat = new ChatTemplates(model, { template: source, reasoningFormat: format });
    const prompt = await chat.apply({ messages: [{ role: 'user', content: 'q' }] });
    const parser = chat.parser(prompt.parserConfig);
    // The template's generation prompt may already open the thought; the model then writes the rest.
    const opened = /<think>\n?$/.test(prompt.prompt);
    const out = `${opened ? '' : '<think>'}weighing it</think>The answer.`;
    for (const ch of out) parser.push(ch);
    parser.push('', true);
    const m = parser.message();
    // llama.cpp keeps the newline the template put after <think> in the thought.
    t.equal(m.reasoning.trim(), reasoning, `${format}: reasoning`);
    t.match(m.content, content, `${format}: content`);
    chat.dispose();
  }
});

t.test('JSON schema to grammar, and grammar checks, off the main thread with the reason on failure', async (t) => {
  const grammar = await jsonSchemaToGrammar({ type: 'object', properties: { ok: { type: 'boolean' } } });
  t.match(grammar, /^root ::= /m);
  await t.rejects(jsonSchemaToGrammar({ $ref: '#/definitions/missing' }), ArgumentError);
  t.equal(await checkGrammar(model, 'root ::= "a" | "b"'), 'root ::= "a" | "b"');
  await t.rejects(checkGrammar(model, 'root ::= missing-rule'), {
    code: 'INVALID_ARGUMENT',
    message: /does not parse/,
  });
  await t.rejects(checkGrammar(model, '%llguidance {}'), { message: /llguidance/ });
});
