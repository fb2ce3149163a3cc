// What the routes are given: the served model, its chat layer, the scheduler, the resolved config and metrics.
import type { FastifyRequest } from 'fastify';
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

/** One model in router mode's listing (GET /models). */
export interface RoutedModelView {
  id: string;
  aliases: readonly string[];
  /** unloaded, loading, loaded, unloading, sleeping or failed. */
  status: string;
  /** Why it failed to load (status failed), or why it cannot be loaded. */
  error?: string;
  path?: string;
  source: string;
  /** The flags it is (or would be) loaded with. */
  args: readonly string[];
  /** Requests it serves or that wait for it. */
  requests: number;
  /** Its /v1/models facts, when loaded. */
  meta?: Record<string, unknown>;
}

/**
 * Router mode (src/router/): several models, one per request's `model`. The routes of one model are served by the
 * deps select() gives; the request holds the model until release() (it is not unloaded under it).
 */
export interface RouterControl {
  select(
    name: string,
    options: { autoload: boolean; signal: AbortSignal },
  ): Promise<{ deps: ServerDeps; release(): void }>;
  list(): RoutedModelView[];
  load(name: string): void;
  unload(name: string): Promise<void>;
  reload(): Promise<void>;
  modelsMax: number;
  autoload: boolean;
}

/**
 * --sleep-idle-seconds with one model: a request that needs the model holds it awake (waking it first, and waiting);
 * read-only routes (config.idle) do neither.
 */
export interface SleepControl {
  readonly sleeping: boolean;
  hold(): Promise<() => void>;
}

declare module 'fastify' {
  interface FastifyRequest {
    /** Router mode: the deps of the model this request names (set before its handler runs). */
    servedBy: ServerDeps | null;
  }
}

/** The deps that serve this request: its model's in router mode, else the server's one model's. */
export function servedBy(request: FastifyRequest, base: ServerDeps): ServerDeps {
  return request.servedBy ?? base;
}
