// The live view's wire format: one StatsFrame per second on GET /v1/stats/stream (and once on GET /v1/stats).
// Types only and no imports, so the web page (web/) type-checks against the same declarations.

export interface StatsFrame {
  /** When the frame was made, epoch milliseconds. */
  time: number;
  state: 'loading' | 'ok' | 'shutting_down';
  server: ServerInfo;
  slots: SlotView[];
  queue: QueueView;
  kv: { cellsUsed: number; cellsTotal: number };
  live: LiveFigures;
  /** Router mode: every model the server knows, in the listing's order (absent with one model). */
  models?: ModelView[];
}

/** One model of a router-mode server. */
export interface ModelView {
  /** The id /v1/models lists and requests name. */
  id: string;
  status: 'unloaded' | 'loading' | 'loaded' | 'unloading' | 'sleeping' | 'failed';
  /** Requests holding or awaiting it. */
  requests: number;
  /** Its slots' count and context (those it was loaded with; 0 when it has not loaded). */
  slotCount: number;
  ctxPerSlot: number;
  /** Its slots while it is loaded (or unloading); [] otherwise. */
  slots: SlotView[];
  /** Requests waiting for one of its slots, and their prompt tokens. */
  queue: { requests: number; tokens: number };
}

export interface ServerInfo {
  /** The id /v1/models reports. */
  model: string;
  /** llama.cpp's description, e.g. "llama ?B Q4_K - Medium"; '' while loading. */
  description: string;
  params: number;
  sizeBytes: number;
  /** 'CPU', or the first GPU's name with "(GPU)". */
  backend: string;
  devices: DeviceView[];
  slots: number;
  ctxPerSlot: number;
  /** Layers on the GPU, e.g. "17/17"; null on CPU. */
  layersOffloaded: string | null;
  /** When the server started, epoch milliseconds. */
  startedAt: number;
}

export interface DeviceView {
  name: string;
  description: string;
  type: string;
  memoryTotalBytes: number;
  memoryFreeBytes: number;
  computeCapability: string | null;
}

export interface SlotView {
  id: number;
  state: 'idle' | 'prefill' | 'generating';
  /** Tokens whose KV the slot holds (its prompt cache when idle). */
  cachedTokens: number;
  request: {
    id: string;
    /** The fairness key: `key:<digest>`, `user:<name>` or `ip:<address>`. */
    client: string;
    promptTokens: number;
    /** Prompt tokens whose KV the slot already held (prompt cache hit). */
    reusedTokens: number;
    generatedTokens: number;
    /** Speculative decoding: draft tokens verified for this request, and accepted of them (0 without). */
    draftTokens: number;
    draftAccepted: number;
    /** Milliseconds the request has held the slot. */
    runningMs: number;
  } | null;
}

export interface QueueView {
  requests: number;
  tokens: number;
  /** Every client with a request waiting or running, in the order their turns come (waiting ones first). */
  clients: ClientShare[];
}

export interface ClientShare {
  client: string;
  waiting: number;
  waitingTokens: number;
  running: number;
}

/** Percentiles of recent samples, in milliseconds; null when there are none. */
export interface Percentiles {
  count: number;
  p50: number | null;
  p90: number | null;
  p99: number | null;
}

/** What src/metrics/live-stats.ts aggregates from the events the metrics receive. */
export interface LiveFigures {
  /** Seconds the "now" rates average over, and seconds of samples the percentiles cover. */
  rateSeconds: number;
  latencySeconds: number;
  now: {
    generatedTokensPerSecond: number;
    promptTokensPerSecond: number;
    requestsPerSecond: number;
  };
  /** Per completed second, oldest first; `start` is the first second's epoch seconds. */
  series: {
    start: number;
    generatedTokens: number[];
    promptTokens: number[];
    requests: number[];
    rejected: number[];
    cancelled: number[];
  };
  latency: { ttft: Percentiles; itl: Percentiles; e2e: Percentiles; queue: Percentiles };
  /** Since the server started. */
  totals: {
    requests: number;
    generatedTokens: number;
    /** Prompt tokens decoded, and prompt tokens whose KV was reused from a slot's cache (prompt cache hits). */
    promptTokens: number;
    promptTokensCached: number;
    /** Finished responses by finish reason (stop, length, cancelled, error, timeout). */
    finish: Record<string, number>;
    /** Refusals by cause (queue_full is the 429s). */
    rejected: Record<string, number>;
  };
}
