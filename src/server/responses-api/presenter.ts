// The Responses API's response object and its event stream, from the chat layer's parsed output: reasoning becomes a
// reasoning item, content a message item, each tool call a function_call item. Streamed, each item opens
// (response.output_item.added), grows by deltas and closes (...done, response.output_item.done) before the next
// opens, between response.created and response.completed (or response.incomplete at the token limit); every event
// carries a sequence_number. The final object in the last event is the one the stream built.
import type { ChatDelta, ChatOutputParser } from '../chat/layer.ts';
import type { ApiError } from '../errors.ts';
import { newObjectId, nowSeconds } from '../generation/ids.ts';
import type { Finished, Presenter } from '../generation/types.ts';
import type { ServedModel } from '../options.ts';
import type { OutputItem, ResponseObject, ResponsesUsage } from './schema.ts';

export interface ResponsesHead {
  id: string;
  createdAt: number;
  model: string;
  /** The request's settings as the response object echoes them (instructions, tools, text, reasoning...). */
  settings: Record<string, unknown>;
  /** The finished response (completed or incomplete), streamed or not: where it is stored. */
  onFinal?(response: ResponseObject): void;
}

type Status = 'completed' | 'incomplete' | 'in_progress';
type Item = OutputItem;

export function reasoningItem(id: string, text: string, status: Status): Item {
  return { type: 'reasoning', id, summary: [], content: [{ type: 'reasoning_text', text }], status };
}

export function messageItem(id: string, text: string, status: Status): Item {
  return {
    type: 'message',
    id,
    status,
    role: 'assistant',
    content: [{ type: 'output_text', text, annotations: [], logprobs: [] }],
  };
}

export function callItem(id: string, callId: string, name: string, args: string, status: Status): Item {
  return { type: 'function_call', id, call_id: callId, name, arguments: args, status };
}

/** The item being streamed. */
type OpenItem =
  | { kind: 'reasoning' | 'message'; index: number; id: string; text: string }
  | { kind: 'call'; index: number; id: string; callId: string; name: string; args: string; toolIndex: number };

export function responsesPresenter(
  head: ResponsesHead,
  parser: ChatOutputParser,
  model: ServedModel,
): Presenter<ResponseObject> {
  const usageOf = (done: Finished, reasoning: string): ResponsesUsage => {
    const u = done.usage;
    // The reasoning's share of the output, counted by tokenizing it (the decoder counts tokens, not their kind).
    const reasoningTokens =
      reasoning === '' ? 0 : model.tokenize(reasoning, { addSpecial: false, parseSpecial: false }).length;
    return {
      input_tokens: u.prompt_tokens,
      input_tokens_details: { cached_tokens: u.prompt_tokens_details.cached_tokens },
      output_tokens: u.completion_tokens,
      output_tokens_details: { reasoning_tokens: Math.min(reasoningTokens, u.completion_tokens) },
      total_tokens: u.total_tokens,
    };
  };
  const responseOf = (
    status: ResponseObject['status'],
    output: Item[],
    usage: ResponsesUsage | null,
    error: ResponseObject['error'] = null,
  ): ResponseObject => ({
    id: head.id,
    object: 'response',
    created_at: head.createdAt,
    completed_at: status === 'in_progress' ? null : nowSeconds(),
    status,
    error,
    incomplete_details: status === 'incomplete' ? { reason: 'max_output_tokens' } : null,
    model: head.model,
    ...head.settings,
    output,
    usage,
  });
  const final = (done: Finished, output: Item[], reasoning: string): ResponseObject => {
    const response = responseOf(
      done.finish === 'length' ? 'incomplete' : 'completed',
      output,
      usageOf(done, reasoning),
    );
    head.onFinal?.(response);
    return response;
  };

  // The stream's state: finished items, the open one, the reasoning text (for usage), the event counter.
  const output: Item[] = [];
  let open: OpenItem | null = null;
  let reasoning = '';
  let sequence = 0;
  const event = (type: string, fields: Record<string, unknown>): object => ({
    type,
    sequence_number: sequence++,
    ...fields,
  });

  const close = (status: Status): object[] => {
    const item = open;
    if (item === null) return [];
    open = null;
    const at = { item_id: item.id, output_index: item.index };
    let done: Item;
    const events: object[] = [];
    if (item.kind === 'call') {
      done = callItem(item.id, item.callId, item.name, item.args, status);
      events.push(event('response.function_call_arguments.done', { ...at, name: item.name, arguments: item.args }));
    } else {
      const reasoningPart = item.kind === 'reasoning';
      done = reasoningPart ? reasoningItem(item.id, item.text, status) : messageItem(item.id, item.text, status);
      const part = done.content?.[0];
      events.push(
        event(reasoningPart ? 'response.reasoning_text.done' : 'response.output_text.done', {
          ...at,
          content_index: 0,
          text: item.text,
          ...(reasoningPart ? {} : { logprobs: [] }),
        }),
        event('response.content_part.done', { ...at, content_index: 0, part }),
      );
    }
    output.push(done);
    events.push(event('response.output_item.done', { output_index: item.index, item: done }));
    return events;
  };

  const openText = (kind: 'reasoning' | 'message'): object[] => {
    const events = close('completed');
    const item: OpenItem = {
      kind,
      index: output.length,
      id: newObjectId(kind === 'reasoning' ? 'rs' : 'msg'),
      text: '',
    };
    open = item;
    const added =
      kind === 'reasoning' ? reasoningItem(item.id, '', 'in_progress') : messageItem(item.id, '', 'in_progress');
    const emptyPart = added.content?.[0];
    events.push(
      event('response.output_item.added', { output_index: item.index, item: { ...added, content: [] } }),
      event('response.content_part.added', {
        item_id: item.id,
        output_index: item.index,
        content_index: 0,
        part: emptyPart,
      }),
    );
    return events;
  };

  const eventsOf = (d: ChatDelta): object[] => {
    const events: object[] = [];
    if (d.reasoning !== undefined && d.reasoning !== '') {
      if (open?.kind !== 'reasoning') events.push(...openText('reasoning'));
      const item = open as OpenItem & { kind: 'reasoning' };
      item.text += d.reasoning;
      reasoning += d.reasoning;
      events.push(
        event('response.reasoning_text.delta', {
          item_id: item.id,
          output_index: item.index,
          content_index: 0,
          delta: d.reasoning,
        }),
      );
    }
    if (d.content !== undefined && d.content !== '') {
      if (open?.kind !== 'message') events.push(...openText('message'));
      const item = open as OpenItem & { kind: 'message' };
      item.text += d.content;
      events.push(
        event('response.output_text.delta', {
          item_id: item.id,
          output_index: item.index,
          content_index: 0,
          delta: d.content,
          logprobs: [],
        }),
      );
    }
    if (d.toolIndex !== undefined) {
      if (open?.kind !== 'call' || open.toolIndex !== d.toolIndex) {
        events.push(...close('completed'));
        const item: OpenItem = {
          kind: 'call',
          index: output.length,
          id: newObjectId('fc'),
          callId: d.toolId ?? newObjectId('call'),
          name: d.toolName ?? '',
          args: '',
          toolIndex: d.toolIndex,
        };
        open = item;
        events.push(
          event('response.output_item.added', {
            output_index: item.index,
            item: callItem(item.id, item.callId, item.name, '', 'in_progress'),
          }),
        );
      }
      const item = open as OpenItem & { kind: 'call' };
      if (d.toolArguments !== undefined && d.toolArguments !== '') {
        item.args += d.toolArguments;
        events.push(
          event('response.function_call_arguments.delta', {
            item_id: item.id,
            output_index: item.index,
            delta: d.toolArguments,
          }),
        );
      }
    }
    return events;
  };

  return {
    namedEvents: true,
    doneEvent: false,
    open: () => {
      const started = responseOf('in_progress', [], null);
      return [event('response.created', { response: started }), event('response.in_progress', { response: started })];
    },
    text: (text) => parser.push(text).flatMap(eventsOf),
    finish: (done) => {
      const events = parser.push('', true).flatMap(eventsOf);
      events.push(...close(done.finish === 'length' ? 'incomplete' : 'completed'));
      if (output.length === 0) {
        // Nothing was generated: the answer is still a message, empty.
        events.push(...openText('message'), ...close(done.finish === 'length' ? 'incomplete' : 'completed'));
      }
      const response = final(done, [...output], reasoning);
      events.push(event(`response.${response.status}`, { response }));
      return events;
    },
    completion: (text, done) => {
      parser.push(text, true);
      const m = parser.message();
      const items: Item[] = [];
      if (m.reasoning !== '') items.push(reasoningItem(newObjectId('rs'), m.reasoning, 'completed'));
      if (m.content !== '' || (m.toolCalls.length === 0 && items.length === 0))
        items.push(messageItem(newObjectId('msg'), m.content, 'completed'));
      for (const c of m.toolCalls) items.push(callItem(newObjectId('fc'), c.id, c.name, c.arguments, 'completed'));
      const last = items.at(-1);
      if (done.finish === 'length' && last !== undefined) last.status = 'incomplete';
      return final(done, items, m.reasoning);
    },
    failure: (error: ApiError) => {
      const failed = { code: error.code ?? error.type, message: error.message };
      return [
        event('error', { code: failed.code, message: error.message, param: error.param }),
        event('response.failed', { response: responseOf('failed', [...output], null, failed) }),
      ];
    },
  };
}
