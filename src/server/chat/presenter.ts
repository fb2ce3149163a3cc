// OpenAI's chat.completion and chat.completion.chunk objects, from the output parser's view of the text: content,
// reasoning_content and tool calls (id and name once, then arguments in pieces, as OpenAI streams them); with
// llama-server's additions (timings, __verbose) where it sends them.

import { chatLogprobs } from '../generation/logprobs.ts';
import type { Finished, FinishReason, GeneratedToken, Presenter, PromptProgress } from '../generation/types.ts';
import type { ServedModel } from '../options.ts';
import type { ChatCompletionResponse } from '../responses.ts';
import { type ChatDelta, type ChatOutputParser, finishedCalls } from './layer.ts';

export interface ChatHead {
  id: string;
  created: number;
  model: string;
  systemFingerprint: string;
  /** With include_usage, OpenAI puts `usage: null` on every chunk but the last. */
  includeUsage: boolean;
  /** The choice this presenter speaks for (n > 1). */
  index: number;
  /** OpenAI logprobs: the number of alternatives per token, or null when not asked for. */
  topLogprobs: number | null;
  /** llama-server's __verbose: what the request rendered to. */
  verbose: Record<string, unknown> | null;
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

/** A model that called tools stopped to let the client run them; cut off by length, it says so. */
function finishFor(finish: FinishReason, toolCalls: boolean): FinishReason {
  return toolCalls && finish === 'stop' ? 'tool_calls' : finish;
}

export function chatPresenter(
  head: ChatHead,
  parser: ChatOutputParser,
  model: ServedModel,
): Presenter<ChatCompletionResponse> {
  const base = {
    id: head.id,
    object: 'chat.completion.chunk',
    created: head.created,
    model: head.model,
    system_fingerprint: head.systemFingerprint,
  };
  const usageNull = head.includeUsage ? { usage: null } : {};
  let calledTools = false;
  let first = true;
  const logprobsOf = (tokens: readonly GeneratedToken[]): { content: unknown[] } | null =>
    head.topLogprobs === null ? null : chatLogprobs(model, tokens, head.topLogprobs);
  const chunk = (delta: object, finish: FinishReason | null, logprobs: object | null = null): object => {
    const out: Record<string, unknown> = {
      ...base,
      choices: [{ index: head.index, delta, logprobs, finish_reason: finish }],
      ...usageNull,
    };
    if (first && head.verbose !== null) out.__verbose = head.verbose;
    first = false;
    return out;
  };
  return {
    open: () => [chunk({ role: 'assistant', content: null }, null)],
    text: (text, tokens) => {
      const deltas = parser.push(text);
      const chunks = deltas.map((d, i) => {
        if (d.toolIndex !== undefined) calledTools = true;
        // The logprobs of these tokens go with the first delta they produced.
        return chunk(deltaOf(d), null, i === 0 ? logprobsOf(tokens) : null);
      });
      if (chunks.length === 0 && head.topLogprobs !== null && tokens.length > 0) {
        // The parser holds the text back (a tool-call marker, say); the probabilities still go out.
        chunks.push(chunk({}, null, logprobsOf(tokens)));
      }
      return chunks;
    },
    finish: (done: Finished, includeUsage: boolean) => {
      const rest = parser.push('', true).map((d) => {
        if (d.toolIndex !== undefined) calledTools = true;
        return chunk(deltaOf(d), null);
      });
      const last: Record<string, unknown> = chunk({}, finishFor(done.finish, calledTools)) as Record<string, unknown>;
      const chunks: object[] = [...rest, last];
      if (includeUsage) {
        chunks.push({ ...base, choices: [], usage: done.usage, timings: done.timings });
      } else last.timings = done.timings;
      return chunks;
    },
    progress: (p: PromptProgress) => ({ ...base, choices: [], prompt_progress: p }),
    completion: (text, done) => {
      parser.push(text, true);
      const m = parser.message();
      const toolCalls = finishedCalls(m, done.finish).map((c) => ({
        id: c.id,
        type: 'function' as const,
        function: { name: c.name, arguments: c.arguments },
      }));
      const message: ChatCompletionResponse['choices'][number]['message'] = {
        role: 'assistant',
        content: m.content === '' && toolCalls.length > 0 ? null : m.content,
      };
      if (m.reasoning !== '') message.reasoning_content = m.reasoning;
      if (toolCalls.length > 0) message.tool_calls = toolCalls;
      const out: ChatCompletionResponse = {
        ...base,
        object: 'chat.completion',
        choices: [
          {
            index: head.index,
            message,
            logprobs: logprobsOf(done.tokens),
            finish_reason: finishFor(done.finish, toolCalls.length > 0),
          },
        ],
        usage: done.usage,
        timings: done.timings,
      };
      if (head.verbose !== null) out.__verbose = { ...head.verbose, content: text, stop_type: done.stopType };
      return out;
    },
  };
}
