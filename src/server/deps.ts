// What the routes are given: the served model, its chat layer, the scheduler, the resolved config and metrics.
import type { RejectionCause, ResponseRecord } from '../metrics/server-metrics.ts';
import type { ChatLayer } from './chat/layer.ts';
import type { ResolvedServerConfig, ServedModel, ServedScheduler } from './config.ts';

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
  config: ResolvedServerConfig;
  metrics?: GenerationMetrics;
}
