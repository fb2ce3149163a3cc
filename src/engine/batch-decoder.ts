// Typed wrapper over the native slot-based batch decoder (native/core/batch_decoder.h).
// One step = one llama_decode over every active slot; the step runs on the decoder's own thread
// (native/core/serial_executor.h).
import { ArgumentError } from '../errors.ts';
import type { Model } from './model.ts';
import {
  awaitNative,
  callNative,
  loadAddon,
  type NativeBatchDecoder,
  type NativeDecoderInfo,
  type NativeDecoderOptions,
  type NativeSamplingParams,
  type NativeStartParams,
  nativeDefaults,
} from './native.ts';

export interface DecoderOptions {
  slots: number;
  /** Context (prompt + generated tokens) of each slot. */
  ctxPerSlot: number;
  /** One KV buffer for all slots instead of one per slot. */
  kvUnified?: boolean;
  /**
   * With kvUnified: the most one slot may use of the shared pool of slots * ctxPerSlot cells (default ctxPerSlot).
   * `ctxPerSlot` (the getter) then reports this limit.
   */
  slotCtxMax?: number;
  /** Most tokens in one step (llama.cpp n_batch). */
  batchSize?: number;
  /** Physical batch (llama.cpp n_ubatch). */
  ubatchSize?: number;
  threads?: number;
  threadsBatch?: number;
  flashAttn?: 'auto' | 'on' | 'off';
  /** K and V (V unless kvTypeV is given): f32 f16 bf16 q8_0 q4_0 q4_1 iq4_nl q5_0 q5_1. */
  kvType?: string;
  kvTypeV?: string;
  /** KV cache on the GPU with the layers (default true). */
  offloadKv?: boolean;
  /** Full-size sliding-window KV (more memory, more prefix reuse on SWA models like Gemma 3). */
  swaFull?: boolean;
}

/** temperature 0 (default) is greedy; the rest as in llama.cpp's samplers. */
export interface SamplingOptions extends Omit<NativeSamplingParams, 'logitBias'> {
  /** token id -> additive bias (-100 bans a token). */
  logitBias?: ReadonlyMap<number, number> | Readonly<Record<number, number>>;
}

export interface StartOptions extends SamplingOptions {
  maxTokens: number;
  /** Special tokens whose text the output keeps (a chat template's tool-call markers). */
  preservedTokens?: readonly number[];
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
}

export interface TokenProb {
  token: number;
  /** Natural log; a probability instead when postSampling was asked for. */
  logprob: number;
}

export type EndReason = 'stop' | 'length' | 'context_full' | 'cancelled' | 'error';

export interface SlotEvent {
  slot: number;
  /** The generated token, or null when the event only ends the slot (e.g. an end-of-generation token). */
  token: number | null;
  /** Complete UTF-8 text of this token (held-back bytes included once complete). */
  text: string;
  end: EndReason | null;
  error?: string;
  promptProcessed: number;
  /** Tokens a context shift dropped in this step. */
  shifted?: number;
  /** With nProbs: this token's probability and the most likely tokens. */
  probs?: { chosen: TokenProb; top: TokenProb[] };
}

export interface StepResult {
  events: SlotEvent[];
  batchTokens: number;
  promptTokens: number;
  generatedTokens: number;
  retries: number;
  decodeMicros: number;
}

export interface SlotInfo {
  state: 'idle' | 'prefill' | 'generating';
  cachedTokens: number;
  pendingPrompt: number;
  generated: number;
}

const FLASH_ATTN = { auto: -1, off: 0, on: 1 } as const;

export class BatchDecoder {
  readonly model: Model;
  readonly #native: NativeBatchDecoder;

  constructor(model: Model, options: DecoderOptions) {
    this.model = model;
    const addon = loadAddon();
    this.#native = callNative(() => new addon.BatchDecoder(model.native, nativeDecoderOptions(options)));
  }

  get info(): NativeDecoderInfo {
    return callNative(() => this.#native.info());
  }

  get slots(): number {
    return this.info.nSlots;
  }

  get ctxPerSlot(): number {
    return this.info.nCtxPerSlot;
  }

  get batchSize(): number {
    return this.info.nBatch;
  }

  get disposed(): boolean {
    return this.#native.disposed;
  }

  /** Starts a request on an idle slot, reusing the longest prefix of its cached tokens. */
  start(
    slot: number,
    tokens: Int32Array | readonly number[],
    options: StartOptions,
  ): { reusedTokens: number; promptTokens: number } {
    return callNative(() => this.#native.start(slot, tokens, toNativeParams(options)));
  }

  /**
   * Stops the slot's request; its KV stays cached for reuse. Safe during a step. Returns true when the
   * slot is free at once, false when the step in flight will end it with a 'cancelled' event.
   */
  cancel(slot: number): boolean {
    return callNative(() => this.#native.cancel(slot));
  }

  /** Drops the slot's cached KV. */
  clear(slot: number): void {
    callNative(() => this.#native.clear(slot));
  }

  async step(tokenBudget?: number): Promise<StepResult> {
    const r = await awaitNative(() => this.#native.step(tokenBudget));
    return {
      ...r,
      events: r.events.map((e) => ({
        slot: e.slot,
        token: e.token >= 0 ? e.token : null,
        text: e.text,
        end: e.end === '' ? null : e.end,
        ...(e.error !== undefined ? { error: e.error } : {}),
        promptProcessed: e.promptProcessed,
        ...(e.shifted !== undefined ? { shifted: e.shifted } : {}),
        ...(e.chosen !== undefined ? { probs: { chosen: e.chosen, top: e.top ?? [] } } : {}),
      })),
    };
  }

  slotInfo(slot: number): SlotInfo {
    return callNative(() => this.#native.slotInfo(slot));
  }

  /** Idle slot `dst` gets the KV of `src`'s first `count` cached tokens (all by default). Between steps. */
  copyPrefix(src: number, dst: number, count?: number): number {
    return callNative(() => this.#native.copyPrefix(src, dst, count));
  }

  /** An idle slot's KV and tokens to a file (llama_state_seq_save_file); resolves with the bytes written. */
  saveSlot(slot: number, path: string): Promise<number> {
    return awaitNative(() => this.#native.saveSlot(slot, path));
  }

  /** Loads a saved slot into an idle slot; resolves with the tokens it now holds. */
  restoreSlot(slot: number, path: string): Promise<number> {
    return awaitNative(() => this.#native.restoreSlot(slot, path));
  }

  /** Drops an idle slot's KV, queued behind any step in flight. */
  eraseSlot(slot: number): Promise<void> {
    return awaitNative(() => this.#native.eraseSlot(slot));
  }

  cachedTokens(slot: number): number[] {
    return Array.from(callNative(() => this.#native.cachedTokens(slot)));
  }

  /** Frees the context (after a running step ends). Idempotent. */
  dispose(): void {
    this.#native.dispose();
  }

  [Symbol.dispose](): void {
    this.dispose();
  }
}

/**
 * The addon's spelling of DecoderOptions (also used by the memory probe). What the caller leaves out is the core's
 * default (native/core/batch_decoder.h DecoderOptions), except that the physical batch follows batchSize and the
 * batch threads follow threads.
 */
export function nativeDecoderOptions(options: DecoderOptions): Required<NativeDecoderOptions> {
  const d = nativeDefaults().decoder;
  return {
    nSlots: options.slots,
    nCtxPerSlot: options.ctxPerSlot,
    nCtxSlotMax: options.slotCtxMax ?? d.nCtxSlotMax,
    kvUnified: options.kvUnified ?? d.kvUnified,
    nBatch: options.batchSize ?? d.nBatch,
    nUbatch: options.ubatchSize ?? options.batchSize ?? d.nUbatch,
    nThreads: options.threads ?? d.nThreads,
    nThreadsBatch: options.threadsBatch ?? options.threads ?? d.nThreadsBatch,
    flashAttn: options.flashAttn === undefined ? d.flashAttn : FLASH_ATTN[options.flashAttn],
    kvType: options.kvType ?? d.kvType,
    kvTypeV: options.kvTypeV ?? d.kvTypeV,
    offloadKv: options.offloadKv ?? d.offloadKv,
    swaFull: options.swaFull ?? d.swaFull,
  };
}

function toNativeParams(o: StartOptions): NativeStartParams {
  if (!Number.isInteger(o.maxTokens) || o.maxTokens < 1)
    throw new ArgumentError('INVALID_ARGUMENT', 'maxTokens must be an integer >= 1');
  const { logitBias, ...rest } = o;
  const p: NativeStartParams = rest;
  if (logitBias !== undefined) {
    const entries = logitBias instanceof Map ? [...logitBias.entries()] : Object.entries(logitBias);
    p.logitBias = entries.map(([k, v]) => [Number(k), Number(v)]);
  }
  return p;
}
