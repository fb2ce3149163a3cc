// Server-sent events, as the WHATWG spec reads them, and the chat-completion chunks they carry.
// Pure: the caller feeds text as it arrives (lines may be split anywhere, CR, LF or CRLF endings,
// `:` comment lines for keep-alive pings) and gets whole events back.

export interface SseEvent {
  /** The `event:` field; 'message' when absent. */
  event: string;
  /** `data:` lines joined with '\n'. */
  data: string;
}

export class SseDecoder {
  #buffer = '';
  #data: string[] = [];
  #event = '';

  /** Feeds decoded text; returns the events it completed. */
  push(text: string): SseEvent[] {
    this.#buffer += text;
    const events: SseEvent[] = [];
    for (;;) {
      const cr = this.#buffer.indexOf('\r');
      const lf = this.#buffer.indexOf('\n');
      if (cr < 0 && lf < 0) break;
      let end: number;
      let next: number;
      if (cr >= 0 && (lf < 0 || cr < lf)) {
        // A CR as the last character may be the first half of a CRLF: wait for more text.
        if (cr === this.#buffer.length - 1) break;
        end = cr;
        next = this.#buffer[cr + 1] === '\n' ? cr + 2 : cr + 1;
      } else {
        end = lf;
        next = lf + 1;
      }
      const line = this.#buffer.slice(0, end);
      this.#buffer = this.#buffer.slice(next);
      const event = this.#line(line);
      if (event) events.push(event);
    }
    return events;
  }

  /**
   * The stream ended. The spec drops an event without its closing blank line; servers that omit the
   * last blank line still mean it, so a pending event is returned.
   */
  end(): SseEvent[] {
    const events: SseEvent[] = [];
    if (this.#buffer.length > 0) {
      const line = this.#buffer.endsWith('\r') ? this.#buffer.slice(0, -1) : this.#buffer;
      this.#buffer = '';
      const event = this.#line(line);
      if (event) events.push(event);
    }
    const last = this.#line('');
    if (last) events.push(last);
    return events;
  }

  #line(line: string): SseEvent | null {
    if (line === '') {
      if (this.#data.length === 0) {
        this.#event = '';
        return null;
      }
      const event = { event: this.#event || 'message', data: this.#data.join('\n') };
      this.#data = [];
      this.#event = '';
      return event;
    }
    if (line.startsWith(':')) return null; // comment (keep-alive ping)
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'data') this.#data.push(value);
    else if (field === 'event') this.#event = value;
    // id and retry mean nothing to a one-shot completion stream.
    return null;
  }
}

/** What one event of a streaming chat completion says. */
export type ChatStreamItem =
  | { kind: 'done' }
  | { kind: 'error'; message: string }
  | {
      kind: 'chunk';
      /** delta.content plus delta.reasoning_content of every choice; '' for role-only, finish and usage chunks. */
      content: string;
      finishReason: string | null;
      usage: { promptTokens: number | null; completionTokens: number | null } | null;
      /** llama-server's timings (its last chunk carries them; so does this server's, with more fields), numbers only. */
      timings: Record<string, number> | null;
    };

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function errorMessage(error: unknown): string {
  if (typeof error === 'string') return error;
  if (isRecord(error)) {
    const parts: string[] = [];
    if (typeof error.message === 'string') parts.push(error.message);
    if (typeof error.type === 'string') parts.push(`(${error.type})`);
    if (parts.length) return parts.join(' ');
  }
  return JSON.stringify(error);
}

function count(value: unknown): number | null {
  return typeof value === 'number' && Number.isFinite(value) && value >= 0 ? value : null;
}

/**
 * Reads one event of an OpenAI-style chat completion stream: ours, OpenAI's, or llama-server's (role-only
 * first chunk with content null, a finish chunk with an empty delta, usage and timings in the last chunk,
 * `data: [DONE]`). Errors after the stream started arrive as `data: {"error": {...}}` (OpenAI, llama-server)
 * or as an `event: error`.
 */
export function parseChatEvent(event: SseEvent): ChatStreamItem {
  const data = event.data.trim();
  if (data === '[DONE]') return { kind: 'done' };
  let json: unknown;
  try {
    json = JSON.parse(data);
  } catch {
    if (event.event === 'error') return { kind: 'error', message: data || 'error event without data' };
    return { kind: 'error', message: `malformed event data: ${data.slice(0, 200)}` };
  }
  if (isRecord(json) && json.error !== undefined && json.error !== null) {
    return { kind: 'error', message: errorMessage(json.error) };
  }
  if (event.event === 'error') return { kind: 'error', message: errorMessage(json) };
  if (!isRecord(json)) return { kind: 'error', message: `unexpected event data: ${data.slice(0, 200)}` };

  let content = '';
  let finishReason: string | null = null;
  if (Array.isArray(json.choices)) {
    for (const choice of json.choices) {
      if (!isRecord(choice)) continue;
      const delta = choice.delta;
      if (isRecord(delta)) {
        if (typeof delta.reasoning_content === 'string') content += delta.reasoning_content;
        if (typeof delta.content === 'string') content += delta.content;
      }
      if (typeof choice.finish_reason === 'string') finishReason = choice.finish_reason;
    }
  }
  const usage = isRecord(json.usage)
    ? { promptTokens: count(json.usage.prompt_tokens), completionTokens: count(json.usage.completion_tokens) }
    : null;
  let timings: Record<string, number> | null = null;
  if (isRecord(json.timings)) {
    timings = {};
    for (const [k, v] of Object.entries(json.timings)) if (typeof v === 'number' && Number.isFinite(v)) timings[k] = v;
  }
  return { kind: 'chunk', content, finishReason, usage, timings };
}
