// OpenAI request bodies as TypeBox schemas. Optional fields also accept null, as OpenAI does (many clients send
// `"stop": null`). Fields the server does not know are ignored, as llama-server does; known fields it can't
// honour (n > 1, logprobs, echo, images) are refused by the routes with a 400 naming them.
import { type Static, type TSchema, Type } from 'typebox';

function Nullable<T extends TSchema>(schema: T) {
  return Type.Optional(Type.Union([schema, Type.Null()]));
}

const Sampling = {
  model: Nullable(Type.String()),
  stream: Nullable(Type.Boolean()),
  stream_options: Nullable(Type.Object({ include_usage: Nullable(Type.Boolean()) })),
  max_tokens: Nullable(Type.Integer({ minimum: 1 })),
  temperature: Nullable(Type.Number({ minimum: 0, maximum: 2 })),
  top_p: Nullable(Type.Number({ minimum: 0, maximum: 1 })),
  top_k: Nullable(Type.Integer({ minimum: 0 })),
  min_p: Nullable(Type.Number({ minimum: 0, maximum: 1 })),
  seed: Nullable(Type.Integer()),
  stop: Nullable(Type.Union([Type.String(), Type.Array(Type.String(), { maxItems: 4 })])),
  presence_penalty: Nullable(Type.Number({ minimum: -2, maximum: 2 })),
  frequency_penalty: Nullable(Type.Number({ minimum: -2, maximum: 2 })),
  /** llama-server's extension; 1 is off. */
  repeat_penalty: Nullable(Type.Number({ exclusiveMinimum: 0, maximum: 10 })),
  /** Token id (as a string key) -> bias. Keys are checked against the vocabulary by the route. */
  logit_bias: Nullable(Type.Record(Type.String(), Type.Number({ minimum: -100, maximum: 100 }))),
  user: Nullable(Type.String()),
  n: Nullable(Type.Integer()),
  logprobs: Nullable(Type.Boolean()),
};

/** Content parts are checked by the chat route, which names the part type it can't take (images, audio). */
export const ContentPart = Type.Object({ type: Type.String(), text: Type.Optional(Type.String()) });

export const ToolCallSchema = Type.Object({
  id: Nullable(Type.String()),
  type: Type.Literal('function'),
  function: Type.Object({
    name: Type.String({ minLength: 1 }),
    arguments: Type.Union([Type.String(), Type.Object({})]),
  }),
});

export const ChatMessageSchema = Type.Object({
  // 'developer' is OpenAI's newer name for 'system'.
  role: Type.Enum(['system', 'developer', 'user', 'assistant', 'tool']),
  content: Type.Optional(Type.Union([Type.String(), Type.Array(ContentPart), Type.Null()])),
  name: Nullable(Type.String()),
  tool_calls: Nullable(Type.Array(ToolCallSchema)),
  tool_call_id: Nullable(Type.String()),
  reasoning_content: Nullable(Type.String()),
});
export type ChatMessageBody = Static<typeof ChatMessageSchema>;

export const ToolSchema = Type.Object({
  type: Type.Literal('function'),
  function: Type.Object({
    name: Type.String({ minLength: 1, maxLength: 256 }),
    description: Nullable(Type.String()),
    /** A JSON Schema object; the route checks it is a valid schema. */
    parameters: Nullable(Type.Record(Type.String(), Type.Unknown())),
    strict: Nullable(Type.Boolean()),
  }),
});
export type ToolBody = Static<typeof ToolSchema>;

export const ToolChoiceSchema = Type.Union([
  Type.Enum(['auto', 'none', 'required']),
  Type.Object({ type: Type.Literal('function'), function: Type.Object({ name: Type.String() }) }),
]);

export const ResponseFormatSchema = Type.Union([
  Type.Object({ type: Type.Literal('text') }),
  Type.Object({ type: Type.Literal('json_object'), schema: Nullable(Type.Record(Type.String(), Type.Unknown())) }),
  Type.Object({
    type: Type.Literal('json_schema'),
    json_schema: Type.Object({
      name: Nullable(Type.String()),
      description: Nullable(Type.String()),
      schema: Nullable(Type.Record(Type.String(), Type.Unknown())),
      strict: Nullable(Type.Boolean()),
    }),
  }),
]);

/** Structured output: OpenAI's response_format and llama-server's json_schema / grammar. */
const Constraints = {
  response_format: Nullable(ResponseFormatSchema),
  json_schema: Nullable(Type.Record(Type.String(), Type.Unknown())),
  grammar: Nullable(Type.String()),
};

export const ChatCompletionBody = Type.Object({
  ...Sampling,
  ...Constraints,
  messages: Type.Array(ChatMessageSchema, { minItems: 1 }),
  max_completion_tokens: Nullable(Type.Integer({ minimum: 1 })),
  tools: Nullable(Type.Array(ToolSchema)),
  tool_choice: Nullable(ToolChoiceSchema),
  parallel_tool_calls: Nullable(Type.Boolean()),
  reasoning_format: Nullable(Type.Enum(['none', 'deepseek', 'deepseek-legacy', 'auto'])),
  reasoning_effort: Nullable(Type.String()),
  chat_template_kwargs: Nullable(Type.Record(Type.String(), Type.Unknown())),
  add_generation_prompt: Nullable(Type.Boolean()),
});
export type ChatCompletionBody = Static<typeof ChatCompletionBody>;

export const CompletionBody = Type.Object({
  ...Sampling,
  ...Constraints,
  prompt: Type.String(),
  echo: Nullable(Type.Boolean()),
  suffix: Nullable(Type.String()),
  best_of: Nullable(Type.Integer()),
});
export type CompletionBody = Static<typeof CompletionBody>;

/** The fields both routes share. */
export type SamplingBody = Pick<ChatCompletionBody, keyof typeof Sampling>;
