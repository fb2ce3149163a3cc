// Talking to the server: the API key (kept in localStorage, sent as a Bearer token), OpenAI error bodies,
// and server-sent events read from a fetch body (EventSource cannot send an Authorization header).
import { type EventSourceMessage, EventSourceParserStream } from 'eventsource-parser/stream';

const KEY_STORAGE = 'llama-slots:api-key';

export function apiKey(): string {
  return localStorage.getItem(KEY_STORAGE) ?? '';
}

export function setApiKey(key: string): void {
  if (key === '') localStorage.removeItem(KEY_STORAGE);
  else localStorage.setItem(KEY_STORAGE, key);
}

/** A non-2xx answer, with OpenAI's error message when the body had one. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly code: string | null = null,
  ) {
    super(message);
  }

  get unauthorized(): boolean {
    return this.status === 401;
  }
}

/** fetch with the API key; throws ApiError on a non-2xx answer. */
export async function apiFetch(path: string, init: RequestInit = {}): Promise<Response> {
  const headers = new Headers(init.headers);
  const key = apiKey();
  if (key !== '') headers.set('authorization', `Bearer ${key}`);
  const res = await fetch(path, { ...init, headers });
  if (!res.ok) throw await errorOf(res);
  return res;
}

async function errorOf(res: Response): Promise<ApiError> {
  let message = `${res.status} ${res.statusText}`;
  let code: string | null = null;
  try {
    const body = (await res.json()) as { error?: { message?: string; code?: string | null } };
    if (typeof body.error?.message === 'string') message = body.error.message;
    code = body.error?.code ?? null;
  } catch {
    // Not JSON: the status line says enough.
  }
  return new ApiError(res.status, message, code);
}

/** Calls `onEvent` for each `data:` payload of an SSE response until it ends or `signal` aborts. */
export async function readEvents(res: Response, onEvent: (data: string) => void): Promise<void> {
  if (res.body === null) return;
  const events = res.body.pipeThrough(new TextDecoderStream()).pipeThrough(new EventSourceParserStream());
  const reader = events.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) return;
    onEvent((value as EventSourceMessage).data);
  }
}
