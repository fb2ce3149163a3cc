// Stored responses (`store`, default true as OpenAI's): in memory, bounded in bytes, least recently used dropped
// first (lru-cache), gone when the server restarts. Each entry keeps the response object (GET /v1/responses/{id})
// and the whole conversation up to and including it, as chat messages, for `previous_response_id` to continue.
import { LRUCache } from 'lru-cache';
import type { ChatMessageBody } from '../schemas.ts';
import type { OutputItem, ResponseObject } from './schema.ts';

export interface StoredResponse {
  response: ResponseObject;
  /** The conversation it continues, its input and its own output (instructions excluded: they don't carry over). */
  conversation: ChatMessageBody[];
}

export class ResponseStore {
  readonly #cache: LRUCache<string, StoredResponse> | null;
  readonly maxBytes: number;

  /** `maxBytes` (of JSON) 0: nothing is stored. */
  constructor(maxBytes: number) {
    this.maxBytes = maxBytes;
    this.#cache =
      maxBytes > 0
        ? new LRUCache({ maxSize: maxBytes, sizeCalculation: (entry) => Math.max(1, JSON.stringify(entry).length) })
        : null;
  }

  /** Stores the response (an entry larger than the whole store is not kept). */
  put(entry: StoredResponse): void {
    this.#cache?.set(entry.response.id, entry);
  }

  get(id: string): StoredResponse | undefined {
    return this.#cache?.get(id);
  }

  delete(id: string): boolean {
    return this.#cache?.delete(id) ?? false;
  }

  get size(): number {
    return this.#cache?.size ?? 0;
  }
}

/** A response's output as the assistant turn of a chat conversation. */
export function assistantTurn(output: readonly OutputItem[]): ChatMessageBody {
  const turn: ChatMessageBody = { role: 'assistant', content: null };
  let content = '';
  let reasoning = '';
  for (const item of output) {
    const parts = item.content ?? [];
    if (item.type === 'message') content += parts.map((p) => p.text ?? '').join('');
    else if (item.type === 'reasoning') reasoning += parts.map((p) => p.text ?? '').join('');
    else if (item.type === 'function_call') {
      turn.tool_calls = [
        ...(turn.tool_calls ?? []),
        {
          id: String(item.call_id),
          type: 'function',
          function: { name: String(item.name), arguments: String(item.arguments) },
        },
      ];
    }
  }
  if (content !== '' || turn.tool_calls === undefined) turn.content = content;
  if (reasoning !== '') turn.reasoning_content = reasoning;
  return turn;
}
