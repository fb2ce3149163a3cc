// OpenAI request bodies as TypeBox schemas. Optional fields also accept null, as OpenAI does (many clients send
// `"stop": null`). Fields the server does not know are ignored, as llama-server does; known fields it can't
// honour (n > 1, logprobs, echo) are refused by the routes with a 400 naming them.
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

export const TextPart = Type.Object({ type: Type.Literal('text'), text: Type.String() });

export const ChatMessageSchema = Type.Object({
  // 'developer' is OpenAI's newer name for 'system'.
  role: Type.Enum(['system', 'developer', 'user', 'assistant']),
  content: Type.Union([Type.String(), Type.Array(TextPart), Type.Null()]),
  name: Nullable(Type.String()),
});

export const ChatCompletionBody = Type.Object({
  ...Sampling,
  messages: Type.Array(ChatMessageSchema, { minItems: 1 }),
  max_completion_tokens: Nullable(Type.Integer({ minimum: 1 })),
});
export type ChatCompletionBody = Static<typeof ChatCompletionBody>;

export const CompletionBody = Type.Object({
  ...Sampling,
  prompt: Type.String(),
  echo: Nullable(Type.Boolean()),
  suffix: Nullable(Type.String()),
  best_of: Nullable(Type.Integer()),
});
export type CompletionBody = Static<typeof CompletionBody>;

/** The fields both routes share. */
export type SamplingBody = Pick<ChatCompletionBody, keyof typeof Sampling>;
