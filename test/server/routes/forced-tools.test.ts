// tool_choice that forces a call, over every template of llama.cpp's corpus: chat's 'required' and named function,
// the Responses API's 'required' and the Messages API's {type: 'any'} / {type: 'tool'} come back with a parsed call
// of an allowed tool whose arguments validate against its schema (ajv), or a 400 naming tool_choice that says why
// the template cannot force one. Each template runs on a generated model whose vocabulary holds the template's
// markers as single control tokens (make-model's --template-special-tokens; tiny-chat: a 1,024-token SentencePiece
// vocabulary, so that sampling with a grammar stays cheap), with thinking off and, where the template reasons, a
// reasoning budget that bounds the reasoning before the call. Random weights never write a call by themselves:
// only the grammar makes them.
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Ajv } from 'ajv';
import t, { type Test } from 'tap';
import { ChatTemplates, Model } from '../../../src/engine/index.ts';
import { ToolChoiceError } from '../../../src/errors.ts';
import { llamaCppDir } from '../../../src/paths.ts';
import { templateMarkerTokens } from '../../../src/tools/make-model.ts';
import { ensureModel } from '../../../src/tools/model-cache.ts';
import { errorOf, makeHarness, sseEvents } from '../harness.ts';

const ajv = new Ajv({ strict: false });

// Booleans and bounded integers, all required: a call random weights can finish in a few dozen tokens whatever the
// format (XML-style formats let optional arguments repeat, which random weights do until max_tokens).
const LIGHTS = {
  type: 'object',
  properties: { on: { type: 'boolean' }, level: { type: 'integer', minimum: 0, maximum: 100 } },
  required: ['on', 'level'],
  additionalProperties: false,
} as const;
const WEATHER = {
  type: 'object',
  properties: { days: { type: 'integer', minimum: 1, maximum: 7 } },
  required: ['days'],
} as const;
/** No parameters: any object is valid, so even a format with free-form arguments can force it. */
const PING = { type: 'object', properties: {} } as const;
const SCHEMAS: Record<string, object> = { set_lights: LIGHTS, get_weather: WEATHER, ping: PING };
const tool = (name: string) => ({ type: 'function', function: { name, description: '', parameters: SCHEMAS[name] } });
const TOOLS = [tool('set_lights'), tool('get_weather')];
const ASK = [{ role: 'user', content: 'Turn the lights on.' }];
const MAX_TOKENS = 256;
const BUDGET = 6;

/**
 * The templates that refuse a forced call of set_lights / get_weather, and why (the 400's message). The rest of the
 * corpus must force one. Templates without a tool-call format llama.cpp knows refuse every tool; the others can
 * still force a call of a tool without parameters (ping).
 */
const REFUSALS: Record<string, RegExp> = {
  'HuggingFaceTB-SmolLM3-3B.jinja': /knows no tool-call format/,
  'deepseek-ai-DeepSeek-R1-Distill-Llama-8B.jinja': /knows no tool-call format/,
  'google-gemma-2-2b-it.jinja': /knows no tool-call format/,
  'ibm-granite-granite-3.3-2B-Instruct.jinja': /knows no tool-call format/,
  'llama-cpp-rwkv-world.jinja': /knows no tool-call format/,
  'microsoft-Phi-3.5-mini-instruct.jinja': /knows no tool-call format/,
  // Gemma 4 writes arguments in its own value syntax, which llama.cpp's grammar does not hold to a schema.
  'google-gemma-4-31B-it.jinja': /\(peg-gemma4\).*arguments are free-form/,
  'google-gemma-4-31B-it-interleaved.jinja': /\(peg-gemma4\).*arguments are free-form/,
  // Argument values as free text (Kimi K3) or Python literals of any type (LFM2).
  'Kimi-K3.jinja': /the value of '\w+' is not held to its schema/,
  'LFM2-8B-A1B.jinja': /the value of '\w+' is not held to its schema/,
  'LFM2.5-8B-A1B.jinja': /the value of '\w+' is not held to its schema/,
  'LFM2.5-Instruct.jinja': /the value of '\w+' is not held to its schema/,
  // Arguments as a repetition of optional ones: a required one can be left out.
  'muse-glimmer.jinja': /can leave out the required argument "on"/,
  'openbmb-MiniCPM5-1B.jinja': /can leave out the required argument "on"/,
};

/**
 * Where a format's grammar takes any number of characters (Kimi K2's call index `[0-9]+`, gpt-oss's constraint type,
 * Kimi K3's and muse's call attributes, Gemma 4's keys), random weights can write them until max_tokens: a logit bias
 * on the text that ends them lets the call finish, as a client could ask. The grammar still decides what is written.
 */
const ENDERS: Record<string, string[]> = {
  'Kimi-K2-Instruct.jinja': ['<|tool_call_argument_begin|>'],
  'Kimi-K2-Thinking.jinja': ['<|tool_call_argument_begin|>'],
  'moonshotai-Kimi-K2.jinja': ['<|tool_call_argument_begin|>'],
  'openai-gpt-oss-120b.jinja': ['<|message|>'],
  'muse-glimmer.jinja': ['<|message|>'],
  'Kimi-K3.jinja': ['<|sep|>'],
  'google-gemma-4-31B-it.jinja': ['}'],
  'google-gemma-4-31B-it-interleaved.jinja': ['}'],
};

/** llama-server's logit_bias for each text's token (a marker, or one character). */
function enderBias(model: Model, texts: readonly string[]): [number, number][] {
  return texts.map((text): [number, number] => {
    const ids = Array.from(model.tokenize(text, { addSpecial: false, parseSpecial: true }));
    const id =
      ids.length === 1
        ? ids[0]
        : Array.from({ length: model.info.nVocab }, (_, i) => i).find((i) => model.detokenize([i]) === text);
    if (id === undefined) throw new Error(`no token for ${text}`);
    return [id, 10];
  });
}

interface Call {
  name: string;
  arguments: string;
}

function validCalls(t: Test, calls: readonly Call[], allowed: readonly string[], what: string): void {
  t.ok(calls.length >= 1, `${what}: a call`);
  for (const call of calls) {
    t.ok(allowed.includes(call.name), `${what}: ${call.name} is an allowed tool (${allowed.join(', ')})`);
    let args: unknown;
    try {
      args = JSON.parse(call.arguments);
    } catch {
      t.fail(`${what}: arguments are JSON: ${call.arguments}`);
      continue;
    }
    const schema = SCHEMAS[call.name];
    if (schema === undefined) continue;
    t.ok(ajv.validate(schema, args), `${what}: ${call.name}(${JSON.stringify(args)}) validates against its schema`);
  }
}

/** Tool calls assembled from chat.completion.chunk deltas, and the finish reason. */
function streamedChat(body: string): { calls: Call[]; finish: string | null; reasoning: string } {
  const calls: Call[] = [];
  let finish: string | null = null;
  let reasoning = '';
  for (const e of sseEvents(body)) {
    if (e === '[DONE]') continue;
    const choice = (
      e as {
        choices: { delta: { tool_calls?: unknown[]; reasoning_content?: string }; finish_reason: string | null }[];
      }
    ).choices[0];
    if (!choice) continue;
    finish = choice.finish_reason ?? finish;
    reasoning += choice.delta.reasoning_content ?? '';
    for (const d of (choice.delta.tool_calls ?? []) as { index: number; function?: Partial<Call> }[]) {
      calls[d.index] ??= { name: '', arguments: '' };
      const call = calls[d.index] as Call;
      call.name += d.function?.name ?? '';
      call.arguments += d.function?.arguments ?? '';
    }
  }
  return { calls, finish, reasoning };
}

type Api = 'chat' | 'responses' | 'messages';

/**
 * One forced request on one API, as that API spells it: `named` a tool, else any tool; thinking on or off (as the
 * API turns it off); `extra`: the reasoning budget.
 */
function forcedBody(
  api: Api,
  tools: object[],
  named: string | null,
  stream: boolean,
  thinking: boolean,
  extra: object,
): object {
  const common = {
    stream,
    temperature: 0,
    ...extra,
    ...(thinking ? { chat_template_kwargs: { enable_thinking: true } } : {}),
  };
  if (api === 'chat') {
    return {
      ...common,
      ...(thinking ? {} : { reasoning_effort: 'none' }),
      messages: ASK,
      tools,
      parallel_tool_calls: false,
      max_tokens: MAX_TOKENS,
      tool_choice: named === null ? 'required' : { type: 'function', function: { name: named } },
    };
  }
  const flat = tools.map((x) => (x as ReturnType<typeof tool>).function);
  if (api === 'responses') {
    return {
      ...common,
      ...(thinking ? {} : { reasoning: { effort: 'none' } }),
      input: ASK[0]?.content,
      tools: flat.map((f) => ({ type: 'function', ...f })),
      parallel_tool_calls: false,
      max_output_tokens: MAX_TOKENS,
      tool_choice: named === null ? 'required' : { type: 'function', name: named },
    };
  }
  return {
    ...common,
    ...(thinking ? {} : { thinking: { type: 'disabled' } }),
    messages: ASK,
    tools: flat.map((f) => ({ name: f.name, description: f.description, input_schema: f.parameters })),
    max_tokens: MAX_TOKENS,
    tool_choice: {
      ...(named === null ? { type: 'any' } : { type: 'tool', name: named }),
      disable_parallel_tool_use: true,
    },
  };
}

const URL: Record<Api, string> = { chat: '/v1/chat/completions', responses: '/v1/responses', messages: '/v1/messages' };

/** The calls an API's answer (or stream) reports, whether it says a call ended the answer, and chat's reasoning. */
function callsOf(api: Api, stream: boolean, body: string): { calls: Call[]; called: boolean; reasoning?: string } {
  if (api === 'chat') {
    if (stream) {
      const { calls, finish, reasoning } = streamedChat(body);
      return { calls, called: finish === 'tool_calls', reasoning };
    }
    const choice = JSON.parse(body).choices[0];
    const calls = (choice.message.tool_calls ?? []).map((c: { function: Call }) => c.function);
    return { calls, called: choice.finish_reason === 'tool_calls', reasoning: choice.message.reasoning_content ?? '' };
  }
  if (api === 'responses') {
    const response = stream
      ? (
          sseEvents(body).find((e) => (e as { type: string }).type === 'response.completed') as
            | { response: { status: string; output: { type: string }[] } }
            | undefined
        )?.response
      : JSON.parse(body);
    const items = (response?.output ?? []) as { type: string; name: string; arguments: string }[];
    const calls = items
      .filter((i) => i.type === 'function_call')
      .map(({ name, arguments: a }) => ({ name, arguments: a }));
    return { calls, called: response?.status === 'completed' && calls.length > 0 };
  }
  if (stream) {
    const calls: Call[] = [];
    let stop: string | null = null;
    for (const e of sseEvents(body) as {
      type: string;
      index?: number;
      content_block?: { type: string; name: string };
      delta?: { type?: string; partial_json?: string; stop_reason?: string };
    }[]) {
      if (e.type === 'content_block_start' && e.content_block?.type === 'tool_use')
        calls[e.index ?? 0] = { name: e.content_block.name, arguments: '' };
      if (e.type === 'content_block_delta' && e.delta?.type === 'input_json_delta') {
        const call = calls[e.index ?? 0];
        if (call) call.arguments += e.delta.partial_json ?? '';
      }
      if (e.type === 'message_delta') stop = e.delta?.stop_reason ?? null;
    }
    const made = calls.filter((c) => c !== undefined).map((c) => ({ ...c, arguments: c.arguments || '{}' }));
    return { calls: made, called: stop === 'tool_use' };
  }
  const message = JSON.parse(body);
  const calls = (message.content as { type: string; name: string; input: unknown }[])
    .filter((b) => b.type === 'tool_use')
    .map((b) => ({ name: b.name, arguments: JSON.stringify(b.input) }));
  return { calls, called: message.stop_reason === 'tool_use' };
}

/** A model for `template` whose vocabulary holds the template's markers as control tokens. */
async function modelFor(template: string): Promise<Model> {
  const specialTokens = await templateMarkerTokens(template);
  return Model.load(
    await ensureModel({ preset: 'tiny-chat', quant: 'F16', seed: 1, chatTemplate: template, specialTokens }),
  );
}

const dir = join(llamaCppDir(), 'models', 'templates');
const files = (await readdir(dir)).filter((f) => f.endsWith('.jinja')).sort();

t.test(
  'every corpus template: a forced call of an allowed tool, valid against its schema, or a 400 saying why',
  async (t) => {
    const forced: string[] = [];
    const refused: string[] = [];
    const reasoned: string[] = [];
    for (const [i, file] of files.entries()) {
      const template = await readFile(join(dir, file), 'utf8');
      await t.test(file, async (t) => {
        const model = await modelFor(template);
        t.teardown(() => model.dispose());
        // What llama.cpp's chat layer knows of the template: its reasoning tags (a budget bounds the reasoning then).
        const probe = new ChatTemplates(model);
        t.teardown(() => probe.dispose());
        const reasons = await probe
          .apply({ messages: ASK, tools: [tool('ping')], tool_choice: 'required' })
          .then((p) => (p.reasoningEnds.length > 0 ? { reasoning_budget_tokens: BUDGET } : {}))
          .catch((err: unknown) => (err instanceof ToolChoiceError ? null : Promise.reject(err)));
        const thinks = probe.info.supportsThinking;
        const bias = ENDERS[file] ? { logit_bias: enderBias(model, ENDERS[file]) } : {};
        const { app } = await makeHarness(t, model, { slots: 1, ctxPerSlot: 4096 });
        const send = (api: Api, tools: object[], named: string | null, stream: boolean, thinking: boolean) =>
          app.inject({
            method: 'POST',
            url: URL[api],
            payload: forcedBody(api, tools, named, stream, thinking, { ...reasons, ...bias }),
          });

        const check = (res: Awaited<ReturnType<typeof send>>, api: Api, named: string | null, stream: boolean) => {
          const label = `${api}${stream ? ', streamed' : ''}${named ? `, named ${named}` : ', required'}`;
          t.equal(res.statusCode, 200, `${label}: ${res.body.slice(0, 300)}`);
          const result = callsOf(api, stream, res.body);
          t.ok(result.called, `${label}: the answer ends with its call (${res.body.slice(-300)})`);
          validCalls(t, result.calls, named === null ? ['set_lights', 'get_weather'] : [named], label);
          return result;
        };

        // Refused or forced is what the server answers; REFUSALS says which it should be.
        const expected = REFUSALS[file];
        const first = await send('chat', TOOLS, null, false, false);
        if (first.statusCode === 400) {
          refused.push(file);
          t.ok(expected, `refused: ${first.body}`);
          for (const api of ['chat', 'responses', 'messages'] as const) {
            const res = api === 'chat' ? first : await send(api, TOOLS, 'set_lights', false, false);
            t.equal(res.statusCode, 400, `${api}: refused`);
            const error = api === 'messages' ? res.json().error : errorOf(res);
            t.match(error.message, expected, `${api}: says why`);
            if (api !== 'messages') t.equal(error.param, 'tool_choice', `${api}: names tool_choice`);
          }
          // Counting the prompt's tokens, or showing it, needs no call: no refusal there.
          for (const [url, api] of [
            ['/v1/chat/completions/input_tokens', 'chat'],
            ['/v1/responses/input_tokens', 'responses'],
            ['/v1/messages/count_tokens', 'messages'],
            ['/apply-template', 'chat'],
          ] as const) {
            const payload = forcedBody(api, TOOLS, api === 'chat' ? null : 'set_lights', false, false, {});
            const res = await app.inject({ method: 'POST', url, payload });
            t.equal(res.statusCode, 200, `${url}: ${res.body.slice(0, 200)}`);
          }
          // A tool without parameters: every format that knows tool calls can force it.
          if (reasons !== null) {
            const res = await send('chat', [tool('ping')], null, false, false);
            t.equal(res.statusCode, 200, res.body.slice(0, 300));
            const { calls, called } = callsOf('chat', false, res.body);
            t.ok(called, 'finish_reason tool_calls');
            validCalls(t, calls, ['ping'], 'ping');
          }
          return;
        }
        forced.push(file);
        t.notOk(expected, 'forced, not refused');
        check(first, 'chat', null, false);
        // Every template: chat's 'required' and a named function, thinking off. The other APIs and the stream take
        // turns across the corpus (each runs on a third of it), so that every combination runs on many formats.
        const api = (['responses', 'messages', 'chat'] as const)[i % 3] ?? 'chat';
        check(await send('chat', TOOLS, 'set_lights', i % 2 === 1, false), 'chat', 'set_lights', i % 2 === 1);
        const named = i % 4 < 2 ? null : 'get_weather';
        const stream = i % 4 === 1 || i % 4 === 2;
        check(await send(api, TOOLS, named, stream, false), api, named, stream);
        // Thinking on, where the template has it: reasoning first (bounded by the budget), then the call.
        if (thinks) {
          const which = i % 2 === 0 ? 'get_weather' : null;
          const { reasoning } = check(await send('chat', TOOLS, which, i % 2 === 0, true), 'chat', which, i % 2 === 0);
          if (reasoning) reasoned.push(file);
        }
      });
    }
    t.comment(
      `forced: ${forced.length}, refused: ${refused.length} of ${files.length}; reasoned: ${reasoned.join(' ')}`,
    );
    // The grammar lets reasoning through before the call, and the budget ends it: on many templates it did.
    t.ok(reasoned.length >= 10, `reasoning before a forced call on ${reasoned.length} templates`);
    t.same(refused.sort(), Object.keys(REFUSALS).sort(), 'the refusals are the expected ones');
  },
);

/** The reasoning an API's answer reports (chat's reasoning_content, a reasoning item, a thinking block). */
function reasoningOf(api: Api, stream: boolean, body: string): string {
  if (api === 'chat') return callsOf(api, stream, body).reasoning ?? '';
  if (stream) {
    const events = sseEvents(body) as { type: string; delta?: string | { type?: string; thinking?: string } }[];
    return events
      .map((e) => {
        if (api === 'responses') return e.type === 'response.reasoning_text.delta' ? String(e.delta ?? '') : '';
        const d = e.delta;
        return e.type === 'content_block_delta' && typeof d === 'object' && d.type === 'thinking_delta'
          ? (d.thinking ?? '')
          : '';
      })
      .join('');
  }
  const answer = JSON.parse(body);
  if (api === 'responses') {
    return (answer.output as { type: string; content?: { text: string }[] }[])
      .filter((i) => i.type === 'reasoning')
      .flatMap((i) => (i.content ?? []).map((c) => c.text))
      .join('');
  }
  return (answer.content as { type: string; thinking?: string }[])
    .filter((b) => b.type === 'thinking')
    .map((b) => b.thinking ?? '')
    .join('');
}

t.test(
  'one reasoning template, every way to force a call: APIs, stream or not, any or named, thinking off or on',
  async (t) => {
    // DeepSeek V3.1's prompt opens <think> when thinking is on (and closes it empty when off): the model must reason
    // first, and the budget ends its reasoning.
    const template = await readFile(join(dir, 'deepseek-ai-DeepSeek-V3.1.jinja'), 'utf8');
    const model = await modelFor(template);
    t.teardown(() => model.dispose());
    const { app } = await makeHarness(t, model, { slots: 1, ctxPerSlot: 4096 });
    for (const api of ['chat', 'responses', 'messages'] as const) {
      for (const thinking of [false, true]) {
        for (const named of [null, 'get_weather']) {
          for (const stream of [false, true]) {
            const label = `${api}, thinking ${thinking ? 'on' : 'off'}, ${named ?? 'any'}${stream ? ', streamed' : ''}`;
            const extra = { reasoning_budget_tokens: BUDGET };
            const payload = forcedBody(api, TOOLS, named, stream, thinking, extra);
            const res = await app.inject({ method: 'POST', url: URL[api], payload });
            t.equal(res.statusCode, 200, `${label}: ${res.body.slice(0, 300)}`);
            const { calls, called } = callsOf(api, stream, res.body);
            t.ok(called, `${label}: ends with its call`);
            validCalls(t, calls, named === null ? ['set_lights', 'get_weather'] : [named], label);
            const reasoning = reasoningOf(api, stream, res.body);
            if (thinking) t.ok(reasoning.length > 0, `${label}: reasoned first (${JSON.stringify(reasoning)})`);
            else t.equal(reasoning, '', `${label}: no reasoning`);
          }
        }
      }
    }
  },
);

t.test('cut off by max_tokens before the call closes: finish_reason length, and no call reported', async (t) => {
  const template = await readFile(join(dir, 'Qwen-Qwen2.5-7B-Instruct.jinja'), 'utf8');
  const model = await modelFor(template);
  t.teardown(() => model.dispose());
  const { app } = await makeHarness(t, model, { slots: 1, ctxPerSlot: 4096 });
  const cut = { max_tokens: 8, max_output_tokens: 8 };
  const send = (api: Api, stream: boolean) =>
    app.inject({
      method: 'POST',
      url: URL[api],
      payload: { ...forcedBody(api, TOOLS, null, stream, false, {}), ...cut },
    });

  const chat = (await send('chat', false)).json().choices[0];
  t.equal(chat.finish_reason, 'length');
  t.notOk(chat.message.tool_calls, 'no tool_calls for the unfinished call');
  const streamed = streamedChat((await send('chat', true)).body);
  t.equal(streamed.finish, 'length', 'streamed: finish_reason length (the call deltas so far are what was written)');

  const message = (await send('messages', false)).json();
  t.equal(message.stop_reason, 'max_tokens');
  t.same(
    message.content.filter((b: { type: string }) => b.type === 'tool_use'),
    [],
    'no tool_use block for the unfinished call',
  );

  const response = (await send('responses', false)).json();
  t.equal(response.status, 'incomplete');
  t.equal(response.incomplete_details.reason, 'max_output_tokens');
  for (const item of response.output as { type: string; status: string }[])
    if (item.type === 'function_call') t.equal(item.status, 'incomplete', 'the unfinished call is marked incomplete');

  // Thinking without a budget, where the prompt opened the reasoning: it runs to max_tokens, and no call is made up.
  const r1 = await modelFor(await readFile(join(dir, 'llama-cpp-deepseek-r1.jinja'), 'utf8'));
  t.teardown(() => r1.dispose());
  const h = await makeHarness(t, r1, { slots: 1, ctxPerSlot: 4096 });
  const payload = { ...forcedBody('chat', TOOLS, null, false, true, {}), max_tokens: 32 };
  const unbounded = (await h.app.inject({ method: 'POST', url: URL.chat, payload })).json();
  t.equal(unbounded.choices[0].finish_reason, 'length');
  t.equal(unbounded.usage.completion_tokens, 32, 'reasoning to the token limit');
  t.notOk(unbounded.choices[0].message.tool_calls, 'no call');
  const bounded = await h.app.inject({
    method: 'POST',
    url: URL.chat,
    payload: { ...payload, max_tokens: 256, reasoning_budget_tokens: 4 },
  });
  t.equal(bounded.json().choices[0].finish_reason, 'tool_calls', 'with a budget, the call comes after the reasoning');
});

t.test('parallel_tool_calls: every call made is an allowed tool with valid arguments', async (t) => {
  const template = await readFile(join(dir, 'Qwen-Qwen2.5-7B-Instruct.jinja'), 'utf8');
  const model = await modelFor(template);
  t.teardown(() => model.dispose());
  const { app } = await makeHarness(t, model, { slots: 1, ctxPerSlot: 4096 });
  const payload = { ...forcedBody('chat', TOOLS, null, false, false, {}), parallel_tool_calls: true, max_tokens: 400 };
  const choice = (await app.inject({ method: 'POST', url: URL.chat, payload })).json().choices[0];
  const calls = (choice.message.tool_calls ?? []).map((c: { function: Call }) => c.function);
  t.ok(['tool_calls', 'length'].includes(choice.finish_reason), choice.finish_reason);
  validCalls(t, calls, ['set_lights', 'get_weather'], 'parallel');
});

t.test('the reasoning budget without tools: reasoning ends at the budget, then the answer', async (t) => {
  // DeepSeek V3.1 with thinking on (the default): its prompt opens <think>.
  const model = await modelFor(await readFile(join(dir, 'deepseek-ai-DeepSeek-V3.1.jinja'), 'utf8'));
  t.teardown(() => model.dispose());
  const { app } = await makeHarness(t, model, { slots: 1, ctxPerSlot: 4096 });
  const payload = { messages: ASK, temperature: 0, max_tokens: 24 };
  const free = (await app.inject({ method: 'POST', url: URL.chat, payload })).json().choices[0].message;
  t.equal(free.content, '', 'no budget: reasoning to the token limit');
  const budget = await app.inject({
    method: 'POST',
    url: URL.chat,
    payload: { ...payload, reasoning_budget_tokens: 3 },
  });
  const message = budget.json().choices[0].message;
  t.ok(message.reasoning_content.length > 0 && message.reasoning_content.length < free.reasoning_content.length);
  t.ok(message.content.length > 0, 'then the answer');
  const thinking = await app.inject({
    method: 'POST',
    url: URL.chat,
    payload: { ...payload, thinking_budget_tokens: 3 },
  });
  t.same(thinking.json().choices[0].message, message, "thinking_budget_tokens: llama-server's other name");
  const bad = await app.inject({ method: 'POST', url: URL.chat, payload: { ...payload, reasoning_budget_tokens: -2 } });
  t.equal(bad.statusCode, 400);
  t.equal(errorOf(bad).param, 'reasoning_budget_tokens');
});
