// The soak's clients: each a closed loop of mixed requests. complete: a chat completion; stream: a streamed one,
// read to [DONE]; abort: a stream dropped after a few chunks (or before the answer); bad: a request from the
// fuzzer's storm (src/fuzz), mostly refused. A 429 (the small queue) waits its Retry-After and goes on.
// Every answer is checked: a 5xx or a server_error event counts as a server error, an error not in OpenAI's
// shape as a shape error. The storm's valid bodies that set no length get the soak's --max-tokens: left
// unbounded they generate to the end of the slot, and on a real-size model a few of them hold every slot for
// minutes, so the rest of the mix would see only 429s.
import fc from 'fast-check';
import { anthropicErrorProblem, anthropicRoute, errorShapeProblem } from '../../fuzz/invariants.ts';
import { type FuzzRequest, fuzzRequest } from '../../fuzz/requests.ts';
import { mulberry32 } from '../loadgen/plan.ts';
import { authHeaders, describeNetworkError } from '../loadgen/request.ts';
import { parseChatEvent, SseDecoder } from '../loadgen/sse.ts';
import type { Counts } from './verdict.ts';

export type Action = 'complete' | 'stream' | 'abort' | 'bad';

/** The mix, in parts of 10. */
const MIX: readonly Action[] = [
  'complete',
  'complete',
  'complete',
  'stream',
  'stream',
  'stream',
  'abort',
  'abort',
  'bad',
  'bad',
];

const WORDS = 'the a of river stone light quiet number seven market north window bread garden letter storm'.split(' ');

export function newCounts(): Counts {
  return {
    byOutcome: {},
    requests: 0,
    serverErrors: 0,
    shapeErrors: 0,
    rateLimited: 0,
    aborted: 0,
    clientTimeouts: 0,
    completionTokens: 0,
  };
}

/** A seeded generator (the load generator's mulberry32): the same seed, the same mix. */
export const seeded = mulberry32;

/** The length field of each generation route, as its API names it. */
const LENGTH_FIELD: Record<string, string> = {
  '/completion': 'n_predict',
  '/v1/responses': 'max_output_tokens',
  '/responses': 'max_output_tokens',
};
const LENGTH_FIELDS = ['max_tokens', 'max_completion_tokens', 'n_predict', 'max_output_tokens'];

/** The request with a length of `maxTokens` when its body is a JSON object that sets none. */
export function bounded(r: FuzzRequest, maxTokens: number): FuzzRequest {
  const text = r.payload.toString('utf8');
  // Bodies with bytes that are not UTF-8 stay as they are: rewriting them would mend them.
  if (!Buffer.from(text).equals(r.payload)) return r;
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    return r;
  }
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return r;
  if (LENGTH_FIELDS.some((f) => f in body)) return r;
  const field = LENGTH_FIELD[r.url.split('?')[0] ?? ''] ?? 'max_tokens';
  return { ...r, payload: Buffer.from(JSON.stringify({ ...body, [field]: maxTokens })) };
}

export interface WorkloadOptions {
  url: string;
  apiKey: string | null;
  maxTokens: number;
  seed: number;
  /** The server's body limit, for the storm's oversize bodies. */
  bodyLimitBytes: number;
}

export class Workload {
  readonly counts = newCounts();
  readonly #o: WorkloadOptions;
  readonly #random: () => number;
  readonly #bad: FuzzRequest[];
  #next = 0;

  constructor(o: WorkloadOptions) {
    this.#o = o;
    this.#random = seeded(o.seed);
    this.#bad = fc
      .sample(fuzzRequest({ bodyLimitBytes: o.bodyLimitBytes }), { numRuns: 400, seed: o.seed })
      // The soak's server generates: the storm's requests for an embedding server are left out.
      .filter((r) => r.server === 'generation')
      .map((r) => bounded(r, o.maxTokens));
  }

  /** One client until `stop()` says so. */
  async client(stop: () => boolean): Promise<void> {
    while (!stop()) {
      const action = MIX[Math.floor(this.#random() * MIX.length)] ?? 'complete';
      const wait = await this.#one(action);
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    }
  }

  #count(key: string): void {
    this.counts.byOutcome[key] = (this.counts.byOutcome[key] ?? 0) + 1;
  }

  #body(stream: boolean): string {
    const n = 8 + Math.floor(this.#random() * 40);
    const words = Array.from({ length: n }, () => WORDS[Math.floor(this.#random() * WORDS.length)]).join(' ');
    return JSON.stringify({
      messages: [{ role: 'user', content: `Write about ${words}` }],
      max_tokens: 4 + Math.floor(this.#random() * this.#o.maxTokens),
      temperature: 0.8,
      stream,
      ...(stream ? { stream_options: { include_usage: true } } : {}),
    });
  }

  /** Checks an error answer; returns the milliseconds to wait before the next request (429: Retry-After). */
  async #refused(action: Action, res: Response, url = '/v1/chat/completions'): Promise<number> {
    const text = await res.text();
    this.#count(`${action} ${res.status}`);
    if (res.status >= 500) this.counts.serverErrors++;
    let shape: string | null;
    try {
      // Anthropic's routes answer in Anthropic's shape.
      shape = (anthropicRoute(url) ? anthropicErrorProblem : errorShapeProblem)(JSON.parse(text));
    } catch {
      shape = 'not JSON';
    }
    if (shape !== null) this.counts.shapeErrors++;
    if (res.status === 429) {
      this.counts.rateLimited++;
      return Math.min(5, Number(res.headers.get('retry-after') ?? 1)) * 1000;
    }
    return 0;
  }

  async #one(action: Action): Promise<number> {
    this.counts.requests++;
    const headers = { 'content-type': 'application/json', ...authHeaders(this.#o.apiKey) };
    const ac = new AbortController();
    const url = `${this.#o.url}/v1/chat/completions`;
    try {
      if (action === 'bad') {
        const r = this.#bad[this.#next++ % this.#bad.length] as FuzzRequest;
        const res = await fetch(`${this.#o.url}${r.url}`, {
          method: r.method,
          headers: { ...r.headers, ...authHeaders(this.#o.apiKey) },
          ...(r.method !== 'GET' && r.payload.length > 0 ? { body: new Uint8Array(r.payload) } : {}),
        });
        if (res.status >= 400) return await this.#refused(action, res, r.url);
        await res.text();
        this.#count(`bad ${res.status}`);
        return 0;
      }
      if (action === 'abort' && this.#random() < 0.25) {
        // Gone before the answer: while it waits in the queue or prefills.
        setTimeout(() => ac.abort(), Math.floor(this.#random() * 200));
      }
      const stream = action !== 'complete';
      const res = await fetch(url, { method: 'POST', headers, body: this.#body(stream), signal: ac.signal });
      if (res.status !== 200) return await this.#refused(action, res);
      if (!stream) {
        const body = (await res.json()) as { usage?: { completion_tokens?: number } };
        this.counts.completionTokens += body.usage?.completion_tokens ?? 0;
        this.#count('complete 200');
        return 0;
      }
      const abortAfter = action === 'abort' ? 1 + Math.floor(this.#random() * 6) : Number.POSITIVE_INFINITY;
      const decoder = new SseDecoder();
      const text = new TextDecoder();
      let chunks = 0;
      let done = false;
      const reader = res.body?.getReader();
      while (reader !== undefined && !done) {
        const { value, done: ended } = await reader.read();
        if (ended) break;
        for (const event of decoder.push(text.decode(value, { stream: true }))) {
          const item = parseChatEvent(event);
          if (item.kind === 'done') done = true;
          else if (item.kind === 'error') {
            // The only errors a healthy server sends in a stream: its deadline, or shutting down.
            if (/server_error/.test(item.message)) this.counts.serverErrors++;
            this.#count(`${action} stream-error`);
          } else {
            chunks++;
            if (item.usage?.completionTokens != null) this.counts.completionTokens += item.usage.completionTokens;
          }
        }
        if (chunks >= abortAfter) {
          ac.abort();
          break;
        }
      }
      if (ac.signal.aborted) {
        this.counts.aborted++;
        this.#count(`${action} aborted`);
      } else this.#count(`${action} ${done ? '200' : 'unfinished'}`);
      if (!done && !ac.signal.aborted) this.counts.serverErrors++;
      return 0;
    } catch (err) {
      if (ac.signal.aborted) {
        this.counts.aborted++;
        this.#count(`${action} aborted`);
        return 0;
      }
      const why = describeNetworkError(err);
      process.stderr.write(`soak: ${action}: ${why}\n`);
      // fetch's own deadlines (undici: 300 s for the headers, 300 s between body chunks): the server was still
      // working on it, too slowly. Not a 5xx, but not served either; the verdict counts them apart.
      if (/UND_ERR_(HEADERS|BODY)_TIMEOUT/.test(why)) {
        this.counts.clientTimeouts++;
        this.#count(`${action} client-timeout`);
        return 0;
      }
      // A connection refused or reset is the server's failure as far as a client can tell.
      this.counts.serverErrors++;
      this.#count(`${action} network-error`);
      return 1000;
    }
  }
}
