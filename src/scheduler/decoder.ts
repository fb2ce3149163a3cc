// The contract the scheduler drives a decoder through, owned here (the policy layer): the engine's BatchDecoder
// implements it, the tests' FakeDecoder too. Nothing in this file depends on how decoding is done.

/**
 * A grammar constraint as the chat layer produces it (ChatPrompt.grammar); the decoder's sampler applies it (the
 * addon's GrammarSpec). One shape for all three.
 */
export interface Grammar {
  text: string;
  /** 0 user (from its root on the raw output), 1 output format, 2 tool calls: those start after the generation prompt. */
  kind: number;
  /** Applied only once a trigger appears (optional tool calls). */
  lazy: boolean;
  /** type: 0 token, 1 word, 2 pattern, 3 full pattern. */
  triggers: { type: number; value: string; token: number }[];
  generationPrompt: string;
}

/**
 * How a slot samples; temperature 0 (default) is greedy. llama.cpp's samplers, by their llama-server names. The
 * scheduler passes it to the decoder untouched: what each field means and allows is the HTTP layer's parameter table
 * (src/server/generation/parameters.ts) and the sampler's (native/core/slot_sampler.h).
 */
export interface SamplingOptions {
  temperature?: number;
  dynatempRange?: number;
  dynatempExponent?: number;
  topK?: number;
  topP?: number;
  minP?: number;
  typicalP?: number;
  topNSigma?: number;
  xtcProbability?: number;
  xtcThreshold?: number;
  minKeep?: number;
  seed?: number;
  repeatPenalty?: number;
  presencePenalty?: number;
  frequencyPenalty?: number;
  penaltyLastN?: number;
  dryMultiplier?: number;
  dryBase?: number;
  dryAllowedLength?: number;
  dryPenaltyLastN?: number;
  drySequenceBreakers?: string[];
  mirostat?: number;
  mirostatTau?: number;
  mirostatEta?: number;
  /** The sampler chain by name (llama-server's `samplers`). */
  samplers?: string[];
  ignoreEos?: boolean;
  /** token id -> additive bias (-Infinity or -100 bans a token). */
  logitBias?: ReadonlyMap<number, number> | Readonly<Record<number, number>>;
  grammar?: Grammar;
  /**
   * llama.cpp's reasoning budget (llama-server's reasoning_budget_tokens): at most `tokens` tokens (-1: no limit)
   * between the template's thinking tags `start` and one of `ends`, then `ends[0]` is forced. `generationPrompt`:
   * what the prompt already wrote (it may have opened the block).
   */
  reasoningBudget?: { tokens: number; start: string; ends: readonly string[]; generationPrompt: string };
}

/** What a slot runs: how many tokens, with what prompt bookkeeping; `sampling` goes to the sampler as it is. */
export interface StartOptions {
  maxTokens: number;
  /** Absent: the sampler's defaults (greedy). */
  sampling?: SamplingOptions;
  /** Special tokens whose text the output keeps (a chat template's tool-call markers). */
  preservedTokens?: readonly number[];
  /**
   * Where the prompt's user messages start (token counts). On sliding-window models the prefill pauses at the last
   * one (and at earlier ones far apart) to save a checkpoint there, as llama-server does.
   */
  userStarts?: readonly number[];
  /** Every special token keeps its text (llama-server's --special). */
  renderSpecial?: boolean;
  /** false: the slot's cached prefix is dropped (cache_prompt: false). Default true. */
  reusePrefix?: boolean;
  /** Report each token's probability and the nProbs most likely, from the logits or after the sampler chain. */
  nProbs?: number;
  postSampling?: boolean;
  /** A slot that fills while generating drops the oldest half after the first nKeep tokens (-1: the prompt). */
  contextShift?: boolean;
  nKeep?: number;
  /**
   * The last `resumeTokens` tokens of the prompt are this request's own output so far (it gave its slot up and
   * resumes): the sampler takes them in (penalties, grammar) as if it had generated them, instead of the
   * prompt's. They count as generated, so `maxTokens` is what is left to generate (the request's own less these),
   * and nKeep -1 means the prompt without them. The output's text continues where it stopped: bytes of a character
   * its events held back come out with the next token, none twice. A seeded sampler's random stream starts afresh,
   * so only greedy output is the same as if it had never stopped.
   */
  resumeTokens?: number;
}

export interface TokenProb {
  token: number;
  /** Natural log, or a probability after the sampler chain (postSampling). */
  logprob: number;
}

export interface TokenProbs {
  chosen: TokenProb;
  top: readonly TokenProb[];
}

/** Why the decoder ended a slot. */
export type EndReason = 'stop' | 'length' | 'context_full' | 'cancelled' | 'error';

export interface SlotEvent {
  slot: number;
  /** The generated token, or null when the event only ends the slot (e.g. an end-of-generation token). */
  token: number | null;
  /** Complete UTF-8 text of this token (held-back bytes included once complete). */
  text: string;
  end: EndReason | null;
  error?: string;
  /** Prompt tokens this slot decoded in this step. */
  promptProcessed: number;
  /** Tokens a context shift dropped in this step. */
  shifted?: number;
  /** With nProbs: this token's probability and the most likely tokens. */
  probs?: TokenProbs;
}

export interface StepResult {
  events: SlotEvent[];
  batchTokens: number;
  promptTokens: number;
  generatedTokens: number;
  /** Times the step halved its prompt share because the KV had no room. */
  retries: number;
  decodeMicros: number;
  /**
   * The pool had no room even for the generating slots' next tokens: nothing was decoded and no slot changed.
   * The caller frees cells (evicts an idle slot's cache, preempts a request) and steps again.
   */
  kvFull?: boolean;
  /** Speculative decoding: each draft the step verified (its slot, tokens drafted, accepted of them). */
  drafts?: readonly DraftOutcome[];
  /** Time spent drafting (and mirroring the batch on a draft model), besides decodeMicros. */
  draftMicros?: number;
}

export interface DraftOutcome {
  slot: number;
  drafted: number;
  accepted: number;
}

/**
 * Where a slot's KV (or a saved state) can resume a prompt that shares n tokens with what it holds. Sliding-window
 * layers (Gemma 3) keep only the last window's cells, so a prompt that diverges before the cache's end resumes at n
 * only when n >= from, else at the largest checkpoint <= n (the window's state saved near an earlier prompt's end),
 * else nowhere. Without sliding-window layers from is 0: any prefix.
 */
export interface ResumePoints {
  from: number;
  /** Token counts, ascending. */
  checkpoints: readonly number[];
}

/** Of a common prefix of n tokens, how many `resume` lets a slot keep (reusablePrefix(n) <= n). */
export function reusablePrefix(n: number, resume: ResumePoints | undefined): number {
  if (resume === undefined || n >= resume.from) return n;
  let best = 0;
  for (const c of resume.checkpoints) if (c <= n) best = c;
  return best;
}

/** A slot's KV serialised to host memory, with the tokens it holds. */
export interface SlotState {
  tokens: readonly number[];
  state: Uint8Array;
  /** Absent: any prefix of tokens can be resumed. */
  resume?: ResumePoints;
}

/** What the scheduler needs of a decoder: slots over one model, advanced together one step at a time. */
export interface Decoder {
  readonly slots: number;
  /** Prompt + generated tokens one slot can hold. */
  readonly ctxPerSlot: number;
  /** Most tokens one step may carry. */
  readonly batchSize: number;
  /** KV cells in all. With a unified pool any slot may take them (up to ctxPerSlot); else each has its share. */
  readonly kvCells: number;
  readonly unifiedKv: boolean;
  /** Starts a request on an idle slot; reuses the longest prefix the slot already holds. */
  start(slot: number, tokens: readonly number[], options: StartOptions): { reusedTokens: number; promptTokens: number };
  /** True: the slot is free now. False: the step in flight will end it with a 'cancelled' event. */
  cancel(slot: number): boolean;
  /**
   * One llama_decode over all active slots; generating slots first, prompt chunks fill the budget. With speculative
   * decoding (draftMax > 0) slot i drafts up to draftLimits[i] tokens, verified in the same decode.
   */
  step(tokenBudget: number, draftLimits?: readonly number[]): Promise<StepResult>;
  /** The most tokens a slot drafts per step; 0 or absent: no speculative decoding. */
  readonly draftMax?: number;
  /** The tokens whose KV the slot holds (for choosing the slot with the longest common prefix). */
  cachedPrefix(slot: number): readonly number[];
  /** Where the slot can resume a prompt that shares a prefix with cachedPrefix(); absent: anywhere. */
  resumePoints?(slot: number): ResumePoints;
  /** Idle slot `dst` gets the KV of `src`'s first `count` cached tokens. Between steps. */
  copyPrefix(src: number, dst: number, count: number): number;
  /** An idle slot's KV to a file and back, and dropped; queued behind any step in flight. */
  saveSlot(slot: number, path: string): Promise<number>;
  restoreSlot(slot: number, path: string): Promise<number>;
  eraseSlot(slot: number): Promise<void>;
  /** An idle slot's KV to host memory (llama_state_seq_get_data), queued behind any step in flight. */
  saveState(slot: number): Promise<SlotState>;
  /** Loads a saved state into an idle slot (what it held before is dropped); resolves with the tokens it holds. */
  restoreState(slot: number, saved: SlotState): Promise<number>;
}
