// Anthropic's message object and its event stream, from the chat layer's parsed output: reasoning becomes a
// thinking block, content a text block, each tool call a tool_use block. Streamed: message_start, then each block
// opens (content_block_start), grows (content_block_delta: thinking_delta, text_delta, input_json_delta) and closes
// (content_block_stop) before the next opens; message_delta carries stop_reason and the usage, message_stop ends it.
import { type ChatDelta, type ChatOutputParser, finishedCalls } from '../chat/layer.ts';
import type { ApiError } from '../errors.ts';
import type { Finished, Presenter } from '../generation/types.ts';
import { anthropicError } from './errors.ts';
import type { AnswerBlock, MessageObject, MessagesUsage } from './schema.ts';

export interface MessagesHead {
  id: string;
  model: string;
  /** Prompt tokens, known before the run (message_start reports them). */
  promptTokens: number;
  /** The request's own stop sequences: a match ends with stop_reason 'stop_sequence'. */
  stopSequences: readonly string[];
  /** thinking.display 'omitted': thinking blocks are sent without their text. */
  omitThinking: boolean;
}

/** Anthropic's usage: input_tokens are those not read from the cache, cache_read_input_tokens the rest. */
function usageOf(done: Finished): MessagesUsage {
  const cached = done.usage.prompt_tokens_details.cached_tokens;
  return {
    input_tokens: done.usage.prompt_tokens - cached,
    output_tokens: done.usage.completion_tokens,
    cache_creation_input_tokens: 0,
    cache_read_input_tokens: cached,
  };
}

function parsedInput(args: string): unknown {
  try {
    return JSON.parse(args === '' ? '{}' : args);
  } catch {
    // Cut off mid-call by max_tokens: the stop_reason says so; the input is what could be read, nothing.
    return {};
  }
}

export function messagesPresenter(head: MessagesHead, parser: ChatOutputParser): Presenter<MessageObject> {
  const stopOf = (done: Finished, calledTools: boolean): Pick<MessageObject, 'stop_reason' | 'stop_sequence'> => {
    if (done.finish === 'length')
      return { stop_reason: done.truncated ? 'model_context_window_exceeded' : 'max_tokens', stop_sequence: null };
    if (calledTools) return { stop_reason: 'tool_use', stop_sequence: null };
    if (done.stopType === 'word' && head.stopSequences.includes(done.stoppingWord))
      return { stop_reason: 'stop_sequence', stop_sequence: done.stoppingWord };
    return { stop_reason: 'end_turn', stop_sequence: null };
  };
  const messageOf = (
    content: AnswerBlock[],
    stop: Pick<MessageObject, 'stop_reason' | 'stop_sequence'>,
    usage: MessagesUsage,
  ): MessageObject => ({
    id: head.id,
    type: 'message',
    role: 'assistant',
    model: head.model,
    content,
    ...stop,
    stop_details: null,
    container: null,
    usage,
  });
  const thinkingText = (text: string): string => (head.omitThinking ? '' : text);

  // The stream's state: the block being sent (its index and kind), whether a tool was called.
  let index = -1;
  let open: { kind: 'thinking' | 'text' } | { kind: 'tool_use'; toolIndex: number } | null = null;
  let calledTools = false;
  const stop = (): object[] => {
    if (open === null) return [];
    open = null;
    return [{ type: 'content_block_stop', index }];
  };
  const start = (block: AnswerBlock): object[] => {
    const events = stop();
    index++;
    events.push({ type: 'content_block_start', index, content_block: block });
    return events;
  };
  const delta = (d: object): object => ({ type: 'content_block_delta', index, delta: d });
  const eventsOf = (d: ChatDelta): object[] => {
    const events: object[] = [];
    if (d.reasoning !== undefined && d.reasoning !== '') {
      if (open?.kind !== 'thinking') {
        events.push(...start({ type: 'thinking', thinking: '', signature: '' }));
        open = { kind: 'thinking' };
      }
      if (!head.omitThinking) events.push(delta({ type: 'thinking_delta', thinking: d.reasoning }));
    }
    if (d.content !== undefined && d.content !== '') {
      if (open?.kind !== 'text') {
        events.push(...start({ type: 'text', text: '', citations: null }));
        open = { kind: 'text' };
      }
      events.push(delta({ type: 'text_delta', text: d.content }));
    }
    if (d.toolIndex !== undefined) {
      calledTools = true;
      if (open?.kind !== 'tool_use' || open.toolIndex !== d.toolIndex) {
        events.push(...start({ type: 'tool_use', id: d.toolId ?? '', name: d.toolName ?? '', input: {} }));
        open = { kind: 'tool_use', toolIndex: d.toolIndex };
      }
      if (d.toolArguments !== undefined && d.toolArguments !== '')
        events.push(delta({ type: 'input_json_delta', partial_json: d.toolArguments }));
    }
    return events;
  };

  return {
    namedEvents: true,
    doneEvent: false,
    open: () => [
      {
        type: 'message_start',
        message: messageOf(
          [],
          { stop_reason: null, stop_sequence: null },
          {
            input_tokens: head.promptTokens,
            output_tokens: 0,
            cache_creation_input_tokens: 0,
            cache_read_input_tokens: 0,
          },
        ),
      },
    ],
    text: (text) => parser.push(text).flatMap(eventsOf),
    finish: (done) => {
      const events = parser.push('', true).flatMap(eventsOf);
      events.push(...stop());
      // The whole usage again: the cache's share is known only now (message_start counted all as input).
      events.push(
        { type: 'message_delta', delta: { ...stopOf(done, calledTools), stop_details: null }, usage: usageOf(done) },
        { type: 'message_stop' },
      );
      return events;
    },
    completion: (text, done) => {
      parser.push(text, true);
      const m = parser.message();
      const calls = finishedCalls(m, done.finish);
      const content: AnswerBlock[] = [];
      if (m.reasoning !== '') content.push({ type: 'thinking', thinking: thinkingText(m.reasoning), signature: '' });
      if (m.content !== '') content.push({ type: 'text', text: m.content, citations: null });
      for (const c of calls)
        content.push({ type: 'tool_use', id: c.id, name: c.name, input: parsedInput(c.arguments) });
      return messageOf(content, stopOf(done, calls.length > 0), usageOf(done));
    },
    failure: (error: ApiError) => [anthropicError(error)],
  };
}
