// OpenAI's chat.completion and chat.completion.chunk objects, from the output parser's view of the text: content,
// reasoning_content and tool calls (id and name once, then arguments in pieces, as OpenAI streams them).
import type { FinishReason, Presenter, Usage } from '../generation/types.ts';
import type { ChatDelta, ChatOutputParser } from './layer.ts';

export interface ChatHead {
  id: string;
  created: number;
  model: string;
  systemFingerprint: string;
  /** With include_usage, OpenAI puts `usage: null` on every chunk but the last. */
  includeUsage: boolean;
}

type ToolCallDelta = {
  index: number;
  id?: string;
  type?: 'function';
  function?: { name?: string; arguments?: string };
};

/** One OpenAI delta per parser delta. */
export function deltaOf(d: ChatDelta): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  if (d.reasoning !== undefined) out.reasoning_content = d.reasoning;
  if (d.content !== undefined) out.content = d.content;
  if (d.toolIndex !== undefined) {
    const call: ToolCallDelta = { index: d.toolIndex };
    if (d.toolId !== undefined) {
      call.id = d.toolId;
      call.type = 'function';
    }
    if (d.toolName !== undefined || d.toolArguments !== undefined) {
      call.function = {};
      if (d.toolName !== undefined) {
        call.function.name = d.toolName;
        // The first delta of a call carries its arguments field too, as OpenAI's does.
        call.function.arguments = d.toolArguments ?? '';
      } else if (d.toolArguments !== undefined) call.function.arguments = d.toolArguments;
    }
    out.tool_calls = [call];
  }
  return out;
}

export function chatPresenter(head: ChatHead, parser: ChatOutputParser): Presenter {
  const base = {
    id: head.id,
    object: 'chat.completion.chunk',
    created: head.created,
    model: head.model,
    system_fingerprint: head.systemFingerprint,
  };
  const usageNull = head.includeUsage ? { usage: null } : {};
  let calledTools = false;
  const chunk = (delta: object, finish: FinishReason | null): object => ({
    ...base,
    choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }],
    ...usageNull,
  });
  const chunks = (deltas: ChatDelta[]): object[] =>
    deltas.map((d) => {
      if (d.toolIndex !== undefined) calledTools = true;
      return chunk(deltaOf(d), null);
    });
  // A model that called tools stopped to let the client run them; cut off by length, it says so.
  const finishFor = (finish: FinishReason, toolCalls: boolean): FinishReason =>
    toolCalls && finish === 'stop' ? 'tool_calls' : finish;
  return {
    open: () => [chunk({ role: 'assistant', content: '' }, null)],
    text: (text) => chunks(parser.push(text)),
    finish: (finish) => {
      const rest = chunks(parser.push('', true));
      return [...rest, chunk({}, finishFor(finish, calledTools))];
    },
    usageChunk: (usage: Usage) => ({ ...base, choices: [], usage }),
    completion: (text, finish, usage) => {
      parser.push(text, true);
      const m = parser.message();
      const toolCalls = m.toolCalls.map((c) => ({
        id: c.id,
        type: 'function' as const,
        function: { name: c.name, arguments: c.arguments },
      }));
      const message: Record<string, unknown> = {
        role: 'assistant',
        content: m.content === '' && toolCalls.length > 0 ? null : m.content,
      };
      if (m.reasoning !== '') message.reasoning_content = m.reasoning;
      if (toolCalls.length > 0) message.tool_calls = toolCalls;
      return {
        ...base,
        object: 'chat.completion',
        choices: [{ index: 0, message, logprobs: null, finish_reason: finishFor(finish, toolCalls.length > 0) }],
        usage,
      };
    },
  };
}
