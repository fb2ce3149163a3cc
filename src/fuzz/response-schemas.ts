// What a 200 answer must look like, route by route, as JSON Schemas written from the clients' own types (the openai
// package's ChatCompletion, ChatCompletionChunk, Completion, Response and its ResponseStreamEvent, CreateEmbedding-
// Response; @anthropic-ai/sdk's Message and RawMessageStreamEvent), not from the server's schemas: the fuzzer checks
// the server against what clients read. Required: every field those types declare without `?` that a client reads,
// with its type and, where the type is a union of literals, its values. Left optional: fields the types declare
// required but nullable and that llama-server leaves out too (chat's message.refusal, Anthropic's usage breakdowns
// cache_creation / server_tool_use / inference_geo, Message.diagnostics, the Responses usage's cache_write_tokens),
// since a client reads them as absent. Extra fields are allowed everywhere (llama-server's timings, __verbose...).
import { Ajv, type ValidateFunction } from 'ajv';

type Schema = Record<string, unknown>;

const int = { type: 'integer', minimum: 0 } as const;
const str = { type: 'string' } as const;
const nonEmpty = { type: 'string', minLength: 1 } as const;
const nullable = (s: Schema): Schema => ({ anyOf: [s, { type: 'null' }] });
const obj = (properties: Record<string, Schema>, required: string[] = Object.keys(properties)): Schema => ({
  type: 'object',
  properties,
  required,
});
const array = (items: Schema, extra: Schema = {}): Schema => ({ type: 'array', items, ...extra });
const literal = (...values: string[]): Schema => ({ enum: values });

// OpenAI: chat completions, text completions, embeddings.

const completionUsage = obj(
  {
    prompt_tokens: int,
    completion_tokens: int,
    total_tokens: int,
    prompt_tokens_details: obj({ cached_tokens: int }, []),
  },
  ['prompt_tokens', 'completion_tokens', 'total_tokens'],
);

const topLogprob = obj({ token: str, logprob: { type: 'number' }, bytes: nullable(array(int)) });
const chatLogprobs = nullable(
  obj({ content: nullable(array(obj({ ...(topLogprob.properties as object), top_logprobs: array(topLogprob) }))) }, [
    'content',
  ]),
);

const toolCall = obj({
  id: nonEmpty,
  type: literal('function'),
  function: obj({ name: str, arguments: str }),
});

const chatFinish = literal('stop', 'length', 'tool_calls', 'content_filter', 'function_call');

export const CHAT_COMPLETION = obj(
  {
    id: nonEmpty,
    object: literal('chat.completion'),
    created: int,
    model: str,
    choices: array(
      obj({
        index: int,
        finish_reason: chatFinish,
        logprobs: chatLogprobs,
        message: obj(
          {
            role: literal('assistant'),
            content: nullable(str),
            refusal: nullable(str),
            tool_calls: array(toolCall),
            reasoning_content: str,
          },
          ['role', 'content'],
        ),
      }),
    ),
    usage: completionUsage,
  },
  ['id', 'object', 'created', 'model', 'choices'],
);

export const CHAT_COMPLETION_CHUNK = obj(
  {
    id: nonEmpty,
    object: literal('chat.completion.chunk'),
    created: int,
    model: str,
    choices: array(
      obj(
        {
          index: int,
          finish_reason: nullable(chatFinish),
          logprobs: chatLogprobs,
          delta: obj(
            {
              role: literal('developer', 'system', 'user', 'assistant', 'tool'),
              content: nullable(str),
              refusal: nullable(str),
              reasoning_content: str,
              tool_calls: array(
                obj(
                  {
                    index: int,
                    id: nonEmpty,
                    type: literal('function'),
                    function: obj({ name: str, arguments: str }, []),
                  },
                  ['index'],
                ),
              ),
            },
            [],
          ),
        },
        ['index', 'finish_reason', 'delta'],
      ),
    ),
    usage: nullable(completionUsage),
  },
  ['id', 'object', 'created', 'model', 'choices'],
);

export const TEXT_COMPLETION = obj(
  {
    id: nonEmpty,
    object: literal('text_completion'),
    created: int,
    model: str,
    choices: array(
      obj({
        index: int,
        text: str,
        finish_reason: literal('stop', 'length', 'content_filter'),
        logprobs: nullable(
          obj(
            {
              tokens: array(str),
              token_logprobs: array({ type: 'number' }),
              text_offset: array(int),
              top_logprobs: array({ type: 'object' }),
            },
            [],
          ),
        ),
      }),
    ),
    usage: completionUsage,
  },
  ['id', 'object', 'created', 'model', 'choices'],
);

/** A streamed text completion: finish_reason null until the choice's last chunk. */
export const TEXT_COMPLETION_CHUNK = {
  ...TEXT_COMPLETION,
  properties: {
    ...(TEXT_COMPLETION.properties as object),
    choices: array(
      obj(
        {
          index: int,
          text: str,
          finish_reason: nullable(literal('stop', 'length', 'content_filter')),
          logprobs: { type: ['object', 'null'] },
        },
        ['index', 'text', 'finish_reason'],
      ),
    ),
    usage: nullable(completionUsage),
  },
};

export const EMBEDDING_LIST = obj({
  object: literal('list'),
  model: str,
  data: array(
    obj({
      object: literal('embedding'),
      index: int,
      embedding: { anyOf: [array({ type: 'number' }, { minItems: 1 }), nonEmpty] },
    }),
    { minItems: 1 },
  ),
  usage: obj({ prompt_tokens: int, total_tokens: int }),
});

// OpenAI: the Responses API.

const outputText = obj({ type: literal('output_text'), text: str, annotations: array({}) }, ['type', 'text']);
const itemStatus = literal('in_progress', 'completed', 'incomplete');
const outputItem: Schema = {
  anyOf: [
    obj(
      {
        type: literal('message'),
        id: nonEmpty,
        role: literal('assistant'),
        status: itemStatus,
        content: array(outputText),
      },
      ['type', 'id', 'role', 'status', 'content'],
    ),
    obj(
      {
        type: literal('function_call'),
        id: nonEmpty,
        call_id: nonEmpty,
        name: str,
        arguments: str,
        status: itemStatus,
      },
      ['type', 'call_id', 'name', 'arguments'],
    ),
    obj(
      {
        type: literal('reasoning'),
        id: nonEmpty,
        summary: array(obj({ type: literal('summary_text'), text: str })),
        content: array(obj({ type: literal('reasoning_text'), text: str })),
        status: itemStatus,
      },
      ['type', 'id', 'summary'],
    ),
  ],
};

const responseUsage = obj({
  input_tokens: int,
  input_tokens_details: obj({ cached_tokens: int }),
  output_tokens: int,
  output_tokens_details: obj({ reasoning_tokens: int }),
  total_tokens: int,
});

export const RESPONSE = obj(
  {
    id: nonEmpty,
    object: literal('response'),
    created_at: int,
    status: literal('completed', 'failed', 'in_progress', 'cancelled', 'queued', 'incomplete'),
    error: nullable(obj({ code: str, message: str })),
    incomplete_details: nullable(obj({ reason: literal('max_output_tokens', 'content_filter') }, [])),
    model: str,
    output: array(outputItem),
    parallel_tool_calls: { type: 'boolean' },
    temperature: nullable({ type: 'number' }),
    top_p: nullable({ type: 'number' }),
    tools: array({ type: 'object' }),
    tool_choice: { type: ['string', 'object'] },
    instructions: { type: ['string', 'array', 'null'] },
    metadata: nullable({ type: 'object' }),
    usage: nullable(responseUsage),
  },
  [
    'id',
    'object',
    'created_at',
    'status',
    'error',
    'incomplete_details',
    'model',
    'output',
    'parallel_tool_calls',
    'temperature',
    'top_p',
    'tools',
    'tool_choice',
    'instructions',
    'metadata',
  ],
);

const seq = { sequence_number: int };
const at = { item_id: nonEmpty, output_index: int };
const textPart = { anyOf: [outputText, obj({ type: literal('reasoning_text'), text: str })] };

/** The Responses API's stream events this server can send, by type (ResponseStreamEvent's members). */
export const RESPONSE_EVENTS: Readonly<Record<string, Schema>> = {
  'response.created': obj({ ...seq, response: RESPONSE }),
  'response.in_progress': obj({ ...seq, response: RESPONSE }),
  'response.completed': obj({ ...seq, response: RESPONSE }),
  'response.incomplete': obj({ ...seq, response: RESPONSE }),
  'response.failed': obj({ ...seq, response: RESPONSE }),
  'response.output_item.added': obj({ ...seq, output_index: int, item: outputItem }),
  'response.output_item.done': obj({ ...seq, output_index: int, item: outputItem }),
  'response.content_part.added': obj({ ...seq, ...at, content_index: int, part: textPart }),
  'response.content_part.done': obj({ ...seq, ...at, content_index: int, part: textPart }),
  'response.output_text.delta': obj({ ...seq, ...at, content_index: int, delta: str, logprobs: array({}) }),
  'response.output_text.done': obj({ ...seq, ...at, content_index: int, text: str, logprobs: array({}) }),
  'response.reasoning_text.delta': obj({ ...seq, ...at, content_index: int, delta: str }),
  'response.reasoning_text.done': obj({ ...seq, ...at, content_index: int, text: str }),
  'response.function_call_arguments.delta': obj({ ...seq, ...at, delta: str }),
  'response.function_call_arguments.done': obj({ ...seq, ...at, name: str, arguments: str }),
  error: obj({ ...seq, code: nullable(str), message: nonEmpty, param: nullable(str) }),
};

// Anthropic: the Messages API.

const stopReason = literal(
  'end_turn',
  'max_tokens',
  'stop_sequence',
  'tool_use',
  'pause_turn',
  'refusal',
  'model_context_window_exceeded',
);
const contentBlock: Schema = {
  anyOf: [
    obj({ type: literal('text'), text: str, citations: nullable(array({})) }, ['type', 'text']),
    obj({ type: literal('thinking'), thinking: str, signature: str }),
    obj({ type: literal('redacted_thinking'), data: str }),
    obj({ type: literal('tool_use'), id: nonEmpty, name: str, input: { type: 'object' } }),
  ],
};
const nullableInt = nullable(int);
const messageUsage = obj(
  {
    input_tokens: int,
    output_tokens: int,
    cache_creation_input_tokens: nullableInt,
    cache_read_input_tokens: nullableInt,
  },
  ['input_tokens', 'output_tokens'],
);

export const MESSAGE = obj(
  {
    id: nonEmpty,
    type: literal('message'),
    role: literal('assistant'),
    model: str,
    content: array(contentBlock),
    stop_reason: nullable(stopReason),
    stop_sequence: nullable(str),
    usage: messageUsage,
  },
  ['id', 'type', 'role', 'model', 'content', 'stop_reason', 'stop_sequence', 'usage'],
);

/** Anthropic's stream events (RawMessageStreamEvent), and its error event. */
export const MESSAGE_EVENTS: Readonly<Record<string, Schema>> = {
  message_start: obj({ message: MESSAGE }),
  content_block_start: obj({ index: int, content_block: contentBlock }),
  content_block_delta: obj({
    index: int,
    delta: {
      anyOf: [
        obj({ type: literal('text_delta'), text: str }),
        obj({ type: literal('thinking_delta'), thinking: str }),
        obj({ type: literal('signature_delta'), signature: str }),
        obj({ type: literal('input_json_delta'), partial_json: str }),
      ],
    },
  }),
  content_block_stop: obj({ index: int }),
  message_delta: obj({
    delta: obj({ stop_reason: nullable(stopReason), stop_sequence: nullable(str) }),
    usage: obj(
      {
        output_tokens: int,
        input_tokens: nullableInt,
        cache_creation_input_tokens: nullableInt,
        cache_read_input_tokens: nullableInt,
      },
      ['output_tokens'],
    ),
  }),
  message_stop: obj({}),
  error: obj({ error: obj({ type: nonEmpty, message: nonEmpty }) }),
};

/** Anthropic's error body: {type: 'error', error: {type, message}}. */
export const ANTHROPIC_ERROR = obj({ type: literal('error'), error: obj({ type: nonEmpty, message: nonEmpty }) });

// llama-server's own routes.

export const NATIVE_COMPLETION = obj(
  {
    content: str,
    stop: { const: true },
    tokens: array(int),
    tokens_predicted: int,
    tokens_evaluated: int,
    stop_type: literal('none', 'eos', 'word', 'limit'),
    stopping_word: str,
    truncated: { type: 'boolean' },
  },
  ['content', 'stop', 'tokens_predicted', 'tokens_evaluated', 'stop_type'],
);
export const NATIVE_CHUNK = obj({ content: str, stop: { const: false }, tokens: array(int) }, ['content', 'stop']);
export const NATIVE_EMBEDDINGS = array(
  obj({ index: int, embedding: array(array({ type: 'number' }), { minItems: 1 }) }),
  { minItems: 1 },
);
export const TOKENIZE = obj({
  tokens: array({ anyOf: [int, obj({ id: int, piece: { type: ['string', 'array'] } })] }),
});
export const DETOKENIZE = obj({ content: str });
export const APPLY_TEMPLATE = obj({ prompt: str });
export const INPUT_TOKENS = obj({ input_tokens: int });

let ajv: Ajv | undefined;
const compiled = new Map<Schema, ValidateFunction>();

/** Null when `value` has the shape, else what is wrong with it (ajv's first errors, with their paths). */
export function shapeProblem(schema: Schema, value: unknown): string | null {
  ajv ??= new Ajv({ allErrors: false, strict: true, allowUnionTypes: true });
  let validate = compiled.get(schema);
  if (validate === undefined) {
    validate = ajv.compile(schema);
    compiled.set(schema, validate);
  }
  if (validate(value)) return null;
  return (validate.errors ?? [])
    .slice(0, 2)
    .map((e) => `${e.instancePath || '/'} ${e.message ?? 'is wrong'}${e.params ? ` ${JSON.stringify(e.params)}` : ''}`)
    .join('; ');
}
