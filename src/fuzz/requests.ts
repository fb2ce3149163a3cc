// The fuzzer's requests: a body drawn from the route's own schema (src/server/schemas.ts, the Responses and Messages
// APIs' schemas, /v1/embeddings'), often valid enough to generate, then mutated at one of three levels: a value
// inside it (wrong types, nulls, huge numbers, deep nesting, unknown roles and content parts, bad tools and
// response_format), the bytes on the wire (truncated JSON, invalid UTF-8, a BOM, duplicated or __proto__ keys, a body
// over the limit) or the envelope (odd content types, a wrong method). Each request goes to one of two servers: the
// generation one (every route; /v1/embeddings must refuse there) or an embedding one (/v1/embeddings and
// llama-server's /embeddings; generation routes must refuse there).
import fc from 'fast-check';
import { CountTokensBody, MessagesBody } from '../server/messages-api/schema.ts';
import { ResponsesBody } from '../server/responses-api/schema.ts';
import { EmbeddingsBody } from '../server/routes/embeddings.ts';
import { DetokenizeBody, TokenizeBody } from '../server/routes/tokenize.ts';
import { ChatCompletionBody, CompletionBody, NativeCompletionBody } from '../server/schemas.ts';
import { arbitraryOf, type JsonSchema, text } from './schema-arbitrary.ts';

export type FuzzServer = 'generation' | 'embeddings';

export interface FuzzRequest {
  /** Which server it goes to. */
  server: FuzzServer;
  method: 'GET' | 'POST' | 'PUT' | 'DELETE';
  url: string;
  headers: Record<string, string>;
  payload: Buffer;
  /** What was done to it, for the report: 'valid', 'value:null', 'bytes:truncated', ... */
  mutation: string;
}

const SMALL_COUNT = fc.oneof(
  { weight: 6, arbitrary: fc.integer({ min: 1, max: 6 }) },
  { weight: 1, arbitrary: fc.integer({ min: -2, max: 1 << 20 }) },
);

const ROLES = ['system', 'developer', 'user', 'assistant', 'tool', 'function', 'ipython', '', 'USER'];

const contentPart = fc.oneof(
  { weight: 4, arbitrary: fc.record({ type: fc.constant('text'), text: text() }) },
  {
    weight: 1,
    arbitrary: fc.record({
      type: fc.constantFrom('image_url', 'input_audio', 'file', 'refusal', 'video', ''),
      text: fc.option(text(), { nil: undefined }),
      image_url: fc.option(fc.record({ url: fc.webUrl() }), { nil: undefined }),
    }),
  },
);

const message = fc.oneof(
  { weight: 6, arbitrary: fc.record({ role: fc.constantFrom('system', 'user', 'assistant'), content: text(40) }) },
  {
    weight: 2,
    arbitrary: fc.record(
      {
        role: fc.constantFrom(...ROLES),
        content: fc.oneof(text(), fc.array(contentPart, { maxLength: 3 }), fc.constant(null)),
        name: fc.string({ maxLength: 8 }),
        tool_call_id: fc.string({ maxLength: 8 }),
        tool_calls: fc.array(
          fc.record({
            id: fc.string({ maxLength: 6 }),
            type: fc.constantFrom('function', 'code'),
            function: fc.record({
              name: fc.string({ maxLength: 8 }),
              arguments: fc.oneof(fc.json({ maxDepth: 2 }), fc.string({ maxLength: 12 }), fc.constant({})),
            }),
          }),
          { maxLength: 2 },
        ),
      },
      { requiredKeys: ['role'] },
    ),
  },
);

/** Schemas as clients write them, and as no one should: not schemas at all, or odd ones. */
const jsonSchema = fc.oneof(
  fc.constant({ type: 'object', properties: { a: { type: 'string' } }, required: ['a'] }),
  fc.constant({ type: 'array', items: { type: 'integer' }, minItems: 1, maxItems: 3 }),
  fc.constant({ type: 'string', pattern: '^[a-z]+$', maxLength: 8 }),
  fc.constant({ type: 'string', minLength: 100000 }),
  fc.constant({ type: 'array', minItems: 1000000 }),
  fc.constant({ $ref: '#/definitions/missing' }),
  fc.constant({ type: 'nonsense' }),
  fc.constant({ enum: [] }),
  fc.constant({ anyOf: [] }),
  fc.dictionary(fc.string({ maxLength: 8 }), fc.jsonValue({ maxDepth: 2 }), { maxKeys: 4 }),
);

const tool = fc.record(
  {
    type: fc.constantFrom('function', 'function', 'retrieval', ''),
    function: fc.record(
      {
        name: fc.oneof(fc.constantFrom('search', 'get_weather'), fc.string({ maxLength: 10 })),
        description: text(),
        parameters: jsonSchema,
        strict: fc.boolean(),
      },
      { requiredKeys: ['name'] },
    ),
  },
  { requiredKeys: ['type', 'function'] },
);

const responseFormat = fc.oneof(
  fc.constant({ type: 'text' }),
  fc.constant({ type: 'json_object' }),
  fc.record({ type: fc.constant('json_schema'), json_schema: fc.record({ name: fc.string(), schema: jsonSchema }) }),
  fc.record({ type: fc.constantFrom('json_schema', 'xml', ''), schema: jsonSchema }),
);

const grammar = fc.oneof(
  fc.constant('root ::= "a" | "b"'),
  fc.constant('root ::= [a-z]{1,5}'),
  fc.constant('root ::= x{0,100000}\nx ::= "x"'),
  fc.constant('root ::= undefined-rule'),
  fc.string({ maxLength: 40 }),
);

const prompt = fc.oneof(
  text(40),
  fc.array(fc.integer({ min: -5, max: 40000 }), { maxLength: 8 }),
  fc.array(fc.oneof(text(), fc.integer({ min: 0, max: 31999 })), { maxLength: 4 }),
  fc.array(text(), { minLength: 2, maxLength: 3 }),
  fc.record({ prompt_string: text(), multimodal_data: fc.option(fc.array(fc.string()), { nil: undefined }) }),
  fc.jsonValue({ maxDepth: 2 }),
);

/** Stop strings: random ones, and some the tiny model's text often holds (so that answers do end on one). */
const STOP_WORD = fc.oneof(text(4), fc.constantFrom('e', 'a', ' ', 'in', '\n', '.'));
const STOP = fc.oneof(STOP_WORD, fc.array(STOP_WORD, { maxLength: 3 }));

const OVERRIDES: Record<string, fc.Arbitrary<unknown>> = {
  messages: fc.array(message, { minLength: 1, maxLength: 4 }),
  max_tokens: SMALL_COUNT,
  max_completion_tokens: SMALL_COUNT,
  n_predict: SMALL_COUNT,
  n: fc.oneof(
    { weight: 3, arbitrary: fc.constant(1) },
    { weight: 2, arbitrary: fc.integer({ min: 2, max: 4 }) },
    { weight: 1, arbitrary: fc.integer({ min: -1, max: 17 }) },
  ),
  n_probs: fc.integer({ min: 0, max: 5 }),
  top_logprobs: fc.integer({ min: 0, max: 5 }),
  tools: fc.array(tool, { maxLength: 3 }),
  response_format: responseFormat,
  json_schema: jsonSchema,
  grammar,
  prompt,
  content: text(40),
  id_slot: fc.integer({ min: -2, max: 3 }),
  t_max_predict_ms: fc.integer({ min: 1, max: 50 }),
  stop: STOP,
  stop_sequences: fc.array(STOP_WORD, { maxLength: 3 }),
  chat_template_kwargs: fc.dictionary(fc.string({ maxLength: 8 }), fc.jsonValue({ maxDepth: 2 }), { maxKeys: 3 }),
  // Streams are as much of the API as bodies: asked for often (their rules are their own).
  stream: fc.oneof({ weight: 3, arbitrary: fc.constant(true) }, { weight: 1, arbitrary: fc.constantFrom(false, null) }),
  stream_options: fc.oneof(
    { weight: 3, arbitrary: fc.constant({ include_usage: true }) },
    { weight: 1, arbitrary: fc.record({ include_usage: fc.constantFrom(false, null) }) },
  ),
};

/** Every route's odds for its fields (a stream half the time), before its own. */
const PRESENCE: Readonly<Record<string, 'always' | number>> = {
  stream: 2,
  stream_options: 3,
  // What the rules on choices, logprobs and stop strings need to see often enough.
  n: 4,
  logprobs: 4,
  stop: 4,
  stop_sequences: 4,
};

// The Responses API's input items and tools, flat objects whose `type` picks the fields (request.ts checks them).
const responsesContentPart = fc.record(
  {
    type: fc.oneof(
      { weight: 4, arbitrary: fc.constantFrom('input_text', 'output_text') },
      { weight: 1, arbitrary: fc.constantFrom('input_image', 'refusal', 'reasoning_text', '') },
    ),
    text: text(),
  },
  { requiredKeys: ['type'] },
);

const callId = fc.oneof(fc.constantFrom('call_1', 'call_2'), fc.string({ maxLength: 8 }));

const responsesInputItem = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.record({ role: fc.constantFrom('user', 'assistant', 'system', 'developer'), content: text(40) }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      type: fc.constant('message'),
      role: fc.constantFrom('user', 'assistant', 'system', 'developer'),
      content: fc.array(responsesContentPart, { maxLength: 3 }),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      type: fc.constant('function_call'),
      call_id: callId,
      name: fc.constantFrom('search', 'get_weather'),
      arguments: fc.oneof(fc.constant('{}'), fc.string({ maxLength: 12 })),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({ type: fc.constant('function_call_output'), call_id: callId, output: text() }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      type: fc.constantFrom('reasoning', 'item_reference', 'web_search_call', ''),
      summary: fc.array(fc.record({ type: fc.constant('summary_text'), text: text() }), { maxLength: 2 }),
    }),
  },
);

const responsesTool = fc.record(
  {
    type: fc.constantFrom('function', 'function', 'web_search', 'file_search', ''),
    name: fc.oneof(fc.constantFrom('search', 'get_weather'), fc.string({ maxLength: 10 })),
    description: text(),
    parameters: jsonSchema,
    strict: fc.boolean(),
  },
  { requiredKeys: ['type', 'name'] },
);

const textFormat = fc.oneof(
  fc.constant({ type: 'text' }),
  fc.constant({ type: 'json_object' }),
  fc.record({ type: fc.constant('json_schema'), name: fc.string({ maxLength: 8 }), schema: jsonSchema }),
);

const RESPONSES_OVERRIDES: Record<string, fc.Arbitrary<unknown>> = {
  input: fc.oneof(text(40), fc.array(responsesInputItem, { minLength: 1, maxLength: 3 })),
  instructions: text(),
  max_output_tokens: SMALL_COUNT,
  tools: fc.array(responsesTool, { maxLength: 3 }),
  text: fc.record({ format: textFormat }),
  previous_response_id: fc.oneof(fc.constant('resp_0'), fc.string({ maxLength: 12 })),
};

// Anthropic's content blocks: text, tool_use, tool_result, thinking, and the ones refused (image, document).
const anthropicBlock = fc.oneof(
  { weight: 6, arbitrary: fc.record({ type: fc.constant('text'), text: text() }) },
  {
    weight: 1,
    arbitrary: fc.record({
      type: fc.constant('tool_use'),
      id: callId,
      name: fc.constantFrom('search', 'get_weather'),
      input: fc.oneof(fc.constant({}), fc.dictionary(fc.string({ maxLength: 6 }), fc.jsonValue({ maxDepth: 1 }))),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record(
      {
        type: fc.constant('tool_result'),
        tool_use_id: callId,
        content: fc.oneof(text(), fc.array(fc.record({ type: fc.constant('text'), text: text() }), { maxLength: 2 })),
        is_error: fc.boolean(),
      },
      { requiredKeys: ['type', 'tool_use_id'] },
    ),
  },
  {
    weight: 1,
    arbitrary: fc.record({ type: fc.constant('thinking'), thinking: text(), signature: fc.string({ maxLength: 8 }) }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      type: fc.constantFrom('image', 'document', 'server_tool_use', 'redacted_thinking', ''),
      text: text(),
    }),
  },
);

const anthropicMessage = fc.oneof(
  { weight: 6, arbitrary: fc.record({ role: fc.constantFrom('user', 'assistant'), content: text(40) }) },
  {
    weight: 2,
    arbitrary: fc.record({
      role: fc.constantFrom('user', 'assistant'),
      content: fc.array(anthropicBlock, { minLength: 1, maxLength: 3 }),
    }),
  },
);

const MESSAGES_OVERRIDES: Record<string, fc.Arbitrary<unknown>> = {
  messages: fc.array(anthropicMessage, { minLength: 1, maxLength: 4 }),
  system: fc.oneof(text(40), fc.array(fc.record({ type: fc.constant('text'), text: text() }), { maxLength: 2 })),
  tools: fc.array(
    fc.record(
      {
        name: fc.oneof(fc.constantFrom('search', 'get_weather'), fc.string({ maxLength: 10 })),
        description: text(),
        input_schema: jsonSchema,
      },
      { requiredKeys: ['name'] },
    ),
    { maxLength: 3 },
  ),
};

/** What an embedding model embeds: OpenAI's four forms, and some it refuses (empty, out of the vocabulary). */
const embeddingInput = fc.oneof(
  { weight: 4, arbitrary: text(40) },
  { weight: 3, arbitrary: fc.array(text(20), { minLength: 1, maxLength: 4 }) },
  { weight: 2, arbitrary: fc.array(fc.integer({ min: 0, max: 30521 }), { minLength: 1, maxLength: 8 }) },
  {
    weight: 1,
    arbitrary: fc.array(fc.array(fc.integer({ min: 0, max: 30521 }), { minLength: 1, maxLength: 6 }), {
      minLength: 1,
      maxLength: 3,
    }),
  },
  {
    weight: 1,
    arbitrary: fc.constantFrom<unknown>('', [], [''], [-1], [30522], [[]], 'x'.repeat(2000)),
  },
);

const EMBEDDINGS_OVERRIDES: Record<string, fc.Arbitrary<unknown>> = {
  input: embeddingInput,
  content: embeddingInput,
  encoding_format: fc.oneof(
    { weight: 4, arbitrary: fc.constantFrom('float', 'base64') },
    { weight: 1, arbitrary: fc.string({ maxLength: 8 }) },
  ),
  dimensions: fc.oneof(fc.constant(128), fc.integer({ min: -1, max: 4096 })),
};

/** The Responses API: input always; what the route refuses (stored prompts, conversations, background) rarely. */
const RESPONSES_PRESENCE: Readonly<Record<string, 'always' | number>> = {
  input: 'always',
  prompt: 40,
  conversation: 40,
  background: 40,
  previous_response_id: 40,
  top_logprobs: 40,
  include: 20,
};

const MESSAGES_PRESENCE: Readonly<Record<string, 'always' | number>> = { container: 40, mcp_servers: 40 };

export interface FuzzRoute {
  server: FuzzServer;
  url: string;
  /** The schema its body is drawn from. */
  schema: JsonSchema;
  weight: number;
  /** Arbitraries for its own fields (the Responses API's input, Anthropic's messages), over the common ones. */
  overrides?: Readonly<Record<string, fc.Arbitrary<unknown>>>;
  /** Its fields' own odds of being present (schema-arbitrary.ts). */
  presence?: Readonly<Record<string, 'always' | number>>;
}

const schema = (s: unknown): JsonSchema => s as JsonSchema;

/** The routes fuzzed, each with the server it goes to and the schema its body is drawn from. */
export const FUZZ_ROUTES: readonly FuzzRoute[] = [
  { server: 'generation', url: '/v1/chat/completions', schema: schema(ChatCompletionBody), weight: 8 },
  { server: 'generation', url: '/v1/completions', schema: schema(CompletionBody), weight: 3 },
  { server: 'generation', url: '/completion', schema: schema(NativeCompletionBody), weight: 2 },
  {
    server: 'generation',
    url: '/v1/responses',
    schema: schema(ResponsesBody),
    weight: 5,
    overrides: RESPONSES_OVERRIDES,
    presence: RESPONSES_PRESENCE,
  },
  {
    server: 'generation',
    url: '/v1/messages',
    schema: schema(MessagesBody),
    weight: 5,
    overrides: MESSAGES_OVERRIDES,
    presence: MESSAGES_PRESENCE,
  },
  { server: 'generation', url: '/v1/chat/completions/input_tokens', schema: schema(ChatCompletionBody), weight: 1 },
  {
    server: 'generation',
    url: '/v1/responses/input_tokens',
    schema: schema(ResponsesBody),
    weight: 1,
    overrides: RESPONSES_OVERRIDES,
    presence: RESPONSES_PRESENCE,
  },
  {
    server: 'generation',
    url: '/v1/messages/count_tokens',
    schema: schema(CountTokensBody),
    weight: 1,
    overrides: MESSAGES_OVERRIDES,
    presence: MESSAGES_PRESENCE,
  },
  { server: 'generation', url: '/apply-template', schema: schema(ChatCompletionBody), weight: 1 },
  { server: 'generation', url: '/tokenize', schema: schema(TokenizeBody), weight: 1 },
  { server: 'generation', url: '/detokenize', schema: schema(DetokenizeBody), weight: 1 },
  {
    server: 'generation',
    url: '/v1/embeddings',
    schema: schema(EmbeddingsBody),
    weight: 1,
    overrides: EMBEDDINGS_OVERRIDES,
    presence: { input: 'always' },
  },
  {
    server: 'embeddings',
    url: '/v1/embeddings',
    schema: schema(EmbeddingsBody),
    weight: 4,
    overrides: EMBEDDINGS_OVERRIDES,
    presence: { input: 'always' },
  },
  {
    server: 'embeddings',
    url: '/embeddings',
    schema: schema(EmbeddingsBody),
    weight: 1,
    overrides: EMBEDDINGS_OVERRIDES,
    presence: { input: 2, content: 2 },
  },
  // Generation routes on the embedding server: refused, each in its own shape.
  { server: 'embeddings', url: '/v1/chat/completions', schema: schema(ChatCompletionBody), weight: 1 },
  {
    server: 'embeddings',
    url: '/v1/messages',
    schema: schema(MessagesBody),
    weight: 1,
    overrides: MESSAGES_OVERRIDES,
    presence: MESSAGES_PRESENCE,
  },
  {
    server: 'embeddings',
    url: '/v1/responses',
    schema: schema(ResponsesBody),
    weight: 1,
    overrides: RESPONSES_OVERRIDES,
    presence: RESPONSES_PRESENCE,
  },
];

/** Values that break assumptions: wrong types, extremes, deep nesting, strings that are not valid UTF-16. */
export const nastyValue: fc.Arbitrary<{ label: string; value: unknown }> = fc.oneof(
  fc.constantFrom(
    { label: 'null', value: null },
    { label: 'true', value: true },
    { label: 'zero', value: 0 },
    { label: 'negative', value: -1 },
    { label: 'huge', value: 1e308 },
    { label: 'tiny', value: -1e308 },
    { label: 'unsafe-int', value: 2 ** 53 + 2 },
    { label: 'fraction', value: 0.5 },
    { label: 'empty-string', value: '' },
    { label: 'lone-surrogate', value: '\ud800x\udfff' },
    { label: 'nul', value: 'a\u0000b' },
    { label: 'empty-array', value: [] },
    { label: 'empty-object', value: {} },
    { label: 'long-string', value: 'x'.repeat(20_000) },
    { label: 'long-array', value: Array.from({ length: 5000 }, () => 1) },
    { label: 'many-strings', value: Array.from({ length: 300 }, (_, i) => `s${i}`) },
  ),
  fc.integer({ min: 8, max: 3000 }).map((depth) => ({ label: depth > 64 ? 'deep' : 'nested', value: nest(depth) })),
  fc.jsonValue({ maxDepth: 3 }).map((value) => ({ label: 'random', value })),
);

function nest(depth: number): unknown {
  let v: unknown = 1;
  for (let i = 0; i < depth; i++) v = i % 2 === 0 ? [v] : { a: v };
  return v;
}

/** Every path into a JSON value (arrays and objects), the empty path being the value itself. */
function paths(
  value: unknown,
  prefix: (string | number)[] = [],
  out: (string | number)[][] = [],
): (string | number)[][] {
  out.push(prefix);
  if (prefix.length > 6) return out;
  if (Array.isArray(value)) {
    for (const [i, v] of value.entries()) paths(v, [...prefix, i], out);
  } else if (typeof value === 'object' && value !== null)
    for (const [k, v] of Object.entries(value)) paths(v, [...prefix, k], out);
  return out;
}

function setAt(root: unknown, path: readonly (string | number)[], value: unknown, remove: boolean): unknown {
  if (path.length === 0) return value;
  const copy: unknown = structuredClone(root);
  let at = copy as Record<string | number, unknown>;
  for (const key of path.slice(0, -1)) at = at[key] as Record<string | number, unknown>;
  const last = path[path.length - 1] as string | number;
  if (remove) {
    if (Array.isArray(at)) at.splice(Number(last), 1);
    else delete at[last];
  } else at[last] = value;
  return copy;
}

type ValueMutation =
  | { kind: 'none' }
  | { kind: 'set' | 'remove'; pick: number; nasty: { label: string; value: unknown } };

const valueMutation: fc.Arbitrary<ValueMutation> = fc.oneof(
  { weight: 3, arbitrary: fc.constant({ kind: 'none' as const }) },
  {
    weight: 4,
    arbitrary: fc.record({ kind: fc.constant('set' as const), pick: fc.nat(), nasty: nastyValue }),
  },
  {
    weight: 1,
    arbitrary: fc.record({ kind: fc.constant('remove' as const), pick: fc.nat(), nasty: nastyValue }),
  },
);

function applyValueMutation(body: unknown, m: ValueMutation): { body: unknown; label: string } {
  if (m.kind === 'none') return { body, label: 'valid' };
  const all = paths(body);
  const path = all[m.pick % all.length] ?? [];
  if (m.kind === 'remove')
    return { body: path.length === 0 ? undefined : setAt(body, path, null, true), label: 'value:removed' };
  return { body: setAt(body, path, m.nasty.value, false), label: `value:${m.nasty.label}` };
}

type ByteMutation =
  | { kind: 'none' }
  | { kind: 'truncate'; at: number }
  | { kind: 'invalid-utf8'; at: number; bytes: number[] }
  | { kind: 'bom' }
  | { kind: 'duplicate-key' }
  | { kind: 'proto-key' }
  | { kind: 'empty' }
  | { kind: 'oversize' }
  | { kind: 'garbage'; bytes: Uint8Array };

const INVALID_UTF8 = [[0xff], [0xc3], [0xc0, 0xaf], [0xed, 0xa0, 0x80], [0xf8, 0x88, 0x80, 0x80, 0x80], [0xe2, 0x82]];

const byteMutation: fc.Arbitrary<ByteMutation> = fc.oneof(
  { weight: 12, arbitrary: fc.constant({ kind: 'none' as const }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('truncate' as const), at: fc.nat() }) },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('invalid-utf8' as const),
      at: fc.nat(),
      bytes: fc.constantFrom(...INVALID_UTF8),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.constantFrom<ByteMutation>({ kind: 'bom' }, { kind: 'duplicate-key' }, { kind: 'proto-key' }),
  },
  { weight: 1, arbitrary: fc.constantFrom<ByteMutation>({ kind: 'empty' }, { kind: 'oversize' }) },
  {
    weight: 1,
    arbitrary: fc.record({ kind: fc.constant('garbage' as const), bytes: fc.uint8Array({ maxLength: 64 }) }),
  },
);

function applyByteMutation(
  json: string,
  m: ByteMutation,
  bodyLimit: number,
): { payload: Buffer; label: string | null } {
  const bytes = Buffer.from(json);
  switch (m.kind) {
    case 'none':
      return { payload: bytes, label: null };
    case 'truncate':
      return { payload: bytes.subarray(0, bytes.length === 0 ? 0 : m.at % bytes.length), label: 'bytes:truncated' };
    case 'invalid-utf8': {
      // Inside a string where there is one, so the JSON is otherwise well formed.
      const quote = json.indexOf('"', m.at % Math.max(1, json.length));
      const at = quote >= 0 ? Buffer.byteLength(json.slice(0, quote + 1)) : bytes.length;
      return {
        payload: Buffer.concat([bytes.subarray(0, at), Buffer.from(m.bytes), bytes.subarray(at)]),
        label: 'bytes:invalid-utf8',
      };
    }
    case 'bom':
      return { payload: Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), bytes]), label: 'bytes:bom' };
    case 'duplicate-key':
      return {
        payload: Buffer.from(json.replace(/^\{/, '{"messages":7,"prompt":null,')),
        label: 'bytes:duplicate-key',
      };
    case 'proto-key':
      return {
        payload: Buffer.from(
          json.replace(/^\{/, '{"__proto__":{"max_tokens":100000},"constructor":{"prototype":{"x":1}},'),
        ),
        label: 'bytes:proto-key',
      };
    case 'empty':
      return { payload: Buffer.alloc(0), label: 'bytes:empty' };
    case 'oversize':
      return { payload: Buffer.from(`{"prompt":"${'a'.repeat(bodyLimit + 16)}"}`), label: 'bytes:oversize' };
    case 'garbage':
      return { payload: Buffer.from(m.bytes), label: 'bytes:garbage' };
  }
}

const CONTENT_TYPES = [
  'application/x-www-form-urlencoded',
  'text/plain',
  'multipart/form-data; boundary=x',
  'application/octet-stream',
  'application/json; charset=latin1',
  'application/json; charset=utf-16',
  'garbage',
  '',
];

const envelope = fc.record({
  contentType: fc.oneof(
    { weight: 10, arbitrary: fc.constant('application/json') },
    { weight: 2, arbitrary: fc.constantFrom(...CONTENT_TYPES) },
    { weight: 1, arbitrary: fc.constant(null) },
  ),
  method: fc.oneof(
    { weight: 30, arbitrary: fc.constant('POST' as const) },
    { weight: 1, arbitrary: fc.constantFrom('GET' as const, 'PUT' as const, 'DELETE' as const) },
  ),
  requestId: fc.option(fc.oneof(fc.uuid(), fc.string({ maxLength: 200, unit: 'binary-ascii' })), { nil: undefined }),
});

export interface FuzzOptions {
  /** The server's body limit, so an oversize body is just over it. */
  bodyLimitBytes: number;
  /** The servers requests go to. Default: both. */
  servers?: readonly FuzzServer[];
}

/** One request of the storm. */
export function fuzzRequest(options: FuzzOptions): fc.Arbitrary<FuzzRequest> {
  const servers = options.servers ?? ['generation', 'embeddings'];
  const routes = FUZZ_ROUTES.filter((r) => servers.includes(r.server)).map((r) => ({
    weight: r.weight,
    arbitrary: fc.record({
      route: fc.constant(r),
      body: arbitraryOf(r.schema, {
        overrides: { ...OVERRIDES, ...r.overrides },
        unknown: prompt,
        presence: { ...PRESENCE, ...r.presence },
      }),
    }),
  }));
  return fc.tuple(fc.oneof(...routes), valueMutation, byteMutation, envelope).map(([route, vm, bm, env]) => {
    const mutated = applyValueMutation(route.body, vm);
    const json = mutated.body === undefined ? '' : JSON.stringify(mutated.body);
    const bytes = applyByteMutation(json, bm, options.bodyLimitBytes);
    const headers: Record<string, string> = {};
    if (env.contentType !== null) headers['content-type'] = env.contentType;
    // Only what HTTP lets a header carry; the server decides what else is sane.
    if (env.requestId !== undefined) headers['x-request-id'] = env.requestId.replace(/[^\t\x20-\x7e]/g, '');
    const labels = [mutated.label === 'valid' && bytes.label !== null ? null : mutated.label, bytes.label];
    if (env.contentType !== 'application/json') labels.push(`type:${(env.contentType ?? 'none').replace(/\s+/g, '')}`);
    if (env.method !== 'POST') labels.push(`method:${env.method}`);
    return {
      server: route.route.server,
      method: env.method,
      url: route.route.url,
      headers,
      payload: bytes.payload,
      mutation: labels.filter((l): l is string => l !== null).join(' '),
    };
  });
}
