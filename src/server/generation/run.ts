// One run of a prepared request through the scheduler. Text passes through the stop matcher; a matched stop string
// cancels the request (its slot frees within one step) and ends it with finish_reason 'stop'. A generation time
// limit (t_max_predict_ms) ends it the same way, as a limit.
import type { FastifyBaseLogger } from 'fastify';
import { ContextExceededError } from '../../errors.ts';
import type { RequestSummary } from '../../scheduler/types.ts';
import type { ServerDeps } from '../deps.ts';
import { contextExceeded, decoderRefused, generationFailed, requestTimeout, shuttingDown } from '../errors.ts';
import { StopMatcher } from '../stop-strings.ts';
import { record } from './record.ts';
import type { Finished, GeneratedToken, Outcome, PreparedGeneration, PromptProgress, Timings } from './types.ts';

export type { Outcome } from './types.ts';

export interface TextSink {
  /** The request got a slot; `timings` reads its timings so far, whenever asked. */
  onStart(info: { slot: number; timings: () => Timings }): void;
  /** Text with stop strings removed (never part of one), and the tokens it completes. */
  onText(text: string, tokens: readonly GeneratedToken[]): void;
  /** Prompt processing went on (only when the request asked for progress). */
  onProgress?(progress: PromptProgress): void;
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

/** The moments llama-server's timings are computed from (ms on one clock; 0: not yet). */
export interface TimingMarks {
  /** The request got its slot. */
  start: number;
  /** The last prompt batch was decoded (the first token's moment, once there is one). */
  promptLast: number;
  /** The last token was generated. */
  genLast: number;
  cache: number;
  promptN: number;
  generated: number;
}

/**
 * llama-server's timings (server_slot_stats): the first token comes from the logits of the last prompt batch, so
 * the generation rate is over generated - 1 decode steps.
 */
export function timingsFrom(m: TimingMarks): Timings {
  const promptMs = m.promptLast > 0 ? Math.max(0, m.promptLast - m.start) : 0;
  const predictedMs = m.genLast > 0 ? Math.max(0.001, m.genLast - m.promptLast) : 0;
  const steps = Math.max(0, m.generated - 1);
  return {
    cache_n: m.cache,
    prompt_n: m.promptN,
    prompt_ms: promptMs,
    prompt_per_token_ms: m.promptN > 0 ? promptMs / m.promptN : 0,
    prompt_per_second: promptMs > 0 ? (1e3 / promptMs) * m.promptN : 0,
    predicted_n: m.generated,
    predicted_ms: predictedMs,
    predicted_per_token_ms: steps > 0 ? predictedMs / steps : 0,
    predicted_per_second: predictedMs > 0 ? (1e3 / predictedMs) * steps : 0,
  };
}

/**
 * The request ended with an error before it started: the decoder's start() threw for it (a sampler or grammar it
 * cannot make, a parameter out of its range). The scheduler's own failures say 'scheduler error'.
 */
export function refusedAtStart(s: RequestSummary): boolean {
  return s.reason === 'error' && s.startedAt === null && !(s.error ?? '').startsWith('scheduler error');
}

/** The timings of a finished request, from the scheduler's clock. */
export function timingsOf(s: RequestSummary, generated: number): Timings {
  const first = s.firstTokenAt;
  const t = s.timeline;
  return {
    ...timingsFrom({
      start: s.startedAt ?? 0,
      promptLast: first ?? 0,
      genLast: first !== null && generated > 0 ? s.endedAt : 0,
      cache: s.cachedTokens,
      promptN: Math.max(0, s.promptTokens - s.cachedTokens),
      generated,
    }),
    ...(s.draftTokens > 0 ? { draft_n: s.draftTokens, draft_n_accepted: s.draftAccepted } : {}),
    queue_ms: (t.admittedAt ?? s.endedAt) - s.queuedAt,
    prepare_ms: t.prepareMs,
    restored_n: t.restoredTokens,
    prefill_steps: t.prefillSteps,
    prefill_steps_ms: t.prefillStepMs,
  };
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
  const sent: GeneratedToken[] = [];
  /** Tokens whose text the stop matcher still holds back. */
  let pending: GeneratedToken[] = [];
  let received = 0;
  let tokensAtStop = 0;
  let limited = false;
  let limitTimer: ReturnType<typeof setTimeout> | undefined;
  let lastTokenAt: number | undefined;
  let startedAt = 0;
  const marks: TimingMarks = { start: 0, promptLast: 0, genLast: 0, cache: 0, promptN: 0, generated: 0 };
  const release = (text: string): void => {
    const tokens = pending;
    pending = [];
    sent.push(...tokens);
    sink.onText(text, tokens);
  };
  return new Promise<Outcome>((resolve) => {
    const timeoutMs = deps.config.requestTimeoutMs;
    deps.scheduler.submit(
      {
        client: job.client,
        priority: job.priority,
        tokens: job.tokens,
        options: job.options,
        signal: abort.signal,
        ...(timeoutMs !== undefined ? { timeoutMs } : {}),
        ...(job.slot !== undefined ? { slot: job.slot } : {}),
        ...(job.copyFrom !== undefined ? { copyFrom: job.copyFrom } : {}),
      },
      {
        onStart: (info) => {
          startedAt = performance.now();
          marks.start = startedAt;
          marks.cache = info.reusedTokens;
          if (isGone()) return;
          sink.onStart({ slot: info.slot, timings: () => timingsFrom(marks) });
          if (job.returnProgress) {
            sink.onProgress?.({
              total: job.tokens.length,
              cache: info.reusedTokens,
              processed: info.reusedTokens,
              time_ms: 0,
            });
          }
        },
        ...(job.returnProgress
          ? {
              onPromptProgress: (p: { processed: number; total: number; cached: number }) => {
                marks.promptLast = performance.now();
                marks.promptN = p.processed - p.cached;
                if (!isGone())
                  sink.onProgress?.({
                    total: p.total,
                    cache: p.cached,
                    processed: p.processed,
                    time_ms: performance.now() - startedAt,
                  });
              },
            }
          : {}),
        onToken: (token, piece, probs) => {
          if (matcher.stopped !== null || limited || isGone()) return;
          received++;
          const now = performance.now();
          if (marks.generated === 0) {
            // The first token is sampled from the last prompt batch: the prompt ends here.
            marks.promptLast = now;
            marks.promptN = job.tokens.length - marks.cache;
          }
          marks.generated++;
          marks.genLast = now;
          if (lastTokenAt !== undefined) deps.metrics?.interTokenGap((now - lastTokenAt) / 1000);
          else if (job.tMaxPredictMs !== undefined) {
            limitTimer = setTimeout(() => {
              // The generation phase ran out of time: end as at the token limit.
              limited = true;
              tokensAtStop = received;
              abort.abort();
            }, job.tMaxPredictMs);
          }
          lastTokenAt = now;
          pending.push({ id: token, text: piece, ...(probs !== undefined ? { probs } : {}) });
          const r = matcher.push(piece);
          if (r.text !== '') release(r.text);
          if (r.stop !== null) {
            tokensAtStop = received;
            abort.abort();
          }
        },
        onEnd: (summary, tail) => {
          if (limitTimer !== undefined) clearTimeout(limitTimer);
          const settle = (outcome: Outcome): void => {
            record(deps.metrics, summary, outcome);
            resolve(outcome);
          };
          if (isGone()) return settle({ kind: 'gone' });
          if (matcher.stopped === null && !limited && tail !== '') {
            const r = matcher.push(tail);
            if (r.text !== '') release(r.text);
            if (r.stop !== null) tokensAtStop = received;
          }
          const finished = (
            finish: 'stop' | 'length',
            stopType: Finished['stopType'],
            completion: number,
            truncated: boolean,
          ): Outcome => ({
            kind: 'finished',
            done: {
              finish,
              stopType,
              stoppingWord: matcher.stopped ?? '',
              truncated,
              usage: {
                prompt_tokens: summary.promptTokens,
                completion_tokens: completion,
                total_tokens: summary.promptTokens + completion,
                prompt_tokens_details: { cached_tokens: summary.cachedTokens },
              },
              timings: timingsOf(summary, completion),
              tokens: sent,
              slot: summary.slot,
              ttftMs: summary.firstTokenAt === null ? null : summary.firstTokenAt - summary.queuedAt,
            },
          });
          const shifted = summary.shiftedTokens > 0;
          // A stop string counts the tokens up to the one that completed it; any decoded after it are not sent.
          if (matcher.stopped !== null) return settle(finished('stop', 'word', tokensAtStop, shifted));
          if (limited) {
            const rest = matcher.flush();
            // Every token counted is sent, those without text too (a special token not rendered; bytes of a
            // character the tail would have completed: it is left out here, as it may hold tokens past the limit).
            if (rest !== '' || pending.length > 0) release(rest);
            return settle(finished('length', 'limit', tokensAtStop, shifted));
          }
          const reason = summary.reason;
          if (reason === 'stop' || reason === 'length' || reason === 'context_full') {
            const rest = matcher.flush();
            // Every token counted is sent, those without text too (a special token not rendered).
            if (rest !== '' || pending.length > 0) release(rest);
            const done = reason === 'stop' ? finished('stop', 'eos', summary.generatedTokens, shifted) : null;
            const full = reason === 'context_full' || (reason === 'length' && job.fillsSlot);
            return settle(done ?? finished('length', 'limit', summary.generatedTokens, shifted || full));
          }
          switch (reason) {
            case 'timeout':
              return settle({ kind: 'failed', error: requestTimeout(timeoutMs) });
            case 'shutdown':
              return settle({ kind: 'failed', error: shuttingDown() });
            case 'cancelled':
              // Nobody here asked for it (client gone and stop strings are handled above): nothing to send.
              return settle({ kind: 'gone' });
            default:
              if (refusedAtStart(summary)) {
                // The decoder refused to start it (its sampler or grammar could not be made for this model):
                // the request's fault as llama-server sees it, which answers 400 "Failed to initialize samplers".
                log.warn({ requestId: summary.id, cause: summary.error }, 'the decoder refused the request');
                return settle({ kind: 'failed', error: decoderRefused(summary.error ?? 'unknown reason') });
              }
              log.error({ requestId: summary.id, reason, cause: summary.error }, 'generation failed');
              return settle({ kind: 'failed', error: generationFailed() });
          }
        },
      },
    );
  });
}
