// What the routes are given: the served model, its chat layer, the scheduler, the resolved config and metrics.
import type { ChatLayer } from './chat/layer.ts';
import type { ResolvedServerOptions, ServedEmbedder, ServedModel, ServedScheduler } from './options.ts';

/** What one finished (or failed) generation reports to the metrics. */
export interface ResponseRecord {
  finishReason: 'stop' | 'length' | 'cancelled' | 'error' | 'timeout';
  promptTokens: number;
  cachedTokens: number;
  completionTokens: number;
  /** Seconds; undefined when no token was produced. */
  queueSeconds?: number;
  promptSeconds?: number;
  generationSeconds?: number;
  ttftSeconds?: number;
  e2eSeconds: number;
}

/** Why a request was refused before it generated anything. */
export type RejectionCause = 'queue_full' | 'auth' | 'invalid' | 'context_exceeded' | 'shutting_down' | 'too_large';

/** Where finished responses are counted (src/metrics/server-metrics.ts implements it). */
export interface GenerationMetrics {
  responded(record: ResponseRecord): void;
  interTokenGap(seconds: number): void;
  rejected(cause: RejectionCause): void;
}

export interface ServerDeps {
  model: ServedModel;
  chat: ChatLayer;
  scheduler: ServedScheduler;
  config: ResolvedServerOptions;
  metrics?: GenerationMetrics;
  /** With config.embeddings: the embedding context. */
  embedder?: ServedEmbedder;
}
