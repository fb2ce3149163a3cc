// Requests waiting for a slot, by priority, then one FIFO per client served in rounds so one heavy client
// can't starve the rest. A higher priority is always served first; fairness holds between the clients of
// one priority (as the Gateway API Inference Extension's flow control does: InferenceObjective priority).
// Within a priority, every waiting client gets one turn per round; a client that just had its turn goes
// to the next round (the back of the rotation), and a client that arrives mid-round joins the current one
// unless it already had its turn in it. So a newcomer waits for at most one turn of each other client,
// and when a single client has been hogging the slots, a newcomer gets the very next one.
//
// Every operation is O(1) but for the priority lookup (O(distinct priorities), a handful): insertion-ordered
// Maps and Sets give FIFO order with O(1) removal, which is what cancelling a queued request needs.
import type { ClientWaiting } from './types.ts';

export type { ClientWaiting } from './types.ts';

export interface FairQueueLimits {
  /** Most requests waiting, over all priorities. */
  maxRequests: number;
  /** Most prompt tokens waiting, summed over requests. */
  maxTokens: number;
}

/** Which bound a new request would break. */
export type QueueOverflow = 'requests' | 'tokens';

/** The priority a request gets when it names none (InferenceObjective's default). */
export const DEFAULT_PRIORITY = 0;

/** Past this many levels the empty ones are dropped, so arbitrary priorities can't grow the queue's memory. */
const MAX_LEVELS = 16;

interface Waiting<T> {
  id: string;
  level: Level<T>;
  line: ClientLine<T>;
  cost: number;
  item: T;
}

interface ClientLine<T> {
  client: string;
  waiting: Map<string, Waiting<T>>;
}

/** The clients waiting at one priority, served round-robin. */
class Level<T> {
  readonly lines = new Map<string, ClientLine<T>>();
  /** Clients still due a turn in this round, in arrival order. */
  thisRound = new Set<ClientLine<T>>();
  /** Clients that had their turn in this round and still wait. */
  nextRound = new Set<ClientLine<T>>();
  /** Clients that had their turn in this round and have nothing waiting: if they come back, they wait for the next round. */
  readonly servedThisRound = new Set<string>();
  size = 0;

  constructor(readonly priority: number) {}

  line(client: string): ClientLine<T> {
    let line = this.lines.get(client);
    if (line === undefined) {
      line = { client, waiting: new Map() };
      this.lines.set(client, line);
      (this.servedThisRound.has(client) ? this.nextRound : this.thisRound).add(line);
    }
    return line;
  }

  /** The next request by round-robin between this level's clients (the first in turn that canTake accepts). */
  next(canTake?: (item: T) => boolean): Waiting<T> | undefined {
    if (this.thisRound.size === 0) {
      // A new round: everyone still waiting is due a turn again.
      this.thisRound = this.nextRound;
      this.nextRound = new Set();
      this.servedThisRound.clear();
    }
    for (const round of [this.thisRound, this.nextRound]) {
      for (const line of round) {
        const w = first(line.waiting.values());
        if (w === undefined) throw new Error('a client line in the rotation is empty');
        if (canTake === undefined || canTake(w.item)) return w;
      }
    }
    return undefined;
  }

  /** Takes `w` out; `served`: it leaves because it had its turn (not cancelled). */
  take(w: Waiting<T>, served: boolean): void {
    const line = w.line;
    line.waiting.delete(w.id);
    this.size--;
    if (served) {
      this.thisRound.delete(line);
      if (line.waiting.size > 0) this.nextRound.add(line);
      else {
        this.lines.delete(line.client);
        this.servedThisRound.add(line.client);
      }
      return;
    }
    if (line.waiting.size === 0) {
      this.lines.delete(line.client);
      this.thisRound.delete(line);
      // Had its turn this round: cancelling and resubmitting must not buy it another one.
      if (this.nextRound.delete(line)) this.servedThisRound.add(line.client);
    }
  }

  *values(): IterableIterator<T> {
    for (const line of [...this.thisRound, ...this.nextRound]) for (const w of line.waiting.values()) yield w.item;
  }
}

export class FairQueue<T> {
  readonly limits: FairQueueLimits;
  /**
   * Levels, highest priority first. An emptied level stays (its round goes on: a client that just had its
   * turn still waits behind a newcomer) until there are more than MAX_LEVELS levels.
   */
  readonly #levels: Level<T>[] = [];
  readonly #byId = new Map<string, Waiting<T>>();
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

  /** Client lines with at least one request waiting (a client waiting at two priorities counts twice). */
  get clients(): number {
    return this.#levels.reduce((n, level) => n + level.lines.size, 0);
  }

  /** Priorities with requests waiting, highest first. */
  get priorities(): number[] {
    return this.#levels.filter((level) => level.size > 0).map((level) => level.priority);
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

  /**
   * Appends a request to its client's line at its priority (higher first; default 0). Bounds are the
   * caller's to check first (overflow()).
   */
  push(id: string, client: string, cost: number, item: T, priority = DEFAULT_PRIORITY): void {
    if (this.#byId.has(id)) throw new Error(`request ${id} is already queued`);
    if (!Number.isSafeInteger(priority)) throw new RangeError(`priority must be an integer (got ${priority})`);
    const level = this.#level(priority);
    const line = level.line(client);
    const w: Waiting<T> = { id, level, line, cost, item };
    line.waiting.set(id, w);
    level.size++;
    this.#byId.set(id, w);
    this.#tokens += cost;
  }

  /**
   * The next request: from the highest priority waiting, by round-robin between its clients. With `canTake`,
   * the first client in turn whose oldest request it accepts: a request that can't start yet (its pinned slot
   * is busy) holds back its own client, not the others.
   */
  shift(canTake?: (item: T) => boolean): T | undefined {
    for (const level of this.#levels) {
      if (level.size === 0) continue;
      const w = level.next(canTake);
      if (w === undefined) continue;
      this.#take(w, true);
      return w.item;
    }
    return undefined;
  }

  /** The request shift(canTake) would return, left in the queue. */
  peek(canTake?: (item: T) => boolean): T | undefined {
    for (const level of this.#levels) {
      if (level.size === 0) continue;
      const w = level.next(canTake);
      if (w !== undefined) return w.item;
    }
    return undefined;
  }

  /**
   * Puts a request back at the head of its client's line (a running request that gave its slot up): it goes
   * before the client's other waiting requests. Bounds are not checked: it was admitted once.
   */
  pushFront(id: string, client: string, cost: number, item: T, priority = DEFAULT_PRIORITY): void {
    this.push(id, client, cost, item, priority);
    const w = this.#byId.get(id);
    if (w === undefined) return;
    const rest = [...w.line.waiting].filter(([key]) => key !== id);
    w.line.waiting.clear();
    w.line.waiting.set(id, w);
    for (const [key, other] of rest) w.line.waiting.set(key, other);
  }

  /** Removes a waiting request (cancelled while queued). False when it is not waiting. */
  remove(id: string): boolean {
    const w = this.#byId.get(id);
    if (w === undefined) return false;
    this.#take(w, false);
    return true;
  }

  /**
   * Per client: requests and prompt tokens waiting, in the order their turns come (highest priority first,
   * then rotation order; a client waiting at several priorities is one entry, where it first comes). A
   * read-only view, for stats.
   */
  waitingByClient(): ClientWaiting[] {
    const byClient = new Map<string, ClientWaiting>();
    for (const level of this.#levels) {
      for (const line of [...level.thisRound, ...level.nextRound]) {
        let tokens = 0;
        for (const w of line.waiting.values()) tokens += w.cost;
        const seen = byClient.get(line.client);
        if (seen) {
          seen.requests += line.waiting.size;
          seen.tokens += tokens;
        } else byClient.set(line.client, { client: line.client, requests: line.waiting.size, tokens });
      }
    }
    return [...byClient.values()];
  }

  /** Waiting requests: highest priority first; within one, clients in rotation order, each client's in FIFO order. */
  *values(): IterableIterator<T> {
    for (const level of this.#levels) yield* level.values();
  }

  #level(priority: number): Level<T> {
    let i = 0;
    while (i < this.#levels.length && (this.#levels[i]?.priority ?? 0) > priority) i++;
    const found = this.#levels[i];
    if (found?.priority === priority) return found;
    const level = new Level<T>(priority);
    this.#levels.splice(i, 0, level);
    if (this.#levels.length > MAX_LEVELS) {
      // Many priorities seen: forget the rounds of the empty levels (their clients' next turn comes sooner).
      for (let k = this.#levels.length - 1; k >= 0; k--)
        if (this.#levels[k]?.size === 0 && this.#levels[k] !== level) this.#levels.splice(k, 1);
    }
    return level;
  }

  #take(w: Waiting<T>, served: boolean): void {
    w.level.take(w, served);
    this.#byId.delete(w.id);
    this.#tokens -= w.cost;
  }
}

function first<V>(values: Iterable<V>): V | undefined {
  for (const v of values) return v;
  return undefined;
}
