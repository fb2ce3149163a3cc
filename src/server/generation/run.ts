// One run of a prepared request through the scheduler. Text passes through the stop matcher; a matched stop string
// cancels the request (its slot frees within one step) and ends it with finish_reason 'stop'.
import type { FastifyBaseLogger } from 'fastify';
import { ContextExceededError } from '../../errors.ts';
import type { ResponseRecord } from '../../metrics/server-metrics.ts';
import type { RequestSummary } from '../../scheduler/types.ts';
import type { GenerationMetrics, ServerDeps } from '../deps.ts';
import { type ApiError, contextExceeded, generationFailed, requestTimeout, shuttingDown } from '../errors.ts';
import { StopMatcher } from '../stop-strings.ts';
import type { FinishReason, PreparedGeneration, Usage } from './types.ts';

export type Outcome =
  | { kind: 'finished'; finish: 'stop' | 'length'; usage: Usage }
  | { kind: 'failed'; error: ApiError }
  | { kind: 'gone' };

export interface TextSink {
  /** The request got a slot. */
  onStart(): void;
  /** Text with stop strings removed (never part of one). */
  onText(text: string): void;
}

/** Rejects with what submit throws (queue full, shutting down, context exceeded). */
export function run(
  deps: ServerDeps,
  job: PreparedGeneration,
  sink: TextSink,
  abort: AbortController,
  isGone: () => boolean,
  log: FastifyBaseLogger,
): Promise<Outcome> {
  return generate(deps, job, sink, abort, isGone, log).catch((err: unknown) => {
    // The route checks the prompt against the slot first; should the scheduler disagree, answer the same way.
    throw err instanceof ContextExceededError ? contextExceeded(job.tokens.length, deps.config.ctxPerSlot) : err;
  });
}

function generate(
  deps: ServerDeps,
  job: PreparedGeneration,
  sink: TextSink,
  abort: AbortController,
  isGone: () => boolean,
  log: FastifyBaseLogger,
): Promise<Outcome> {
  const matcher = new StopMatcher(job.stop);
  let received = 0;
  let tokensAtStop = 0;
  let lastTokenAt: number | undefined;
  return new Promise<Outcome>((resolve) => {
    const timeoutMs = deps.config.requestTimeoutMs;
    deps.scheduler.submit(
      {
        client: job.client,
        tokens: job.tokens,
        options: job.options,
        signal: abort.signal,
        ...(timeoutMs !== undefined ? { timeoutMs } : {}),
      },
      {
        onStart: () => {
          if (!isGone()) sink.onStart();
        },
        onToken: (_token, piece) => {
          if (matcher.stopped !== null || isGone()) return;
          received++;
          const now = performance.now();
          if (lastTokenAt !== undefined) deps.metrics?.interTokenGap((now - lastTokenAt) / 1000);
          lastTokenAt = now;
          const r = matcher.push(piece);
          if (r.text !== '') sink.onText(r.text);
          if (r.stop !== null) {
            tokensAtStop = received;
            abort.abort();
          }
        },
        onEnd: (summary, tail) => {
          const settle = (outcome: Outcome): void => {
            record(deps.metrics, summary, outcome);
            resolve(outcome);
          };
          if (isGone()) return settle({ kind: 'gone' });
          if (matcher.stopped === null && tail !== '') {
            const r = matcher.push(tail);
            if (r.text !== '') sink.onText(r.text);
            if (r.stop !== null) tokensAtStop = received;
          }
          const usage = (completion: number): Usage => ({
            prompt_tokens: summary.promptTokens,
            completion_tokens: completion,
            total_tokens: summary.promptTokens + completion,
            prompt_tokens_details: { cached_tokens: summary.cachedTokens },
          });
          // A stop string counts the tokens up to the one that completed it; any decoded after it are not sent.
          if (matcher.stopped !== null) return settle({ kind: 'finished', finish: 'stop', usage: usage(tokensAtStop) });
          const finish = finishReason(summary);
          if (finish !== null) {
            const rest = matcher.flush();
            if (rest !== '') sink.onText(rest);
            return settle({ kind: 'finished', finish, usage: usage(summary.generatedTokens) });
          }
          switch (summary.reason) {
            case 'timeout':
              return settle({ kind: 'failed', error: requestTimeout(timeoutMs) });
            case 'shutdown':
              return settle({ kind: 'failed', error: shuttingDown() });
            case 'cancelled':
              // Nobody here asked for it (client gone and stop strings are handled above): nothing to send.
              return settle({ kind: 'gone' });
            default:
              log.error({ requestId: summary.id, reason: summary.reason, cause: summary.error }, 'generation failed');
              return settle({ kind: 'failed', error: generationFailed() });
          }
        },
      },
    );
  });
}

/** Counts a response as it was reported: usage totals in the metrics equal the sums over responses. */
function record(metrics: GenerationMetrics | undefined, s: RequestSummary, outcome: Outcome): void {
  if (!metrics) return;
  const seconds = (from: number | null, to: number | null): number | undefined =>
    from !== null && to !== null ? Math.max(0, to - from) / 1000 : undefined;
  const finished = outcome.kind === 'finished';
  const finishReason: ResponseRecord['finishReason'] = finished
    ? outcome.finish
    : outcome.kind === 'gone'
      ? 'cancelled'
      : s.reason === 'timeout'
        ? 'timeout'
        : 'error';
  const r: ResponseRecord = {
    finishReason,
    promptTokens: finished ? outcome.usage.prompt_tokens : 0,
    cachedTokens: finished ? outcome.usage.prompt_tokens_details.cached_tokens : 0,
    completionTokens: finished ? outcome.usage.completion_tokens : 0,
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

function finishReason(summary: RequestSummary): Exclude<FinishReason, 'tool_calls'> | null {
  switch (summary.reason) {
    case 'stop':
      return 'stop';
    case 'length':
    case 'context_full':
      return 'length';
    default:
      return null;
  }
}
