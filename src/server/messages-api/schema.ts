// Anthropic's Messages API (POST /v1/messages, /v1/messages/count_tokens) as TypeBox schemas. Content blocks are
// flat objects whose `type` picks the fields that matter; request.ts checks each type's fields and names what is
// missing or can't be honoured (messages[2].content[0].type), which a union of schemas would not say clearly.
import { type Static, Type } from 'typebox';
import { Nullable, ReasoningBudgetFields, samplingWithout } from '../schemas.ts';

const Open = { additionalProperties: true } as const;

/** text, tool_use, tool_result, thinking... (images and documents are refused by the route). */
export const ContentBlock = Type.Object(
  {
    type: Type.String(),
    text: Nullable(Type.String()),
    id: Nullable(Type.String()),
    name: Nullable(Type.String()),
    input: Type.Optional(Type.Unknown()),
    tool_use_id: Nullable(Type.String()),
    content: Nullable(Type.Union([Type.String(), Type.Array(Type.Object({ type: Type.String() }, Open))])),
    is_error: Nullable(Type.Boolean()),
    thinking: Nullable(Type.String()),
    signature: Nullable(Type.String()),
  },
  Open,
);
export type ContentBlock = Static<typeof ContentBlock>;

export const MessageParam = Type.Object({
  role: Type.Enum(['user', 'assistant']),
  content: Type.Union([Type.String(), Type.Array(ContentBlock)]),
});
export type MessageParam = Static<typeof MessageParam>;

export const MessagesTool = Type.Object(
  {
    type: Nullable(Type.String()),
    name: Type.String({ minLength: 1, maxLength: 256 }),
    description: Nullable(Type.String()),
    input_schema: Nullable(Type.Record(Type.String(), Type.Unknown())),
  },
  Open,
);
export type MessagesTool = Static<typeof MessagesTool>;

const Shared = {
  ...samplingWithout('max_tokens', 'n', 'stream_options', 'stop', 'user'),
  /** llama-server's grammar (a GBNF constraint), as on its chat route. */
  grammar: Nullable(Type.String()),
  chat_template_kwargs: Nullable(Type.Record(Type.String(), Type.Unknown())),
  ...ReasoningBudgetFields,
  messages: Type.Array(MessageParam, { minItems: 1 }),
  system: Nullable(Type.Union([Type.String(), Type.Array(ContentBlock)])),
  stop_sequences: Nullable(Type.Array(Type.String(), { maxItems: 16 })),
  tools: Nullable(Type.Array(MessagesTool)),
  tool_choice: Nullable(
    Type.Object({
      type: Type.Enum(['auto', 'any', 'tool', 'none']),
      name: Nullable(Type.String()),
      disable_parallel_tool_use: Nullable(Type.Boolean()),
    }),
  ),
  thinking: Nullable(
    Type.Object({
      type: Type.Enum(['enabled', 'disabled', 'adaptive']),
      budget_tokens: Nullable(Type.Integer()),
      display: Nullable(Type.Enum(['summarized', 'omitted'])),
    }),
  ),
  output_config: Nullable(
    Type.Object({
      effort: Nullable(Type.Enum(['low', 'medium', 'high', 'xhigh', 'max'])),
      format: Nullable(
        Type.Object({ type: Type.Literal('json_schema'), schema: Type.Record(Type.String(), Type.Unknown()) }),
      ),
    }),
  ),
  metadata: Nullable(Type.Object({ user_id: Nullable(Type.String()) }, Open)),
  mcp_servers: Nullable(Type.Array(Type.Unknown())),
  container: Type.Optional(Type.Unknown()),
  service_tier: Nullable(Type.String()),
};

export const MessagesBody = Type.Object({ ...Shared, max_tokens: Type.Integer({ minimum: 1 }) });
export type MessagesBody = Static<typeof MessagesBody>;

/** count_tokens: the same request, without max_tokens (nothing is generated). */
export const CountTokensBody = Type.Object({ ...Shared, max_tokens: Nullable(Type.Integer({ minimum: 1 })) });
export type CountTokensBody = Static<typeof CountTokensBody>;

export const MessagesUsage = Type.Object(
  {
    input_tokens: Type.Integer(),
    output_tokens: Type.Integer(),
    cache_creation_input_tokens: Type.Integer(),
    cache_read_input_tokens: Type.Integer(),
  },
  Open,
);
export type MessagesUsage = Static<typeof MessagesUsage>;

/** A content block of the answer: text, thinking or tool_use. */
export interface AnswerBlock {
  type: 'text' | 'thinking' | 'tool_use';
  [field: string]: unknown;
}

export const MessageObject = Type.Object(
  {
    id: Type.String(),
    type: Type.Literal('message'),
    role: Type.Literal('assistant'),
    model: Type.String(),
    content: Type.Array(Type.Object({ type: Type.String() }, Open)),
    stop_reason: Type.Union([Type.String(), Type.Null()]),
    stop_sequence: Type.Union([Type.String(), Type.Null()]),
    usage: MessagesUsage,
  },
  Open,
);
export type MessageObject = Omit<Static<typeof MessageObject>, 'content'> & {
  content: AnswerBlock[];
  [field: string]: unknown;
};
