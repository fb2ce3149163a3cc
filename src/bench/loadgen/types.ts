// Shapes shared by the coordinator, the rank processes and the reports. Everything crossing the IPC
// channel is plain JSON (no undefined, no Map), so the default serialization carries it unchanged.

/** Why a request did not succeed. 'http': a status other than 200 (429 is counted apart in reports). */
export type ErrorKind = 'http' | 'network' | 'timeout' | 'stream';

/** One request as a rank saw it. Times are epoch milliseconds with sub-millisecond resolution. */
export interface RequestRecord {
  /** Global request index, 0..requests-1 (also picks the prompt). */
  id: number;
  rank: number;
  sendMs: number;
  /** Arrival time of each SSE event carrying non-empty delta.content (or delta.reasoning_content). */
  chunkMs: number[];
  /** When the response ended: the last byte of the stream, or the failure. */
  endMs: number;
  /** HTTP status; null when no response arrived (connection refused, reset, timeout before headers). */
  status: number | null;
  ok: boolean;
  errorKind: ErrorKind | null;
  error: string | null;
  /** usage.prompt_tokens when the server sent it. */
  promptTokens: number | null;
  /** usage.completion_tokens, else the number of content chunks. */
  outputTokens: number;
  outputTokensFrom: 'usage' | 'chunks';
  finishReason: string | null;
  /** The server's timings of the request (its last chunk), when it sent them: where its time went, by its clock. */
  serverTimings?: Record<string, number>;
  /** The reply's text, kept only when a multi-turn rank needs it for the next turn. */
  reply?: string;
}

/** What one rank does: its requests, and for an open loop when each is due (ms after the go signal). */
export interface RankPlan {
  rank: number;
  requests: Array<{ id: number; atMs: number | null }>;
}

/** Everything a rank needs besides its plan; the same for all ranks. */
export interface RequestTemplate {
  url: string;
  apiKey: string | null;
  model: string | null;
  maxTokens: number;
  promptTokens: number;
  /** ~tokens of a system prompt every request starts with (the same text for all ranks); 0: none. */
  systemTokens: number;
  /** Each rank is one conversation: its every request carries the rank's earlier turns and their replies. */
  multiTurn: boolean;
  seed: number;
  timeoutMs: number;
}

export type CoordinatorMessage =
  | { type: 'init'; plan: RankPlan; template: RequestTemplate }
  /** The barrier's release: every rank is ready. `goMs` is the coordinator's clock (epoch ms). */
  | { type: 'go'; goMs: number };

export type RankMessage =
  | { type: 'ready'; rank: number }
  | { type: 'record'; record: RequestRecord }
  | { type: 'done'; rank: number }
  | { type: 'fatal'; rank: number; message: string };

/** Epoch milliseconds with the monotonic clock's resolution; comparable across processes on one host. */
export function epochNow(): number {
  return performance.timeOrigin + performance.now();
}
