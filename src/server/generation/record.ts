// What a finished generation tells the metrics: its finish reason, its tokens (as the client's usage counted
// them) and its phases in seconds, from the scheduler's summary.
import type { RequestSummary } from '../../scheduler/types.ts';
import type { GenerationMetrics, ResponseRecord } from '../deps.ts';
import type { Outcome } from './types.ts';

/** Counts a response as it was reported: usage totals in the metrics equal the sums over responses. */
export function record(metrics: GenerationMetrics | undefined, s: RequestSummary, outcome: Outcome): void {
  if (!metrics) return;
  const seconds = (from: number | null, to: number | null): number | undefined =>
    from !== null && to !== null ? Math.max(0, to - from) / 1000 : undefined;
  const finished = outcome.kind === 'finished';
  const finishReason: ResponseRecord['finishReason'] = finished
    ? outcome.done.finish
    : outcome.kind === 'gone'
      ? 'cancelled'
      : s.reason === 'timeout'
        ? 'timeout'
        : 'error';
  const r: ResponseRecord = {
    finishReason,
    promptTokens: finished ? outcome.done.usage.prompt_tokens : 0,
    cachedTokens: finished ? outcome.done.usage.prompt_tokens_details.cached_tokens : 0,
    completionTokens: finished ? outcome.done.usage.completion_tokens : 0,
    e2eSeconds: (s.endedAt - s.queuedAt) / 1000,
  };
  const queue = seconds(s.queuedAt, s.startedAt);
  const prompt = seconds(s.startedAt, s.firstTokenAt);
  const generation = seconds(s.firstTokenAt, s.endedAt);
  const ttft = seconds(s.queuedAt, s.firstTokenAt);
  if (queue !== undefined) r.queueSeconds = queue;
  if (finished && prompt !== undefined) r.promptSeconds = prompt;
  if (finished && generation !== undefined) r.generationSeconds = generation;
  if (ttft !== undefined) r.ttftSeconds = ttft;
  metrics.responded(r);
}
