// An Anthropic Messages request -> the chat request the chat path renders: system the system message, text blocks
// the messages' text, tool_use blocks the assistant's tool calls, each tool_result block a tool message, thinking
// blocks the assistant's reasoning; tools, tool_choice, thinking and output_config.format their chat equivalents.
// What can't be honoured (images, documents, server tools, MCP servers) is a 400 naming the field.

import { checkSchema, checkToolList } from '../chat/request.ts';
import { invalidRequest } from '../errors.ts';
import type { RequestLimits } from '../limits.ts';
import type { ChatCompletionBody, ChatMessageBody, ToolBody } from '../schemas.ts';
import { samplingOf } from '../schemas.ts';
import type { ContentBlock, CountTokensBody, MessageParam, MessagesTool } from './schema.ts';

const TEXT_ONLY = 'this server serves a text-only model (no images or documents)';

function missing(param: string): never {
  throw invalidRequest(`Missing required parameter: '${param}'.`, param, 'missing_required_parameter');
}

function unsupportedBlock(type: string, param: string, why: string): never {
  throw invalidRequest(
    `Content block type '${type}' in ${param} is not supported: ${why}.`,
    `${param}.type`,
    'invalid_value',
  );
}

function textOf(block: ContentBlock, param: string): string {
  if (typeof block.text !== 'string') missing(`${param}.text`);
  return block.text;
}

/**
 * Claude Code's first system block is a billing header whose `cch=` stamp changes on every request; left as is,
 * no prompt could ever reuse a cached prefix past it. The stamp is masked as llama-server masks it.
 */
export function maskBillingStamp(text: string): string {
  if (!text.startsWith('x-anthropic-billing-header:')) return text;
  return text.replace(/(cch=)[0-9a-f]{5};/, '$1fffff;');
}

function systemOf(system: NonNullable<CountTokensBody['system']>): string {
  if (typeof system === 'string') return maskBillingStamp(system);
  return system
    .map((block, i) => {
      if (block.type !== 'text') unsupportedBlock(block.type, `system[${i}]`, "a system prompt is 'text' blocks");
      return maskBillingStamp(textOf(block, `system[${i}]`));
    })
    .join('\n\n');
}

/** A tool_result's content as text (tool results with images are refused). */
function resultOf(block: ContentBlock, param: string): string {
  const content = block.content ?? '';
  const text =
    typeof content === 'string'
      ? content
      : content
          .map((part, k) => {
            if (part.type !== 'text') unsupportedBlock(part.type, `${param}.content[${k}]`, TEXT_ONLY);
            const t = (part as { text?: unknown }).text;
            if (typeof t !== 'string') missing(`${param}.content[${k}].text`);
            return t;
          })
          .join('');
  // The chat layer has no error flag on a tool message: the text says it, so the model reads it as a failure.
  return block.is_error === true ? `Error: ${text}` : text;
}

function userTurn(m: MessageParam, i: number, out: ChatMessageBody[]): void {
  if (typeof m.content === 'string') {
    out.push({ role: 'user', content: m.content });
    return;
  }
  let text: string[] = [];
  const flush = (): void => {
    if (text.length > 0) out.push({ role: 'user', content: text.join('\n') });
    text = [];
  };
  m.content.forEach((block, j) => {
    const at = `messages[${i}].content[${j}]`;
    if (block.type === 'text') text.push(textOf(block, at));
    else if (block.type === 'tool_result') {
      if (typeof block.tool_use_id !== 'string') missing(`${at}.tool_use_id`);
      flush();
      out.push({ role: 'tool', tool_call_id: block.tool_use_id, content: resultOf(block, at) });
    } else if (block.type === 'image' || block.type === 'document') unsupportedBlock(block.type, at, TEXT_ONLY);
    else unsupportedBlock(block.type, at, "a user turn is 'text' and 'tool_result' blocks");
  });
  flush();
}

function assistantTurn(m: MessageParam, i: number, out: ChatMessageBody[]): void {
  if (typeof m.content === 'string') {
    out.push({ role: 'assistant', content: m.content });
    return;
  }
  let content = '';
  let reasoning = '';
  const calls: NonNullable<ChatMessageBody['tool_calls']> = [];
  m.content.forEach((block, j) => {
    const at = `messages[${i}].content[${j}]`;
    switch (block.type) {
      case 'text':
        content += textOf(block, at);
        return;
      case 'thinking':
        if (typeof block.thinking !== 'string') missing(`${at}.thinking`);
        reasoning += block.thinking;
        return;
      case 'redacted_thinking':
        // Another model's encrypted thinking: unreadable here, and earlier turns' thinking is context only.
        return;
      case 'tool_use': {
        if (typeof block.id !== 'string') missing(`${at}.id`);
        if (typeof block.name !== 'string') missing(`${at}.name`);
        const input = block.input ?? {};
        if (typeof input !== 'object' || input === null || Array.isArray(input)) {
          throw invalidRequest(`Invalid value for '${at}.input': must be an object.`, `${at}.input`, 'invalid_value');
        }
        calls.push({
          id: block.id,
          type: 'function',
          function: { name: block.name, arguments: JSON.stringify(input) },
        });
        return;
      }
      default:
        unsupportedBlock(block.type, at, "an assistant turn is 'text', 'thinking' and 'tool_use' blocks");
    }
  });
  const turn: ChatMessageBody = { role: 'assistant', content: content === '' && calls.length > 0 ? null : content };
  if (calls.length > 0) turn.tool_calls = calls;
  if (reasoning !== '') turn.reasoning_content = reasoning;
  out.push(turn);
}

function toolsOf(tools: readonly MessagesTool[], limits: RequestLimits): ToolBody[] {
  tools.forEach((tool, i) => {
    if (tool.type !== undefined && tool.type !== null && tool.type !== 'custom') {
      throw invalidRequest(
        `Tool type '${tool.type}' in tools[${i}] is not supported: this server runs no server tools and defines no built-in ones; give custom tools with an 'input_schema'.`,
        `tools[${i}].type`,
        'invalid_value',
      );
    }
  });
  checkToolList(
    tools.map((t) => ({ name: t.name, parameters: t.input_schema })),
    (i, field) => `tools[${i}].${field === 'parameters' ? 'input_schema' : 'name'}`,
    limits,
  );
  return tools.map((t) => ({
    type: 'function',
    function: {
      name: t.name,
      ...(t.description ? { description: t.description } : {}),
      ...(t.input_schema ? { parameters: t.input_schema } : {}),
    },
  }));
}

function refuse(param: string, why: string): never {
  throw invalidRequest(`'${param}' is not supported by this server: ${why}.`, param, 'invalid_value');
}

/**
 * The chat request for a Messages (or count_tokens) request. `supportsThinking`: the template has a thinking
 * mode, which `thinking: {type: 'enabled'}` needs.
 */
export function translateRequest(
  body: CountTokensBody,
  supportsThinking: boolean,
  limits: RequestLimits,
): ChatCompletionBody {
  if ((body.mcp_servers ?? []).length > 0) refuse('mcp_servers', 'the client runs its own tools');
  if (body.container !== undefined && body.container !== null) refuse('container', 'there is no code execution');
  const messages: ChatMessageBody[] = [];
  if (body.system !== undefined && body.system !== null) {
    const system = systemOf(body.system);
    if (system !== '') messages.push({ role: 'system', content: system });
  }
  body.messages.forEach((m, i) => {
    if (m.role === 'user') userTurn(m, i, messages);
    else assistantTurn(m, i, messages);
  });
  const chat: ChatCompletionBody = { ...samplingOf(body), messages };
  const tools = toolsOf(body.tools ?? [], limits);
  if (tools.length > 0) chat.tools = tools;
  const choice = body.tool_choice;
  if (choice !== undefined && choice !== null) {
    if (choice.type === 'tool') {
      if (typeof choice.name !== 'string') missing('tool_choice.name');
      if (!tools.some((t) => t.function.name === choice.name)) {
        throw invalidRequest(
          `'tool_choice' names the tool '${choice.name}', which is not in 'tools'.`,
          'tool_choice.name',
          'invalid_value',
        );
      }
      chat.tool_choice = { type: 'function', function: { name: choice.name } };
    } else chat.tool_choice = choice.type === 'any' ? 'required' : choice.type;
    if (choice.disable_parallel_tool_use === true) chat.parallel_tool_calls = false;
  }
  const format = body.output_config?.format;
  if (format !== undefined && format !== null) {
    checkSchema(format.schema, 'output_config.format.schema', limits);
    if (tools.length > 0 && chat.tool_choice !== 'none') {
      throw invalidRequest(
        "'tools' cannot be combined with 'output_config.format': the tool-call grammar is the constraint.",
        'output_config.format',
        'invalid_value',
      );
    }
    chat.response_format = { type: 'json_schema', json_schema: { name: 'output', schema: format.schema } };
  }
  const effort = body.output_config?.effort;
  if (effort !== undefined && effort !== null) chat.reasoning_effort = effort;
  const kwargs: Record<string, unknown> = { ...(body.chat_template_kwargs ?? {}) };
  const thinking = body.thinking;
  if (thinking !== undefined && thinking !== null) {
    if (thinking.type === 'enabled') {
      if (!supportsThinking) refuse('thinking', "the model's chat template has no thinking mode");
      const budget = thinking.budget_tokens;
      if (budget === undefined || budget === null) missing('thinking.budget_tokens');
      // Anthropic's own bounds, so a request that works here works there.
      if (budget < 1024 || (body.max_tokens !== undefined && body.max_tokens !== null && budget >= body.max_tokens)) {
        throw invalidRequest(
          "'thinking.budget_tokens' must be at least 1024 and less than 'max_tokens'.",
          'thinking.budget_tokens',
          'invalid_value',
        );
      }
      kwargs.enable_thinking = true;
      // As llama-server: Anthropic's thinking budget is the reasoning budget (unless the body gives its own).
      chat.reasoning_budget_tokens = budget;
    } else if (thinking.type === 'disabled') kwargs.enable_thinking = false;
    else if (supportsThinking) kwargs.enable_thinking = true;
  }
  if (Object.keys(kwargs).length > 0) chat.chat_template_kwargs = kwargs;
  const ownBudget = body.reasoning_budget_tokens ?? body.thinking_budget_tokens;
  if (ownBudget !== undefined && ownBudget !== null) chat.reasoning_budget_tokens = ownBudget;
  if (body.stop_sequences !== undefined && body.stop_sequences !== null) chat.stop = body.stop_sequences;
  if (body.grammar !== undefined && body.grammar !== null) chat.grammar = body.grammar;
  const user = body.metadata?.user_id;
  if (user !== undefined && user !== null) chat.user = user;
  return chat;
}
