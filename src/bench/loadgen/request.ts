// One streaming chat completion, timed: send, each content chunk, end. Never throws: every failure
// becomes a record with its kind (HTTP status, network, timeout, in-stream error).
import { parseChatEvent, SseDecoder } from './sse.ts';
import { type ErrorKind, epochNow, type RequestRecord } from './types.ts';

export interface ChatRequest {
  id: number;
  rank: number;
  /** Base URL (no /v1). */
  url: string;
  apiKey: string | null;
  model: string | null;
  /** Messages before the user's prompt: a system prompt, earlier turns of the conversation. */
  history?: readonly ChatTurn[];
  prompt: string;
  maxTokens: number;
  timeoutMs: number;
  /** Keep the reply's text in the record (a multi-turn rank sends it back with its next turn). */
  keepReply?: boolean;
}

export interface ChatTurn {
  role: 'system' | 'user' | 'assistant';
  content: string;
}

export function chatCompletionBody(
  r: Pick<ChatRequest, 'model' | 'prompt' | 'maxTokens' | 'history'>,
): Record<string, unknown> {
  return {
    ...(r.model === null ? {} : { model: r.model }),
    messages: [...(r.history ?? []), { role: 'user', content: r.prompt }],
    stream: true,
    stream_options: { include_usage: true },
    max_tokens: r.maxTokens,
    temperature: 0,
  };
}

export function authHeaders(apiKey: string | null): Record<string, string> {
  return apiKey === null ? {} : { authorization: `Bearer ${apiKey}` };
}

/** `fetch failed` says nothing; its cause (ECONNREFUSED 127.0.0.1:8090, other side closed) does. */
export function describeNetworkError(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const cause = err.cause;
  if (cause instanceof Error) {
    const code = (cause as NodeJS.ErrnoException).code;
    const inner = code && !cause.message.includes(code) ? `${code} ${cause.message}` : cause.message;
    return `${err.message}: ${inner}`;
  }
  return err.message;
}

/** The message of an OpenAI error body, else the start of the body text. */
export function httpErrorMessage(status: number, body: string): string {
  let message = body.trim().slice(0, 300);
  try {
    const json = JSON.parse(body) as { error?: { message?: unknown } | string; message?: unknown };
    if (typeof json.error === 'string') message = json.error;
    else if (typeof json.error?.message === 'string') message = json.error.message;
    else if (typeof json.message === 'string') message = json.message;
  } catch {
    // not JSON: keep the text
  }
  return `HTTP ${status}${message ? `: ${message}` : ''}`;
}

/**
 * Reads what follows [DONE] (normally only the end of the chunked body) so the connection goes back to
 * the pool for the rank's next request; a server that keeps the stream open gets its connection closed
 * after `graceMs`. Times already recorded are not affected.
 */
async function drain(reader: ReadableStreamDefaultReader<Uint8Array>, graceMs: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<'expired'>((resolve) => {
    timer = setTimeout(() => resolve('expired'), graceMs);
  });
  try {
    for (;;) {
      const result = await Promise.race([reader.read(), expired]);
      if (result === 'expired') {
        await reader.cancel();
        return;
      }
      if (result.done) return;
    }
  } catch {
    // the response is complete as far as the record goes
  } finally {
    clearTimeout(timer);
  }
}

export async function sendChatRequest(r: ChatRequest, now: () => number = epochNow): Promise<RequestRecord> {
  const record: RequestRecord = {
    id: r.id,
    rank: r.rank,
    sendMs: now(),
    chunkMs: [],
    endMs: 0,
    status: null,
    ok: false,
    errorKind: null,
    error: null,
    promptTokens: null,
    outputTokens: 0,
    outputTokensFrom: 'chunks',
    finishReason: null,
  };
  const fail = (kind: ErrorKind, message: string): RequestRecord => {
    record.endMs = now();
    record.errorKind = kind;
    record.error = message;
    return record;
  };
  const signal = AbortSignal.timeout(r.timeoutMs);
  const timedOut = (): boolean => signal.aborted;

  let response: Response;
  try {
    response = await fetch(`${r.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'text/event-stream', ...authHeaders(r.apiKey) },
      body: JSON.stringify(chatCompletionBody(r)),
      signal,
    });
  } catch (err) {
    if (timedOut()) return fail('timeout', `no response within ${r.timeoutMs / 1000} s`);
    return fail('network', describeNetworkError(err));
  }
  record.status = response.status;

  if (response.status !== 200) {
    let body = '';
    try {
      body = await response.text();
    } catch {
      // the status says enough
    }
    return fail('http', httpErrorMessage(response.status, body));
  }
  const contentType = response.headers.get('content-type') ?? '';
  if (contentType && !contentType.includes('text/event-stream')) {
    await response.body?.cancel().catch(() => {});
    return fail('stream', `expected an event stream, got content-type '${contentType}'`);
  }

  const sse = new SseDecoder();
  const text = new TextDecoder();
  let usageTokens: number | null = null;
  let done = false;
  let streamError: string | null = null;
  let chunks = 0;
  /** True once the stream has said all it will: [DONE] or an error. */
  const handle = (events: ReturnType<SseDecoder['push']>, at: number): boolean => {
    for (const event of events) {
      const item = parseChatEvent(event);
      if (item.kind === 'done') done = true;
      else if (item.kind === 'error') streamError = item.message;
      else {
        if (item.content) {
          record.chunkMs.push(at);
          chunks++;
          if (r.keepReply === true) record.reply = (record.reply ?? '') + item.content;
        }
        if (item.finishReason !== null) record.finishReason = item.finishReason;
        if (item.timings !== null) record.serverTimings = item.timings;
        if (item.usage) {
          if (item.usage.promptTokens !== null) record.promptTokens = item.usage.promptTokens;
          if (item.usage.completionTokens !== null) usageTokens = item.usage.completionTokens;
        }
      }
      if (done || streamError !== null) return true; // nothing after [DONE] or an error counts
    }
    return false;
  };
  let lastAt: number | null = null;
  try {
    let finished = false;
    const reader = response.body?.getReader();
    while (reader && !finished) {
      const { value, done: eof } = await reader.read();
      if (eof) break;
      lastAt = now();
      finished = handle(sse.push(text.decode(value, { stream: true })), lastAt);
    }
    if (reader && finished) await drain(reader, 1000);
    if (!finished) handle([...sse.push(text.decode()), ...sse.end()], lastAt ?? now());
  } catch (err) {
    record.outputTokens = chunks;
    if (timedOut()) return fail('timeout', `stream not finished within ${r.timeoutMs / 1000} s`);
    return fail('network', `stream broken: ${describeNetworkError(err)}`);
  }
  record.endMs = lastAt ?? now();
  record.outputTokens = usageTokens ?? chunks;
  record.outputTokensFrom = usageTokens === null ? 'chunks' : 'usage';
  if (streamError !== null) {
    record.errorKind = 'stream';
    record.error = streamError;
    return record;
  }
  if (!done && record.finishReason === null) return fail('stream', 'stream ended without a finish_reason or [DONE]');
  record.ok = true;
  return record;
}
