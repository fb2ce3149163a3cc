// A Responses API request -> the chat request the chat path renders: input items become chat messages (consecutive
// assistant items -- reasoning, message, function calls -- one assistant turn, function_call_output a tool message),
// instructions the system message, function tools and tool_choice the chat ones, text.format the response_format.
// What can't be honoured (hosted tools, images and files, background runs, log probabilities) is a 400 naming the
// field as the Responses API calls it.

import { checkSchema, checkToolList } from '../chat/request.ts';
import { invalidRequest } from '../errors.ts';
import type { RequestLimits } from '../limits.ts';
import type { ChatCompletionBody, ChatMessageBody, ToolBody } from '../schemas.ts';
import { samplingOf } from '../schemas.ts';
import type { InputItem, ResponsesBody, ResponsesTool, ResponsesToolChoice } from './schema.ts';

/** What the chat path renders, and the conversation so far (without instructions, which don't carry over). */
export interface TranslatedRequest {
  chat: ChatCompletionBody;
  conversation: ChatMessageBody[];
}

const TEXT_ONLY = 'this server serves a text-only model (no images, files or audio)';

function missing(param: string, why = ''): never {
  throw invalidRequest(`Missing required parameter: '${param}'${why}.`, param, 'missing_required_parameter');
}

/** The text of content parts; anything but text is refused by name. */
function textOf(parts: NonNullable<InputItem['content']>, param: string, allowed: readonly string[]): string {
  if (typeof parts === 'string') return parts;
  return parts
    .map((part, j) => {
      if (!allowed.includes(part.type)) {
        const why = part.type.startsWith('input_')
          ? TEXT_ONLY
          : `expected ${allowed.map((a) => `'${a}'`).join(' or ')}`;
        throw invalidRequest(
          `Content part type '${part.type}' in ${param}[${j}] is not supported: ${why}.`,
          `${param}[${j}].type`,
          'unsupported_content_type',
        );
      }
      const text = part.type === 'refusal' ? (part as { refusal?: unknown }).refusal : part.text;
      if (typeof text !== 'string') missing(`${param}[${j}].${part.type === 'refusal' ? 'refusal' : 'text'}`);
      return text;
    })
    .join('');
}

/** Input items as chat messages, in order; `prior` is the stored conversation they continue. */
export function messagesOf(input: ResponsesBody['input'], prior: readonly ChatMessageBody[]): ChatMessageBody[] {
  const out: ChatMessageBody[] = [...prior];
  const fresh = prior.length;
  if (input === undefined) return out;
  if (typeof input === 'string') return [...out, { role: 'user', content: input }];
  // Output items of one turn (reasoning, message, function calls) are one assistant message.
  const assistant = (): ChatMessageBody => {
    const last = out.at(-1);
    if (last?.role === 'assistant' && out.length > fresh) return last;
    const message: ChatMessageBody = { role: 'assistant', content: null };
    out.push(message);
    return message;
  };
  input.forEach((item, i) => {
    const at = `input[${i}]`;
    const type = item.type ?? (item.role !== undefined && item.role !== null ? 'message' : null);
    switch (type) {
      case 'message': {
        if (item.role === undefined || item.role === null) missing(`${at}.role`);
        if (item.content === undefined || item.content === null) missing(`${at}.content`);
        if (item.role === 'assistant') {
          const text = textOf(item.content, `${at}.content`, ['output_text', 'input_text', 'refusal']);
          const message = assistant();
          message.content = `${typeof message.content === 'string' ? message.content : ''}${text}`;
        } else {
          out.push({ role: item.role, content: textOf(item.content, `${at}.content`, ['input_text']) });
        }
        return;
      }
      case 'function_call': {
        for (const field of ['call_id', 'name', 'arguments'] as const) {
          if (typeof item[field] !== 'string') missing(`${at}.${field}`);
        }
        const message = assistant();
        message.tool_calls = [
          ...(message.tool_calls ?? []),
          {
            id: item.call_id ?? '',
            type: 'function',
            function: { name: item.name ?? '', arguments: item.arguments ?? '' },
          },
        ];
        return;
      }
      case 'function_call_output': {
        if (typeof item.call_id !== 'string') missing(`${at}.call_id`);
        if (item.output === undefined || item.output === null) missing(`${at}.output`);
        out.push({
          role: 'tool',
          tool_call_id: item.call_id,
          content: textOf(item.output, `${at}.output`, ['input_text', 'output_text']),
        });
        return;
      }
      case 'reasoning': {
        // The reasoning text travels in `content` (reasoning_text parts); a summary stands in when that is all.
        const parts = item.content !== undefined && item.content !== null ? item.content : (item.summary ?? []);
        const text = textOf(parts, `${at}.${item.content ? 'content' : 'summary'}`, ['reasoning_text', 'summary_text']);
        if (text !== '') {
          const message = assistant();
          message.reasoning_content = `${message.reasoning_content ?? ''}${text}`;
        }
        return;
      }
      case 'item_reference':
        throw invalidRequest(
          `${at}: 'item_reference' is not supported: send the item itself, or continue a stored response with 'previous_response_id'.`,
          `${at}.type`,
          'unsupported_item_type',
        );
      case null:
        throw invalidRequest(
          `Missing required parameter: '${at}.type' (or a 'role' for a message).`,
          `${at}.type`,
          'missing_required_parameter',
        );
      default:
        throw invalidRequest(
          `Input item type '${type}' in ${at} is not supported: this server runs no hosted tools; send messages, function_call, function_call_output and reasoning items.`,
          `${at}.type`,
          'unsupported_item_type',
        );
    }
  });
  return out;
}

/** Function tools as chat tools; hosted ones (web_search, file_search, computer_use...) are refused by name. */
function toolsOf(tools: readonly ResponsesTool[], limits: RequestLimits): ToolBody[] {
  const named = tools.map((tool, i) => {
    if (tool.type !== 'function') {
      throw invalidRequest(
        `Tool type '${tool.type}' in tools[${i}] is not supported: this server runs no hosted tools; give 'function' tools, which the client runs.`,
        `tools[${i}].type`,
        'unsupported_tool_type',
      );
    }
    if (tool.name === undefined) missing(`tools[${i}].name`);
    return { ...tool, name: tool.name };
  });
  checkToolList(named, (i, field) => `tools[${i}].${field}`, limits);
  return named.map((t) => ({
    type: 'function',
    function: {
      name: t.name,
      ...(t.description ? { description: t.description } : {}),
      ...(t.parameters ? { parameters: t.parameters } : {}),
    },
  }));
}

/** tool_choice as chat's; allowed_tools narrows the tools offered. */
function toolChoiceOf(
  choice: ResponsesToolChoice,
  tools: ToolBody[],
): { choice: ChatCompletionBody['tool_choice']; tools: ToolBody[] } {
  if (typeof choice === 'string') return { choice, tools };
  const known = (name: string | undefined, param: string): string => {
    if (name === undefined) missing(param);
    if (!tools.some((t) => t.function.name === name)) {
      throw invalidRequest(
        `'tool_choice' names the function '${name}', which is not in 'tools'.`,
        param,
        'invalid_value',
      );
    }
    return name;
  };
  if (choice.type === 'function') {
    return { choice: { type: 'function', function: { name: known(choice.name, 'tool_choice.name') } }, tools };
  }
  if (choice.type === 'allowed_tools') {
    const allowed = (choice.tools ?? []).map((t, i) => {
      if (t.type !== 'function') {
        throw invalidRequest(
          `Tool type '${t.type}' in tool_choice.tools[${i}] is not supported: only function tools are offered.`,
          `tool_choice.tools[${i}].type`,
          'unsupported_tool_type',
        );
      }
      return known(t.name, `tool_choice.tools[${i}].name`);
    });
    if (allowed.length === 0) missing('tool_choice.tools');
    return { choice: choice.mode ?? 'auto', tools: tools.filter((t) => allowed.includes(t.function.name)) };
  }
  throw invalidRequest(
    `tool_choice type '${choice.type}' is not supported: this server runs no hosted tools.`,
    'tool_choice.type',
    'unsupported_tool_type',
  );
}

/** text.format as chat's response_format. */
function formatOf(
  format: NonNullable<NonNullable<ResponsesBody['text']>['format']>,
  limits: RequestLimits,
): ChatCompletionBody['response_format'] {
  if (format.type === 'text') return null;
  if (format.type === 'json_object') return { type: 'json_object' };
  if (format.schema === undefined || format.schema === null) missing('text.format.schema');
  checkSchema(format.schema, 'text.format.schema', limits);
  return { type: 'json_schema', json_schema: { name: format.name ?? 'response', schema: format.schema } };
}

/** Fields the Responses API has that this server can't honour: a 400 naming each. */
function refuseUnsupported(body: ResponsesBody): void {
  const refuse = (param: string, why: string): never => {
    throw invalidRequest(`'${param}' is not supported by this server: ${why}.`, param, 'unsupported_parameter');
  };
  if (body.background === true) refuse('background', 'responses are generated while the request waits');
  if (body.conversation !== undefined && body.conversation !== null)
    refuse('conversation', "there is no Conversations API; continue with 'previous_response_id'");
  if (body.prompt !== undefined && body.prompt !== null) refuse('prompt', 'there are no stored prompt templates');
  if (body.truncation === 'auto')
    refuse('truncation', "a conversation longer than a slot is refused, never cut (use 'disabled')");
  if ((body.top_logprobs ?? 0) > 0)
    refuse('top_logprobs', 'log probabilities are offered on /v1/chat/completions, not here');
  const include = body.include ?? [];
  const i = include.indexOf('message.output_text.logprobs');
  if (i >= 0)
    throw invalidRequest(
      `'include[${i}]': 'message.output_text.logprobs' is not supported here: log probabilities are offered on /v1/chat/completions.`,
      `include[${i}]`,
      'unsupported_parameter',
    );
  const verbosity = body.text?.verbosity;
  if (verbosity !== undefined && verbosity !== null && verbosity !== 'medium')
    refuse('text.verbosity', 'the model answers as its template has it (only "medium")');
}

/** The chat request for a Responses request continuing `prior` (a stored conversation, or none). */
export function translateRequest(
  body: ResponsesBody,
  prior: readonly ChatMessageBody[],
  limits: RequestLimits,
): TranslatedRequest {
  refuseUnsupported(body);
  if (body.input === undefined && prior.length === 0) missing('input');
  const conversation = messagesOf(body.input, prior);
  const messages: ChatMessageBody[] =
    typeof body.instructions === 'string' && body.instructions !== ''
      ? [{ role: 'system', content: body.instructions }, ...conversation]
      : conversation;
  if (messages.length === 0) missing('input', ': there is nothing to answer');
  const chat: ChatCompletionBody = { ...samplingOf(body), messages };
  let tools = toolsOf(body.tools ?? [], limits);
  if (body.tool_choice !== undefined && body.tool_choice !== null) {
    const picked = toolChoiceOf(body.tool_choice, tools);
    tools = picked.tools;
    if (picked.choice !== undefined) chat.tool_choice = picked.choice;
  }
  if (tools.length > 0) chat.tools = tools;
  const format = body.text?.format;
  if (format !== undefined && format !== null) {
    const responseFormat = formatOf(format, limits);
    if (responseFormat !== null && tools.length > 0 && chat.tool_choice !== 'none') {
      throw invalidRequest(
        "'tools' cannot be combined with a JSON 'text.format': the tool-call grammar is the constraint.",
        'text.format',
        'invalid_value',
      );
    }
    if (responseFormat !== null && responseFormat !== undefined) chat.response_format = responseFormat;
  }
  if (body.parallel_tool_calls !== undefined && body.parallel_tool_calls !== null)
    chat.parallel_tool_calls = body.parallel_tool_calls;
  const effort = body.reasoning?.effort;
  if (effort !== undefined && effort !== null) chat.reasoning_effort = effort;
  if (body.grammar !== undefined && body.grammar !== null) chat.grammar = body.grammar;
  if (body.chat_template_kwargs) chat.chat_template_kwargs = body.chat_template_kwargs;
  if (body.reasoning_format) chat.reasoning_format = body.reasoning_format;
  const budget = body.reasoning_budget_tokens ?? body.thinking_budget_tokens;
  if (budget !== undefined && budget !== null) chat.reasoning_budget_tokens = budget;
  const user = body.user ?? body.safety_identifier;
  if (user !== undefined && user !== null) chat.user = user;
  return { chat, conversation };
}
