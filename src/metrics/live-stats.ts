// Sliding windows for the live view: tokens/s and requests/s per second over the last minutes, and
// percentiles of recent TTFT / ITL / E2E / queue times. Fed by the same events as the Prometheus metrics
// (ServerMetrics forwards them), so both tell one story. Pure: the clock is injected, no timers, no I/O.

import type { SchedulerObserver, StepStats } from '../scheduler/types.ts';
import type { RejectionCause, ResponseRecord } from '../server/deps.ts';
import type { LiveFigures, Percentiles } from '../server/stats-frame.ts';
import { percentile } from '../util/stats.ts';

export interface LiveStatsOptions {
  /** Epoch milliseconds. Default Date.now (the page plots series against wall-clock time). */
  now?: () => number;
  /** Seconds of per-second history kept. Default 300. */
  historySeconds?: number;
  /** Completed seconds the "now" rates average over. Default 10. */
  rateSeconds?: number;
  /** Seconds of latency samples the percentiles cover. Default 60. */
  latencySeconds?: number;
  /** Most samples kept per latency kind (ITL has one per token): the newest win. Default 4096. */
  maxSamples?: number;
}

/** What the live view listens to: the subset of ServerMetrics' inputs it aggregates. */
export interface LiveStatsListener extends Pick<SchedulerObserver, 'onStep'> {
  responded(r: ResponseRecord): void;
  interTokenGap(seconds: number): void;
  rejected(cause: RejectionCause): void;
}

interface Bucket {
  /** Epoch second this bucket counts; buckets of other seconds are stale. */
  second: number;
  generatedTokens: number;
  promptTokens: number;
  requests: number;
  rejected: number;
  cancelled: number;
}

type Counted = Exclude<keyof Bucket, 'second'>;
const COUNTED: readonly Counted[] = ['generatedTokens', 'promptTokens', 'requests', 'rejected', 'cancelled'];

/** Samples with their times in a ring: once full, each new one replaces the oldest. */
class Samples {
  readonly #times: number[] = [];
  readonly #values: number[] = [];
  #next = 0;

  constructor(readonly capacity: number) {}

  add(time: number, value: number): void {
    if (this.#times.length < this.capacity) {
      this.#times.push(time);
      this.#values.push(value);
    } else {
      this.#times[this.#next] = time;
      this.#values[this.#next] = value;
      this.#next = (this.#next + 1) % this.capacity;
    }
  }

  /** Percentiles (numpy's linear interpolation) of the samples taken at `since` or later. */
  percentiles(since: number): Percentiles {
    const recent: number[] = [];
    for (let i = 0; i < this.#times.length; i++)
      if ((this.#times[i] as number) >= since) recent.push(this.#values[i] as number);
    recent.sort((a, b) => a - b);
    return {
      count: recent.length,
      p50: percentile(recent, 50),
      p90: percentile(recent, 90),
      p99: percentile(recent, 99),
    };
  }
}

export class LiveStats implements LiveStatsListener {
  readonly #now: () => number;
  readonly #history: number;
  readonly #rateSeconds: number;
  readonly #latencySeconds: number;
  readonly #buckets: Bucket[];
  /** The first second anything could have been counted in (rates average over no more than this). */
  readonly #startSecond: number;
  readonly #ttft: Samples;
  readonly #itl: Samples;
  readonly #e2e: Samples;
  readonly #queue: Samples;
  readonly #totals = { requests: 0, generatedTokens: 0, promptTokens: 0, promptTokensCached: 0 };
  readonly #finish = new Map<string, number>();
  readonly #rejected = new Map<string, number>();

  constructor(options: LiveStatsOptions = {}) {
    this.#now = options.now ?? Date.now;
    this.#history = whole('historySeconds', options.historySeconds ?? 300);
    this.#rateSeconds = Math.min(whole('rateSeconds', options.rateSeconds ?? 10), this.#history);
    this.#latencySeconds = whole('latencySeconds', options.latencySeconds ?? 60);
    const maxSamples = whole('maxSamples', options.maxSamples ?? 4096);
    this.#buckets = Array.from({ length: this.#history }, () => emptyBucket(Number.NaN));
    this.#startSecond = this.#second();
    this.#ttft = new Samples(maxSamples);
    this.#itl = new Samples(maxSamples);
    this.#e2e = new Samples(maxSamples);
    this.#queue = new Samples(maxSamples);
  }

  onStep(stats: StepStats): void {
    const b = this.#bucket();
    b.generatedTokens += stats.generatedTokens;
    b.promptTokens += stats.promptTokens;
    this.#totals.generatedTokens += stats.generatedTokens;
    this.#totals.promptTokens += stats.promptTokens;
  }

  responded(r: ResponseRecord): void {
    const now = this.#now();
    const b = this.#bucket();
    b.requests++;
    if (r.finishReason === 'cancelled') b.cancelled++;
    this.#totals.requests++;
    this.#totals.promptTokensCached += r.cachedTokens;
    this.#finish.set(r.finishReason, (this.#finish.get(r.finishReason) ?? 0) + 1);
    if (r.ttftSeconds !== undefined) this.#ttft.add(now, r.ttftSeconds * 1000);
    if (r.queueSeconds !== undefined) this.#queue.add(now, r.queueSeconds * 1000);
    this.#e2e.add(now, r.e2eSeconds * 1000);
  }

  interTokenGap(seconds: number): void {
    this.#itl.add(this.#now(), seconds * 1000);
  }

  rejected(cause: RejectionCause): void {
    this.#bucket().rejected++;
    this.#rejected.set(cause, (this.#rejected.get(cause) ?? 0) + 1);
  }

  snapshot(): LiveFigures {
    const now = this.#now();
    const current = Math.floor(now / 1000);
    // Completed seconds only: the current one is still filling.
    const start = current - this.#history;
    const series: LiveFigures['series'] = {
      start,
      generatedTokens: [],
      promptTokens: [],
      requests: [],
      rejected: [],
      cancelled: [],
    };
    for (let s = start; s < current; s++) {
      const b = this.#buckets[mod(s, this.#history)];
      const fresh = b !== undefined && b.second === s;
      for (const key of COUNTED) series[key].push(fresh ? b[key] : 0);
    }
    // Average over the last rateSeconds completed seconds, or fewer when the server is younger than that.
    const span = Math.max(1, Math.min(this.#rateSeconds, current - this.#startSecond));
    const rate = (values: number[]): number => values.slice(-span).reduce((a, v) => a + v, 0) / span;
    const since = now - this.#latencySeconds * 1000;
    return {
      rateSeconds: this.#rateSeconds,
      latencySeconds: this.#latencySeconds,
      now: {
        generatedTokensPerSecond: rate(series.generatedTokens),
        promptTokensPerSecond: rate(series.promptTokens),
        requestsPerSecond: rate(series.requests),
      },
      series,
      latency: {
        ttft: this.#ttft.percentiles(since),
        itl: this.#itl.percentiles(since),
        e2e: this.#e2e.percentiles(since),
        queue: this.#queue.percentiles(since),
      },
      totals: {
        ...this.#totals,
        finish: Object.fromEntries(this.#finish),
        rejected: Object.fromEntries(this.#rejected),
      },
    };
  }

  #second(): number {
    return Math.floor(this.#now() / 1000);
  }

  /** The bucket of the current second, cleared first when it last counted an older second. */
  #bucket(): Bucket {
    const second = this.#second();
    const i = mod(second, this.#history);
    let b = this.#buckets[i];
    if (b === undefined || b.second !== second) {
      b = emptyBucket(second);
      this.#buckets[i] = b;
    }
    return b;
  }
}

function emptyBucket(second: number): Bucket {
  return { second, generatedTokens: 0, promptTokens: 0, requests: 0, rejected: 0, cancelled: 0 };
}

function mod(a: number, n: number): number {
  return ((a % n) + n) % n;
}

function whole(name: string, value: number): number {
  if (!Number.isInteger(value) || value < 1) throw new RangeError(`${name} must be an integer >= 1, got ${value}`);
  return value;
}
