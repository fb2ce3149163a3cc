// A chat completion body -> what the chat layer renders: messages as OpenAI sends them, tools, tool_choice and the
// structured-output constraint. Everything the server can't honour is refused here with a 400 naming it, so
// nothing the client asked for is silently dropped.
import { Ajv } from 'ajv';
import { ArgumentError, TemplateError, ToolChoiceError } from '../../errors.ts';
import type { Grammar } from '../../scheduler/decoder.ts';
import { invalidRequest } from '../errors.ts';
import { checkGrammarSize, checkSchemaSize, type RequestLimits } from '../limits.ts';
import type { ChatCompletionBody, ChatMessageBody, ToolBody } from '../schemas.ts';
import type { ChatRenderRequest } from './layer.ts';

const schemaChecker = new Ajv({ strict: false, validateSchema: true });

/** The constraint a request asked for, if any. */
export type Constraint =
  | { kind: 'json_schema'; schema: Record<string, unknown> }
  | { kind: 'grammar'; grammar: string };

/** OpenAI's json_object mode: any JSON object. */
const ANY_OBJECT = { type: 'object' };
/** The empty schema, `{}`, allows any JSON value; llama.cpp's chat layer reads an empty one as no schema at all. */
const ANY_VALUE = { type: ['object', 'array', 'string', 'number', 'boolean', 'null'] };

export function constraintOf(
  body: Pick<ChatCompletionBody, 'response_format' | 'json_schema' | 'grammar'>,
  limits: RequestLimits,
): Constraint | null {
  const format = body.response_format ?? null;
  const fromFormat =
    format === null || format.type === 'text'
      ? null
      : format.type === 'json_object'
        ? (format.schema ?? ANY_OBJECT)
        : (format.json_schema.schema ?? ANY_OBJECT);
  const schema = fromFormat ?? body.json_schema ?? null;
  const grammar = body.grammar ?? null;
  if (grammar !== null && grammar !== '' && schema !== null) {
    const param = fromFormat !== null ? 'response_format' : 'json_schema';
    throw invalidRequest(`'grammar' and '${param}' cannot be used together: give one constraint.`, 'grammar');
  }
  if (schema !== null) {
    checkSchema(schema, fromFormat !== null ? 'response_format' : 'json_schema', limits);
    const empty = Object.keys(schema).every((k) => k === '$schema');
    return { kind: 'json_schema', schema: empty ? ANY_VALUE : schema };
  }
  if (grammar !== null && grammar !== '') {
    checkGrammarSize(grammar, limits);
    return { kind: 'grammar', grammar };
  }
  return null;
}

/** A JSON Schema object that a validator accepts (the meta-schema check), or a 400 naming the parameter. */
export function checkSchema(schema: Record<string, unknown>, param: string, limits: RequestLimits): void {
  // The meta-schema check runs on the main thread: its input is bounded first.
  checkSchemaSize(schema, param, limits);
  // Draft markers ajv doesn't bundle are not the client's mistake; the body of the schema is what is checked.
  const { $schema: _ignored, ...body } = schema;
  let valid: boolean;
  try {
    valid = schemaChecker.validateSchema(body) as boolean;
  } catch (err) {
    throw invalidRequest(`Invalid '${param}': not a JSON Schema (${(err as Error).message}).`, param, 'invalid_schema');
  }
  if (!valid) {
    const why = schemaChecker.errorsText(schemaChecker.errors, { dataVar: param });
    throw invalidRequest(`Invalid '${param}': not a JSON Schema (${why}).`, param, 'invalid_schema');
  }
}

/** Messages as the chat layer takes them: text parts only (images and audio are refused by name). */
function messagesOf(messages: readonly ChatMessageBody[]): unknown[] {
  return messages.map((m, i) => {
    const content = m.content;
    if (Array.isArray(content)) {
      content.forEach((part, j) => {
        if (part.type !== 'text') {
          throw invalidRequest(
            `Content part type '${part.type}' in messages[${i}].content[${j}] is not supported: this server serves a text-only model (no images or audio).`,
            `messages[${i}].content[${j}].type`,
            'unsupported_content_type',
          );
        }
        if (typeof part.text !== 'string') {
          throw invalidRequest(
            `Missing required parameter: 'messages[${i}].content[${j}].text'.`,
            `messages[${i}].content[${j}].text`,
            'missing_required_parameter',
          );
        }
      });
    }
    const hasCalls = Array.isArray(m.tool_calls) && m.tool_calls.length > 0;
    if (m.role === 'assistant' && content === undefined && !hasCalls && !m.reasoning_content) {
      throw invalidRequest(
        `messages[${i}]: an assistant message needs 'content' or 'tool_calls'.`,
        `messages[${i}].content`,
        'missing_required_parameter',
      );
    }
    if (m.role !== 'assistant' && (content === undefined || content === null)) {
      throw invalidRequest(
        `Missing required parameter: 'messages[${i}].content'.`,
        `messages[${i}].content`,
        'missing_required_parameter',
      );
    }
    if (m.role === 'tool' && (m.tool_call_id === undefined || m.tool_call_id === null)) {
      throw invalidRequest(
        `Missing required parameter: 'messages[${i}].tool_call_id' (a tool message answers a tool call).`,
        `messages[${i}].tool_call_id`,
        'missing_required_parameter',
      );
    }
    const out: Record<string, unknown> = { role: m.role, content: content ?? null };
    if (typeof m.name === 'string') out.name = m.name;
    if (typeof m.tool_call_id === 'string') out.tool_call_id = m.tool_call_id;
    if (typeof m.reasoning_content === 'string') out.reasoning_content = m.reasoning_content;
    if (hasCalls) {
      out.tool_calls = m.tool_calls?.map((c) => ({
        ...(c.id ? { id: c.id } : {}),
        type: 'function',
        function: {
          name: c.function.name,
          arguments:
            typeof c.function.arguments === 'string' ? c.function.arguments : JSON.stringify(c.function.arguments),
        },
      }));
    }
    return out;
  });
}

/**
 * Tool names unique, parameters valid JSON Schemas; `param` names a tool's field as the client's API does
 * (chat's tools[i].function.parameters, the Responses API's tools[i].parameters, Anthropic's tools[i].input_schema).
 */
export function checkToolList(
  tools: readonly { name: string; parameters?: Record<string, unknown> | null | undefined }[],
  param: (i: number, field: 'name' | 'parameters') => string,
  limits: RequestLimits,
): void {
  const names = new Set<string>();
  tools.forEach(({ name, parameters }, i) => {
    if (names.has(name)) {
      throw invalidRequest(`Duplicate tool name '${name}' in tools[${i}].`, param(i, 'name'), 'invalid_value');
    }
    names.add(name);
    if (parameters !== undefined && parameters !== null) checkSchema(parameters, param(i, 'parameters'), limits);
  });
}

function checkTools(tools: readonly ToolBody[], limits: RequestLimits): void {
  checkToolList(
    tools.map((t) => t.function),
    (i, field) => `tools[${i}].function.${field}`,
    limits,
  );
}

/** The render request for the chat layer; refuses what can't be honoured. */
export function renderRequest(
  body: ChatCompletionBody,
  constraint: Constraint | null,
  supportsTools: boolean,
  limits: RequestLimits,
): ChatRenderRequest {
  const request: ChatRenderRequest = { messages: messagesOf(body.messages), stream: body.stream === true };
  let tools = body.tools ?? [];
  const choice = body.tool_choice ?? null;
  if (choice !== null && tools.length === 0 && choice !== 'none' && choice !== 'auto') {
    throw invalidRequest("'tool_choice' needs 'tools': no tools were given.", 'tool_choice', 'invalid_value');
  }
  if (tools.length > 0) {
    if (!supportsTools) {
      throw invalidRequest(
        "'tools' need a Jinja chat template; this server renders a built-in template (started with --no-jinja or a named --chat-template).",
        'tools',
        'unsupported_parameter',
      );
    }
    checkTools(tools, limits);
    if (constraint !== null && choice !== 'none') {
      throw invalidRequest(
        `'tools' cannot be combined with '${constraint.kind === 'grammar' ? 'grammar' : 'response_format'}': the tool-call grammar is the constraint.`,
        'tools',
        'invalid_value',
      );
    }
    let mode: 'auto' | 'none' | 'required' = 'auto';
    if (typeof choice === 'string') mode = choice;
    else if (choice !== null) {
      // A named function: only that tool is offered, and a call is required.
      const named = tools.find((t) => t.function.name === choice.function.name);
      if (named === undefined) {
        throw invalidRequest(
          `'tool_choice' names the function '${choice.function.name}', which is not in 'tools'.`,
          'tool_choice.function.name',
          'invalid_value',
        );
      }
      tools = [named];
      mode = 'required';
    }
    request.tools = tools.map((t) => ({
      type: 'function',
      function: {
        name: t.function.name,
        description: t.function.description ?? '',
        parameters: t.function.parameters ?? { type: 'object', properties: {} },
      },
    }));
    request.tool_choice = mode;
  }
  if (body.parallel_tool_calls !== undefined && body.parallel_tool_calls !== null)
    request.parallel_tool_calls = body.parallel_tool_calls;
  if (constraint?.kind === 'json_schema') request.json_schema = constraint.schema;
  if (constraint?.kind === 'grammar') request.grammar = constraint.grammar;
  if (body.reasoning_format) request.reasoning_format = body.reasoning_format;
  if (body.reasoning_effort) request.reasoning_effort = body.reasoning_effort;
  if (body.chat_template_kwargs) request.chat_template_kwargs = body.chat_template_kwargs;
  if (body.add_generation_prompt !== undefined && body.add_generation_prompt !== null)
    request.add_generation_prompt = body.add_generation_prompt;
  if (body.continue_final_message !== undefined && body.continue_final_message !== null)
    request.continue_final_message = body.continue_final_message;
  return request;
}

/** A grammar the client wrote: applied from its root to the raw output (kind 0, user). */
export function userGrammar(text: string): Grammar {
  return { text, kind: 0, lazy: false, triggers: [], generationPrompt: '' };
}

/** The chat layer refused the request (llama.cpp's message, or the template's own): a 400, never a 500. */
export function chatLayerRefusal(err: unknown): unknown {
  if (err instanceof TemplateError) {
    return invalidRequest(
      `The chat template cannot render this conversation: ${err.message}`,
      'messages',
      'template_error',
    );
  }
  if (err instanceof ToolChoiceError) {
    return invalidRequest(
      `'tool_choice' asks for a tool call this model's chat template cannot force: ${err.message}.`,
      'tool_choice',
      'unsupported_value',
    );
  }
  if (err instanceof ArgumentError) return invalidRequest(err.message, null, 'invalid_value');
  return err;
}
