// Contracts between the scheduler (policy) and the HTTP layer above it; the one with the decoder below is in
// decoder.ts. The scheduler sees the engine only through Decoder, so its tests run against a fake.

import type { DraftOutcome, EndReason, StartOptions, TokenProbs } from './decoder.ts';
import type { StepTurns } from './step-turns.ts';

export type { Decoder, EndReason, StartOptions, StepResult, TokenProb, TokenProbs } from './decoder.ts';

/** One client's line in the queue. */
export interface ClientWaiting {
  client: string;
  requests: number;
  /** Prompt tokens of its waiting requests, summed. */
  tokens: number;
}

export interface SchedulerOptions {
  /** Requests waiting for a slot; more are refused (HTTP 429). Default 64. */
  maxQueuedRequests?: number;
  /** Prompt tokens waiting for a slot, summed; more are refused (HTTP 429). Default 16 * ctxPerSlot. */
  maxQueuedTokens?: number;
  /** Tokens per step (generation tokens first, prompt chunks fill the rest). Default decoder.batchSize. */
  stepTokenBudget?: number;
  /** Retry-After hint, in seconds, given with a queue-full refusal. Default 1. */
  retryAfterSeconds?: number;
  /**
   * With speculative decoding (decoder.draftMax > 0), how long each slot drafts in a step: 'adaptive' (default) from
   * the slot's measured acceptance and the step's measured cost (src/scheduler/draft-policy.ts), so that drafting
   * switches itself off when it would cost throughput; 'max': always the decoder's maximum, as llama-server.
   */
  draftPolicy?: 'adaptive' | 'max';
  /** Clock for tests; default performance.now(). */
  now?: () => number;
  /**
   * A common prefix shorter than this doesn't make an idle slot preferred over the least recently used
   * one (src/scheduler/slot-choice.ts explains the default). Default 16.
   */
  minReusePrefix?: number;
  /**
   * Bytes of host RAM for prompt states (llama-server's --cache-ram): a slot's KV is saved there before the slot
   * is reused for another prompt or its cells are taken back, and restored when its prompt returns. 0 (default):
   * off.
   */
  promptCacheBytes?: number;
  /**
   * With a unified KV pool, output tokens a request is sure of when admitted (at most its maxTokens): it starts
   * only when its prompt and these fit the free cells. Default 128.
   */
  outputReserve?: number;
  /** Shared by the schedulers of several models on one machine: their steps take turns (src/scheduler/step-turns.ts). */
  turns?: StepTurns;
}

export interface GenerationRequest {
  /** Fairness key: API key, else the request's `user`, else the remote address. */
  client: string;
  /**
   * Higher is admitted first; fairness between clients holds within one priority. An integer, default 0
   * (the scale of the Gateway API Inference Extension's InferenceObjective priority).
   */
  priority?: number;
  tokens: readonly number[];
  options: StartOptions;
  /** Milliseconds from submission after which the request is cancelled with reason 'timeout'. */
  timeoutMs?: number;
  /** Aborting cancels the request (reason 'cancelled'), e.g. on client disconnect. */
  signal?: AbortSignal;
  /** Only this slot (llama-server's id_slot): the request waits for it. */
  slot?: number;
  /**
   * Start from the KV of another slot's first `tokens` cached tokens (n choices of one prompt: the first
   * prefills it, the others copy it). Ignored when that slot no longer holds them.
   */
  copyFrom?: { slot: number; tokens: readonly number[] };
}

/** Why a request ended. 'timeout' and 'shutdown' are the scheduler's own cancellations. */
export type RequestEndReason = EndReason | 'timeout' | 'shutdown';

export interface RequestSummary {
  id: string;
  reason: RequestEndReason;
  error?: string;
  slot: number | null;
  promptTokens: number;
  /** Prompt tokens whose KV was reused from the slot's cache. */
  cachedTokens: number;
  generatedTokens: number;
  /** Speculative decoding: draft tokens the target verified, and how many of them it accepted. */
  draftTokens: number;
  draftAccepted: number;
  /** Tokens dropped by context shifts while generating (then the answer is truncated). */
  shiftedTokens: number;
  /** Times it gave its slot up to a full KV pool and resumed. */
  preemptions: number;
  /** Milliseconds, from the scheduler clock. */
  queuedAt: number;
  startedAt: number | null;
  firstTokenAt: number | null;
  endedAt: number;
  /** Where the time before the first token went (the first run on a slot; a resume after a preemption not counted). */
  timeline: RequestTimeline;
}

export interface RequestTimeline {
  /** When admission took it from the queue (ms, scheduler clock); null: it never left the queue. */
  admittedAt: number | null;
  /** Admission work between steps before it could start: other slots' caches saved to RAM, its own restored. */
  prepareMs: number;
  /** Prompt tokens restored from the host-RAM cache. */
  restoredTokens: number;
  /** Steps that decoded part of its prompt, and the time they took (they also carried other slots' tokens). */
  prefillSteps: number;
  prefillStepMs: number;
}

export interface GenerationHandlers {
  /** The request got a slot (once: a request that resumes after a preemption is not started again). */
  onStart?(info: { slot: number; reusedTokens: number }): void;
  /** A step decoded part of the prompt: `processed` of `total` prompt tokens are in the KV (cached included). */
  onPromptProgress?(info: { processed: number; total: number; cached: number }): void;
  /** One generated token and its text (complete UTF-8; may be empty), with its probabilities when asked for. */
  onToken?(token: number, text: string, probs?: TokenProbs): void;
  /** Exactly once per request, after its last onToken. `text` is any held-back tail. */
  onEnd(summary: RequestSummary, text: string): void;
}

export interface RequestHandle {
  readonly id: string;
  /** Ends the request (reason 'cancelled'); its slot is free within one step. Idempotent. */
  cancel(): void;
  readonly done: Promise<RequestSummary>;
}

export interface StepStats {
  /** The whole step as the scheduler waited for it: queueing on the step thread, the decode, sampling, events. */
  durationMs: number;
  /** Of which llama_decode itself (the decoder's own clock). */
  decodeMs: number;
  batchTokens: number;
  promptTokens: number;
  generatedTokens: number;
  busySlots: number;
  /** Speculative decoding: each draft the step verified. */
  drafts?: readonly DraftOutcome[];
}

/** What the prompt cache did for one admission, or when it kept a slot's state. */
export type PromptCacheEvent =
  | { kind: 'hit'; tokens: number; bytes: number }
  | { kind: 'miss' }
  | { kind: 'save_failed' }
  | { kind: 'saved'; tokens: number; bytes: number };

/** For metrics (src/metrics/server-metrics.ts): the scheduler reports what happened, it keeps no counters. */
export interface SchedulerObserver {
  onStep?(stats: StepStats): void;
  onRequestEnd?(summary: RequestSummary): void;
  onRejected?(cause: 'queue_full' | 'context_exceeded' | 'shutting_down'): void;
  /** A running request gave its slot up because the KV pool ran out; it waits to resume. */
  onPreempted?(info: { id: string; generatedTokens: number }): void;
  onPromptCache?(event: PromptCacheEvent): void;
}

export interface SlotSnapshot {
  id: number;
  state: 'idle' | 'prefill' | 'generating';
  cachedTokens: number;
  request: {
    id: string;
    client: string;
    priority: number;
    promptTokens: number;
    /** Prompt tokens whose KV was reused from the slot's cache (a prompt cache hit). */
    reusedTokens: number;
    generatedTokens: number;
    /** Speculative decoding: draft tokens verified for this request, and accepted of them. */
    draftTokens: number;
    draftAccepted: number;
    startedAt: number;
  } | null;
}
