// OpenAI's Responses API (POST /v1/responses) as TypeBox schemas: the request body and the response object. Input
// items and tools are flat objects whose `type` picks the fields that matter; request.ts checks each type's fields
// and names what is missing or can't be honoured (input[3].call_id), which a union of schemas would not say clearly.
import { type Static, Type } from 'typebox';
import { Nullable, ReasoningBudgetFields, samplingWithout } from '../schemas.ts';

const Open = { additionalProperties: true } as const;

/** A content part: input_text, output_text, refusal, reasoning_text, summary_text... (images and files refused). */
const Part = Type.Object({ type: Type.String(), text: Type.Optional(Type.String()) }, Open);

/** One input item: a message (type 'message' or none, with a role), function_call, function_call_output, reasoning. */
export const InputItem = Type.Object(
  {
    type: Nullable(Type.String()),
    id: Nullable(Type.String()),
    status: Nullable(Type.String()),
    role: Nullable(Type.Enum(['user', 'assistant', 'system', 'developer'])),
    content: Nullable(Type.Union([Type.String(), Type.Array(Part)])),
    call_id: Nullable(Type.String()),
    name: Nullable(Type.String()),
    arguments: Nullable(Type.String()),
    output: Nullable(Type.Union([Type.String(), Type.Array(Part)])),
    summary: Nullable(Type.Array(Part)),
    encrypted_content: Nullable(Type.String()),
  },
  Open,
);
export type InputItem = Static<typeof InputItem>;

/** A tool: only `function` tools can be honoured (hosted tools are refused by name). */
export const ResponsesTool = Type.Object(
  {
    type: Type.String(),
    name: Type.Optional(Type.String({ minLength: 1, maxLength: 256 })),
    description: Nullable(Type.String()),
    parameters: Nullable(Type.Record(Type.String(), Type.Unknown())),
    strict: Nullable(Type.Boolean()),
  },
  Open,
);
export type ResponsesTool = Static<typeof ResponsesTool>;

export const ResponsesToolChoice = Type.Union([
  Type.Enum(['auto', 'none', 'required']),
  Type.Object(
    {
      type: Type.String(),
      name: Type.Optional(Type.String()),
      /** allowed_tools: the subset offered, and whether a call is required. */
      mode: Type.Optional(Type.Enum(['auto', 'required'])),
      tools: Type.Optional(Type.Array(Type.Object({ type: Type.String(), name: Type.Optional(Type.String()) }, Open))),
    },
    Open,
  ),
]);
export type ResponsesToolChoice = Static<typeof ResponsesToolChoice>;

export const TextFormat = Type.Object({
  type: Type.Enum(['text', 'json_object', 'json_schema']),
  name: Nullable(Type.String()),
  description: Nullable(Type.String()),
  schema: Nullable(Type.Record(Type.String(), Type.Unknown())),
  strict: Nullable(Type.Boolean()),
});

export const ResponsesBody = Type.Object({
  ...samplingWithout('max_tokens', 'n', 'stream_options'),
  /** llama-server's grammar (a GBNF constraint), as on its chat route. */
  grammar: Nullable(Type.String()),
  chat_template_kwargs: Nullable(Type.Record(Type.String(), Type.Unknown())),
  reasoning_format: Nullable(Type.Enum(['none', 'deepseek', 'deepseek-legacy', 'auto'])),
  ...ReasoningBudgetFields,
  input: Type.Optional(Type.Union([Type.String(), Type.Array(InputItem)])),
  instructions: Nullable(Type.String()),
  tools: Nullable(Type.Array(ResponsesTool)),
  tool_choice: Nullable(ResponsesToolChoice),
  parallel_tool_calls: Nullable(Type.Boolean()),
  max_output_tokens: Type.Optional(Type.Union([Type.Integer({ minimum: 1 }), Type.Null()])),
  max_tool_calls: Type.Optional(Type.Union([Type.Integer({ minimum: 1 }), Type.Null()])),
  text: Nullable(
    Type.Object({
      format: Nullable(TextFormat),
      verbosity: Nullable(Type.Enum(['low', 'medium', 'high'])),
    }),
  ),
  reasoning: Nullable(
    Type.Object({
      effort: Nullable(Type.Enum(['none', 'minimal', 'low', 'medium', 'high', 'xhigh'])),
      summary: Nullable(Type.Enum(['auto', 'concise', 'detailed'])),
      generate_summary: Nullable(Type.Enum(['auto', 'concise', 'detailed'])),
    }),
  ),
  store: Nullable(Type.Boolean()),
  previous_response_id: Nullable(Type.String()),
  metadata: Nullable(Type.Record(Type.String(), Type.String())),
  include: Nullable(Type.Array(Type.String())),
  background: Nullable(Type.Boolean()),
  truncation: Nullable(Type.Enum(['auto', 'disabled'])),
  top_logprobs: Type.Optional(Type.Union([Type.Integer({ minimum: 0, maximum: 20 }), Type.Null()])),
  conversation: Type.Optional(Type.Unknown()),
  prompt: Type.Optional(Type.Unknown()),
  safety_identifier: Nullable(Type.String()),
  prompt_cache_key: Nullable(Type.String()),
  service_tier: Nullable(Type.String()),
  stream_options: Nullable(Type.Object({ include_obfuscation: Nullable(Type.Boolean()) })),
});
export type ResponsesBody = Static<typeof ResponsesBody>;

export const ResponsesUsage = Type.Object({
  input_tokens: Type.Integer(),
  input_tokens_details: Type.Object({ cached_tokens: Type.Integer() }),
  output_tokens: Type.Integer(),
  output_tokens_details: Type.Object({ reasoning_tokens: Type.Integer() }),
  total_tokens: Type.Integer(),
});
export type ResponsesUsage = Static<typeof ResponsesUsage>;

/** The response object. Output items, tools and echoed settings stay open: they are sent as built. */
export const ResponseObject = Type.Object(
  {
    id: Type.String(),
    object: Type.Literal('response'),
    created_at: Type.Integer(),
    completed_at: Type.Union([Type.Integer(), Type.Null()]),
    status: Type.Enum(['completed', 'incomplete', 'in_progress', 'failed']),
    error: Type.Union([Type.Object({ code: Type.String(), message: Type.String() }, Open), Type.Null()]),
    incomplete_details: Type.Union([Type.Object({ reason: Type.String() }), Type.Null()]),
    model: Type.String(),
    output: Type.Array(Type.Object({ type: Type.String(), id: Type.String() }, Open)),
    usage: Type.Union([ResponsesUsage, Type.Null()]),
  },
  Open,
);
/** An output item: reasoning, message or function_call, with its own fields. */
export interface OutputItem {
  type: string;
  id: string;
  status?: string;
  content?: { type: string; text?: string; [field: string]: unknown }[];
  [field: string]: unknown;
}
export type ResponseObject = Omit<Static<typeof ResponseObject>, 'output'> & {
  output: OutputItem[];
  [field: string]: unknown;
};
