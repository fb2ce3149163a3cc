// Server-sent events over a raw ServerResponse, as OpenAI streams them: `data: <json>\n\n` events ending with
// `data: [DONE]` (or named `event: <type>` ones without it, as the Responses and Messages APIs stream). The stream watches its client: a closed connection or a client that stops reading (writes
// stay undrained past a deadline) aborts it, so the request behind it can be cancelled instead of generating
// into an ever-growing buffer.
import type { ServerResponse } from 'node:http';

export type AbortCause = 'closed' | 'stalled';

/** Calls `onGone` once if the connection closes before the response has finished. Returns an unsubscribe. */
export function watchDisconnect(res: ServerResponse, onGone: () => void): () => void {
  // Gone already (the client left while the request was prepared, e.g. its chat template rendered off the
  // main thread): 'close' has been emitted and will not come again. Told in a microtask, like the event.
  if (res.closed && !res.writableFinished) {
    let watching = true;
    queueMicrotask(() => {
      if (watching) onGone();
    });
    return () => {
      watching = false;
    };
  }
  const onClose = (): void => {
    if (!res.writableFinished) onGone();
  };
  // One watcher per choice of a request (n up to 16, or one per prompt of several): many listeners on one
  // response are expected, not a leak for Node to warn of (MaxListenersExceededWarning).
  res.setMaxListeners(res.getMaxListeners() + 1);
  res.once('close', onClose);
  let watching = true;
  return () => {
    if (!watching) return;
    watching = false;
    res.off('close', onClose);
    res.setMaxListeners(res.getMaxListeners() - 1);
  };
}

export interface SseStreamOptions {
  /** Milliseconds a write may stay undrained before the stream is aborted as 'stalled'. */
  drainTimeoutMs: number;
  /** Once, when the client went away or stalled. The stream is already closed when it runs. */
  onAbort(cause: AbortCause): void;
  /** A `: ping` comment after this long without an event (llama-server's --sse-ping-interval). */
  pingMs?: number;
}

export class SseStream {
  readonly #res: ServerResponse;
  readonly #options: SseStreamOptions;
  #opened = false;
  #finished = false;
  #aborted: AbortCause | null = null;
  #drainTimer: NodeJS.Timeout | null = null;
  #pingTimer: NodeJS.Timeout | null = null;
  readonly #unwatch: () => void;

  constructor(res: ServerResponse, options: SseStreamOptions) {
    this.#res = res;
    this.#options = options;
    this.#unwatch = watchDisconnect(res, () => this.#abort('closed'));
    res.on('drain', () => this.#clearDrainTimer());
    res.once('close', () => this.#clearDrainTimer());
  }

  get opened(): boolean {
    return this.#opened;
  }

  /** True once the stream ended normally or was aborted; further events are dropped. */
  get closed(): boolean {
    return this.#finished || this.#aborted !== null;
  }

  get abortCause(): AbortCause | null {
    return this.#aborted;
  }

  /** Sends the status line and headers. `headers` are extra ones (e.g. what Fastify had set on the reply). */
  open(headers: Record<string, string | number | readonly string[]> = {}): void {
    if (this.#opened || this.closed) return;
    this.#opened = true;
    this.#res.writeHead(200, {
      ...headers,
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache',
      connection: 'keep-alive',
      // Tells nginx-style proxies not to buffer the stream.
      'x-accel-buffering': 'no',
    });
    this.#res.flushHeaders();
    this.#schedulePing();
  }

  #schedulePing(): void {
    const ms = this.#options.pingMs;
    if (ms === undefined || this.closed) return;
    if (this.#pingTimer !== null) clearTimeout(this.#pingTimer);
    this.#pingTimer = setTimeout(() => {
      this.#pingTimer = null;
      this.#write(': ping\n\n');
    }, ms);
    this.#pingTimer.unref();
  }

  /** One `data:` event with the JSON of `payload`; named `event` when given (Anthropic's and the Responses API's). */
  send(payload: unknown, event?: string): void {
    this.#write(`${event === undefined ? '' : `event: ${event}\n`}data: ${JSON.stringify(payload)}\n\n`);
  }

  /** `data: [DONE]` (unless `done` is false) and the end of the response. */
  end(done = true): void {
    if (this.closed) return;
    if (done) this.#write('data: [DONE]\n\n');
    this.#finished = true;
    this.#clearPing();
    this.#unwatch();
    // A drain timer still running stays: a client that never reads the tail loses its socket, not our memory.
    this.#res.end();
  }

  #write(chunk: string): void {
    if (this.closed) return;
    if (!this.#opened) this.open();
    const flushed = this.#res.write(chunk);
    this.#schedulePing();
    if (!flushed && this.#drainTimer === null) {
      this.#drainTimer = setTimeout(() => {
        this.#drainTimer = null;
        if (this.#finished) this.#res.destroy();
        else this.#abort('stalled');
      }, this.#options.drainTimeoutMs);
      this.#drainTimer.unref();
    }
  }

  #clearPing(): void {
    if (this.#pingTimer !== null) clearTimeout(this.#pingTimer);
    this.#pingTimer = null;
  }

  #clearDrainTimer(): void {
    if (this.#drainTimer !== null) clearTimeout(this.#drainTimer);
    this.#drainTimer = null;
  }

  #abort(cause: AbortCause): void {
    if (this.closed) return;
    this.#aborted = cause;
    this.#clearDrainTimer();
    this.#clearPing();
    this.#unwatch();
    // A stalled client would otherwise keep the socket and its buffered bytes alive.
    if (!this.#res.destroyed) this.#res.destroy();
    this.#options.onAbort(cause);
  }
}
