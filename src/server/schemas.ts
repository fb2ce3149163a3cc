// OpenAI request bodies as TypeBox schemas. Optional fields also accept null, as OpenAI does (many clients send
// `"stop": null`). Fields the server does not know are ignored, as llama-server does; known fields it can't
// honour (n > 1, logprobs, echo, images) are refused by the routes with a 400 naming them.
import { type Static, type TSchema, Type } from 'typebox';
import {
  GENERATION_PARAMETERS,
  type GenerationParameter,
  type GenerationParameters,
  PARAMETER_NAMES,
  type ParameterName,
  TOKEN_COUNT_MAX,
} from './generation/parameters.ts';

export function Nullable<T extends TSchema>(schema: T) {
  return Type.Optional(Type.Union([schema, Type.Null()]));
}

const Num = (o: Record<string, number> = {}) => Nullable(Type.Number(o));
const Int = (o: Record<string, number> = {}) => Nullable(Type.Integer(o));
const Bool = () => Nullable(Type.Boolean());

/** The schemas of the parameters whose values have a structure of their own (the table's 'shape' kind). */
const SHAPES = {
  /** How many and how long: the server's limits (limits.ts), checked by the route. */
  stop: Nullable(Type.Union([Type.String(), Type.Array(Type.String())])),
  dry_sequence_breakers: Nullable(Type.Array(Type.String())),
  /** Sampler order: llama.cpp names, or a string of their letters (llama-server's). */
  samplers: Nullable(Type.Union([Type.Array(Type.String()), Type.String()])),
  /**
   * Token id (as a string key) -> bias; or llama-server's [[id or text, bias or false], ...]. -100 and false ban.
   * Keys are checked against the vocabulary by the route.
   */
  logit_bias: Nullable(
    Type.Union([
      Type.Record(Type.String(), Type.Union([Type.Number(), Type.Boolean()])),
      Type.Array(
        Type.Tuple([Type.Union([Type.Integer(), Type.String()]), Type.Union([Type.Number(), Type.Boolean()])]),
      ),
    ]),
  ),
};
type Shapes = typeof SHAPES;

type FieldOf<P extends GenerationParameter, F extends string> = P['kind'] extends 'int'
  ? ReturnType<typeof Int>
  : P['kind'] extends 'float'
    ? ReturnType<typeof Num>
    : P['kind'] extends 'bool'
      ? ReturnType<typeof Bool>
      : F extends keyof Shapes
        ? Shapes[F]
        : never;
type GenerationFields = {
  [K in ParameterName as GenerationParameters[K]['api'][number]]: FieldOf<
    GenerationParameters[K],
    GenerationParameters[K]['api'][number]
  >;
};

/**
 * The generation parameters' request fields, from their table (generation/parameters.ts): its bounds lie within the
 * decoder's own, so that a value it would refuse is a 400 naming the field here, never a failed generation.
 */
function generationFields(): GenerationFields {
  const fields: Record<string, TSchema> = {};
  for (const name of PARAMETER_NAMES) {
    const p: GenerationParameter = GENERATION_PARAMETERS[name];
    const range = { ...(p.min !== undefined && { minimum: p.min }), ...(p.max !== undefined && { maximum: p.max }) };
    for (const field of p.api) {
      if (p.kind === 'shape') {
        const shape = SHAPES[field as keyof Shapes];
        if (shape === undefined) throw new Error(`no request schema for the generation parameter '${field}'`);
        fields[field] = shape;
      } else fields[field] = p.kind === 'int' ? Int(range) : p.kind === 'float' ? Num(range) : Bool();
    }
  }
  return fields as GenerationFields;
}

const GENERATION_FIELDS = generationFields();

/** One generation's fields: OpenAI's and llama-server's names, accepted on every generation route. */
const Sampling = {
  model: Nullable(Type.String()),
  stream: Nullable(Type.Boolean()),
  stream_options: Nullable(Type.Object({ include_usage: Nullable(Type.Boolean()) })),
  ...GENERATION_FIELDS,
  /** Only this slot (-1: any). */
  id_slot: Int({ minimum: -1 }),
  /** Milliseconds the generation phase may take; then it stops as if at its token limit. */
  t_max_predict_ms: Int({ minimum: 1, maximum: 2 ** 31 - 1 }),
  return_tokens: Nullable(Type.Boolean()),
  return_progress: Nullable(Type.Boolean()),
  timings_per_token: Nullable(Type.Boolean()),
  /** Responses carry __verbose (llama-server's debugging field). */
  verbose: Nullable(Type.Boolean()),
  user: Nullable(Type.String()),
  n: Int({ minimum: 1, maximum: 16 }),
};

/**
 * The generation fields, for the routes that translate another API into a chat request (the Responses and Messages
 * APIs): llama-server takes its own fields there too, as it turns those requests into chat ones, fields and all.
 * Each route leaves out the ones its API names its own way (max_output_tokens, stop_sequences).
 */
export function samplingWithout<K extends keyof typeof Sampling>(...keys: K[]): Omit<typeof Sampling, K> {
  const fields: Partial<typeof Sampling> = { ...Sampling };
  for (const k of keys) delete fields[k];
  return fields as Omit<typeof Sampling, K>;
}

/** The generation fields a body carries (what a translated request keeps of its own). */
export function samplingOf(body: object): Partial<GenerationParamsBody> {
  return Object.fromEntries(Object.entries(body).filter(([k]) => Object.hasOwn(Sampling, k)));
}

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

/**
 * llama-server's reasoning budget: at most this many tokens between the template's thinking tags, then the end tag is
 * forced (-1: no limit). thinking_budget_tokens is its older name; reasoning_budget_tokens wins when both are given.
 */
export const ReasoningBudgetFields = {
  reasoning_budget_tokens: Int({ minimum: -1, maximum: TOKEN_COUNT_MAX }),
  thinking_budget_tokens: Int({ minimum: -1, maximum: TOKEN_COUNT_MAX }),
};

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
  /** OpenAI's newer name for max_tokens (chat only): the same parameter. */
  max_completion_tokens: GENERATION_FIELDS.max_tokens,
  logprobs: Nullable(Type.Boolean()),
  top_logprobs: Int({ minimum: 0, maximum: 20 }),
  continue_final_message: Nullable(Type.Union([Type.Boolean(), Type.String()])),
  tools: Nullable(Type.Array(ToolSchema)),
  tool_choice: Nullable(ToolChoiceSchema),
  parallel_tool_calls: Nullable(Type.Boolean()),
  reasoning_format: Nullable(Type.Enum(['none', 'deepseek', 'deepseek-legacy', 'auto'])),
  reasoning_effort: Nullable(Type.String()),
  ...ReasoningBudgetFields,
  chat_template_kwargs: Nullable(Type.Record(Type.String(), Type.Unknown())),
  add_generation_prompt: Nullable(Type.Boolean()),
});
export type ChatCompletionBody = Static<typeof ChatCompletionBody>;

/** Text, token ids, a mix, {prompt_string}, or an array of those: checked by the route (generation/prompt.ts). */
const Prompt = Type.Unknown();

export const CompletionBody = Type.Object({
  ...Sampling,
  ...Constraints,
  prompt: Prompt,
  /** OpenAI's legacy form: how many most likely tokens to report per position (0-5). */
  logprobs: Int({ minimum: 0, maximum: 20 }),
  echo: Nullable(Type.Boolean()),
  suffix: Nullable(Type.String()),
  best_of: Nullable(Type.Integer()),
});
export type CompletionBody = Static<typeof CompletionBody>;

/** llama-server's POST /completion. */
export const NativeCompletionBody = Type.Object({
  ...Sampling,
  ...Constraints,
  prompt: Prompt,
  /** Only these fields of the response ("a/b" lifts a nested one to the top). */
  response_fields: Nullable(Type.Array(Type.String())),
});
export type NativeCompletionBody = Static<typeof NativeCompletionBody>;

/** The fields every generation route shares. */
export type GenerationParamsBody = Pick<ChatCompletionBody, keyof typeof Sampling>;
