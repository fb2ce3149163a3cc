// The shapes the generation path passes between its parts.
import type { StartOptions, TokenProbs } from '../../scheduler/types.ts';
import type { ApiError } from '../errors.ts';

export type FinishReason = 'stop' | 'length' | 'tool_calls';

export interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
  prompt_tokens_details: { cached_tokens: number };
}

/** llama-server's timings object, on every final response. */
export interface Timings {
  cache_n: number;
  prompt_n: number;
  prompt_ms: number;
  prompt_per_token_ms: number;
  prompt_per_second: number;
  predicted_n: number;
  predicted_ms: number;
  predicted_per_token_ms: number;
  predicted_per_second: number;
  /** With speculative decoding (as llama-server): draft tokens the target verified, and accepted of them. */
  draft_n?: number;
  draft_n_accepted?: number;
  /**
   * This server's, on final responses: where the time before the first token went. Waiting in the queue, admission
   * work between steps (caches saved to RAM, this prompt's restored), prompt tokens restored from RAM, and the steps
   * that decoded the prompt (their time includes the other slots' tokens they carried).
   */
  queue_ms?: number;
  prepare_ms?: number;
  restored_n?: number;
  prefill_steps?: number;
  prefill_steps_ms?: number;
}

/** A request ready for the scheduler. */
export interface PreparedGeneration {
  tokens: number[];
  /** The decoder's options; the HTTP layer always states the sampling. */
  options: StartOptions & Required<Pick<StartOptions, 'sampling'>>;
  stop: string[];
  client: string;
  /** Scheduler priority (higher first), from the request's headers (client-key.ts). */
  priority: number;
  stream: boolean;
  includeUsage: boolean;
  /** Probabilities per generated token: the most likely `nProbs` of each (0 with options.nProbs: only the chosen). */
  nProbs: number;
  returnTokens: boolean;
  returnProgress: boolean;
  /** Every streamed chunk carries the timings so far (timings_per_token). */
  timingsPerToken: boolean;
  /** The token limit is the room left in the slot: reaching it means the context is full (truncated). */
  fillsSlot: boolean;
  /** The generation phase stops after this long, as at its token limit. */
  tMaxPredictMs: number | undefined;
  /** Responses carry __verbose. */
  verbose: boolean;
  /** What llama-server reports as generation_settings. */
  settings: Record<string, unknown>;
  /** Only this slot. */
  slot?: number;
  /** Start from another slot's KV of this prompt (n choices: the first prefills). */
  copyFrom?: { slot: number; tokens: readonly number[] };
}

/** One generated token as it reached the client. */
export interface GeneratedToken {
  id: number;
  /** Its text as sent (complete UTF-8; stop strings removed). */
  text: string;
  probs?: TokenProbs;
}

/** How a generation ended, with what every response shape reports about it. */
export interface Finished {
  finish: 'stop' | 'length';
  /** llama-server's stop_type: end of generation, a stop string, or a limit. */
  stopType: 'eos' | 'word' | 'limit';
  stoppingWord: string;
  /** The context filled up, or a context shift dropped tokens. */
  truncated: boolean;
  usage: Usage;
  timings: Timings;
  /** Every generated token sent, in order. */
  tokens: GeneratedToken[];
  slot: number | null;
  /** Submission to first token (queue and prompt), or null when none came. */
  ttftMs: number | null;
}

/** Prompt processing progress (llama-server's prompt_progress). */
export interface PromptProgress {
  total: number;
  cache: number;
  processed: number;
  time_ms: number;
}

/**
 * The response objects of one route. Text arrives with stop strings already removed; a route that parses its
 * output (chat: tool calls, reasoning) turns it into deltas here.
 */
export interface Presenter<Body extends object = object> {
  /** Chunks sent when the stream opens (chat: the assistant role). */
  open(): object[];
  /** Chunks for newly generated text and the tokens it came from (possibly none, while a parser waits). */
  text(text: string, tokens: readonly GeneratedToken[]): object[];
  /** The chunks that end the stream: whatever is still held back, then the finish reason (and usage). */
  finish(done: Finished, includeUsage: boolean): object[];
  /** The whole answer, when not streamed. */
  completion(text: string, done: Finished): Body;
  /** A prompt progress chunk (return_progress), where the route has one. */
  progress?(p: PromptProgress): object;
  /** false: the stream ends without `data: [DONE]` (llama-server's native /completion). Default true. */
  readonly doneEvent?: boolean;
  /** true: each chunk goes out as an SSE event named by its `type` (the Responses and Messages APIs). */
  readonly namedEvents?: boolean;
  /** The chunks that end a stream that failed after it opened. Default: the error in OpenAI's shape. */
  failure?(error: ApiError): object[];
}

/** How one run ended: finished (with what it reports), failed (the error to answer with), or the client left. */
export type Outcome = { kind: 'finished'; done: Finished } | { kind: 'failed'; error: ApiError } | { kind: 'gone' };
