// Requests waiting for a slot: one FIFO per client, served in rounds so one heavy client can't starve
// the rest. In each round every waiting client gets one turn; a client that just had its turn goes to
// the next round (the back of the rotation), and a client that arrives mid-round joins the current one
// unless it already had its turn in it. So a newcomer waits for at most one turn of each other client,
// and when a single client has been hogging the slots, a newcomer gets the very next one.
//
// Every operation is O(1): insertion-ordered Maps and Sets give FIFO order with O(1) removal, which is
// what cancelling a queued request needs.

export interface FairQueueLimits {
  /** Most requests waiting. */
  maxRequests: number;
  /** Most prompt tokens waiting, summed over requests. */
  maxTokens: number;
}

/** One client's line in the queue. */
export interface ClientWaiting {
  client: string;
  requests: number;
  /** Prompt tokens of its waiting requests, summed. */
  tokens: number;
}

/** Which bound a new request would break. */
export type QueueOverflow = 'requests' | 'tokens';

interface Waiting<T> {
  id: string;
  client: ClientLine<T>;
  cost: number;
  item: T;
}

interface ClientLine<T> {
  client: string;
  waiting: Map<string, Waiting<T>>;
}

export class FairQueue<T> {
  readonly limits: FairQueueLimits;
  readonly #lines = new Map<string, ClientLine<T>>();
  readonly #byId = new Map<string, Waiting<T>>();
  /** Clients still due a turn in this round, in arrival order. */
  #thisRound = new Set<ClientLine<T>>();
  /** Clients that had their turn in this round and still wait. */
  #nextRound = new Set<ClientLine<T>>();
  /** Clients that had their turn in this round and have nothing waiting: if they come back, they wait for the next round. */
  readonly #servedThisRound = new Set<string>();
  #tokens = 0;

  constructor(limits: FairQueueLimits) {
    this.limits = limits;
  }

  get size(): number {
    return this.#byId.size;
  }

  /** Prompt tokens waiting, summed. */
  get tokens(): number {
    return this.#tokens;
  }

  /** Clients with at least one request waiting. */
  get clients(): number {
    return this.#lines.size;
  }

  has(id: string): boolean {
    return this.#byId.has(id);
  }

  /**
   * The bound a new request of `cost` tokens would break, or null when it fits. `leaving` requests are
   * about to leave the queue for idle slots, so they don't count as waiting. A request that would wait
   * alone is never refused for its tokens, so one larger than the token bound is not refused forever.
   */
  overflow(cost: number, leaving = 0): QueueOverflow | null {
    // It takes an idle slot at once: it never waits.
    if (this.size < leaving) return null;
    const waiting = this.size - leaving;
    if (waiting + 1 > this.limits.maxRequests) return 'requests';
    if (waiting > 0 && this.#tokens + cost > this.limits.maxTokens) return 'tokens';
    return null;
  }

  /** Appends a request to its client's line. Bounds are the caller's to check first (overflow()). */
  push(id: string, client: string, cost: number, item: T): void {
    if (this.#byId.has(id)) throw new Error(`request ${id} is already queued`);
    let line = this.#lines.get(client);
    if (line === undefined) {
      line = { client, waiting: new Map() };
      this.#lines.set(client, line);
      (this.#servedThisRound.has(client) ? this.#nextRound : this.#thisRound).add(line);
    }
    const w: Waiting<T> = { id, client: line, cost, item };
    line.waiting.set(id, w);
    this.#byId.set(id, w);
    this.#tokens += cost;
  }

  /** The next request by round-robin between clients, or undefined when none waits. */
  shift(): T | undefined {
    if (this.#byId.size === 0) return undefined;
    if (this.#thisRound.size === 0) {
      // A new round: everyone still waiting is due a turn again.
      this.#thisRound = this.#nextRound;
      this.#nextRound = new Set();
      this.#servedThisRound.clear();
    }
    const line = first(this.#thisRound);
    if (line === undefined) return undefined;
    this.#thisRound.delete(line);
    const w = first(line.waiting.values());
    if (w === undefined) throw new Error('a client line in the rotation is empty');
    this.#take(w);
    if (line.waiting.size > 0) this.#nextRound.add(line);
    else {
      this.#lines.delete(line.client);
      this.#servedThisRound.add(line.client);
    }
    return w.item;
  }

  /** Removes a waiting request (cancelled while queued). False when it is not waiting. */
  remove(id: string): boolean {
    const w = this.#byId.get(id);
    if (w === undefined) return false;
    this.#take(w);
    const line = w.client;
    if (line.waiting.size === 0) {
      this.#lines.delete(line.client);
      this.#thisRound.delete(line);
      // Had its turn this round: cancelling and resubmitting must not buy it another one.
      if (this.#nextRound.delete(line)) this.#servedThisRound.add(line.client);
    }
    return true;
  }

  /** Per client: requests and prompt tokens waiting, clients in rotation order (read-only view, for stats). */
  waitingByClient(): ClientWaiting[] {
    return [...this.#thisRound, ...this.#nextRound].map((line) => {
      let tokens = 0;
      for (const w of line.waiting.values()) tokens += w.cost;
      return { client: line.client, requests: line.waiting.size, tokens };
    });
  }

  /** Waiting requests, clients in rotation order, each client's in FIFO order. */
  *values(): IterableIterator<T> {
    for (const line of [...this.#thisRound, ...this.#nextRound]) for (const w of line.waiting.values()) yield w.item;
  }

  #take(w: Waiting<T>): void {
    w.client.waiting.delete(w.id);
    this.#byId.delete(w.id);
    this.#tokens -= w.cost;
  }
}

function first<V>(values: Iterable<V>): V | undefined {
  for (const v of values) return v;
  return undefined;
}
