// The JSON bodies the routes answer with, as TypeBox schemas: the presenters are typed by them, and Fastify
// compiles a serializer for each (fast-json-stringify). Objects that llama-server extends (timings, __verbose)
// stay open, so an added field is sent rather than dropped.
import { type Static, Type } from 'typebox';

const Open = { additionalProperties: true } as const;

export const Usage = Type.Object({
  prompt_tokens: Type.Integer(),
  completion_tokens: Type.Integer(),
  total_tokens: Type.Integer(),
  prompt_tokens_details: Type.Object({ cached_tokens: Type.Integer() }),
});

/** llama-server's timings object. */
export const Timings = Type.Object({
  cache_n: Type.Integer(),
  prompt_n: Type.Integer(),
  prompt_ms: Type.Number(),
  prompt_per_token_ms: Type.Number(),
  prompt_per_second: Type.Number(),
  predicted_n: Type.Integer(),
  predicted_ms: Type.Number(),
  predicted_per_token_ms: Type.Number(),
  predicted_per_second: Type.Number(),
  draft_n: Type.Optional(Type.Integer()),
  draft_n_accepted: Type.Optional(Type.Integer()),
  // This server's: where the time before the first token went (src/server/generation/types.ts).
  queue_ms: Type.Optional(Type.Number()),
  prepare_ms: Type.Optional(Type.Number()),
  restored_n: Type.Optional(Type.Integer()),
  prefill_steps: Type.Optional(Type.Integer()),
  prefill_steps_ms: Type.Optional(Type.Number()),
});

const FinishReason = Type.Union([
  Type.Literal('stop'),
  Type.Literal('length'),
  Type.Literal('tool_calls'),
  Type.Literal('content_filter'),
]);

const ToolCall = Type.Object({
  id: Type.String(),
  type: Type.Literal('function'),
  function: Type.Object({ name: Type.String(), arguments: Type.String() }),
});

export const ChatMessageOut = Type.Object(
  {
    role: Type.Literal('assistant'),
    content: Type.Union([Type.String(), Type.Null()]),
    reasoning_content: Type.Optional(Type.String()),
    tool_calls: Type.Optional(Type.Array(ToolCall)),
  },
  Open,
);

export const ChatChoice = Type.Object({
  index: Type.Integer(),
  message: ChatMessageOut,
  logprobs: Type.Union([Type.Object({ content: Type.Array(Type.Unknown()) }, Open), Type.Null()]),
  finish_reason: FinishReason,
});

export const ChatCompletionResponse = Type.Object(
  {
    id: Type.String(),
    object: Type.Literal('chat.completion'),
    created: Type.Integer(),
    model: Type.String(),
    system_fingerprint: Type.String(),
    choices: Type.Array(ChatChoice),
    usage: Usage,
    timings: Type.Optional(Timings),
    /** llama-server's -v: what the request rendered to. */
    __verbose: Type.Optional(Type.Record(Type.String(), Type.Unknown())),
  },
  Open,
);
export type ChatCompletionResponse = Static<typeof ChatCompletionResponse>;

export const TextChoice = Type.Object({
  index: Type.Integer(),
  text: Type.String(),
  logprobs: Type.Union([Type.Object({}, Open), Type.Null()]),
  finish_reason: Type.Union([FinishReason, Type.Null()]),
});

export const TextCompletionResponse = Type.Object(
  {
    id: Type.String(),
    object: Type.Literal('text_completion'),
    created: Type.Integer(),
    model: Type.String(),
    system_fingerprint: Type.String(),
    choices: Type.Array(TextChoice),
    usage: Usage,
    timings: Type.Optional(Timings),
  },
  Open,
);
export type TextCompletionResponse = Static<typeof TextCompletionResponse>;

export const ModelList = Type.Object({
  object: Type.Literal('list'),
  data: Type.Array(
    Type.Object(
      {
        id: Type.String(),
        object: Type.Literal('model'),
        created: Type.Integer(),
        owned_by: Type.String(),
        aliases: Type.Array(Type.String()),
        tags: Type.Array(Type.String()),
        meta: Type.Object(
          {
            n_ctx: Type.Integer(),
            n_ctx_train: Type.Integer(),
            n_params: Type.Integer(),
            size: Type.Integer(),
            n_vocab: Type.Integer(),
            n_slots: Type.Integer(),
          },
          Open,
        ),
      },
      Open,
    ),
  ),
});
export type ModelList = Static<typeof ModelList>;

export const TokenizeResponse = Type.Object({
  tokens: Type.Union([
    Type.Array(Type.Integer()),
    Type.Array(Type.Object({ id: Type.Integer(), piece: Type.Union([Type.String(), Type.Array(Type.Integer())]) })),
  ]),
});

export const DetokenizeResponse = Type.Object({ content: Type.String() });
