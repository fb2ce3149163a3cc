// Typed wrapper over the native slot-based batch decoder (native/core/batch_decoder.h).
// One step = one llama_decode over every active slot; the step runs on the decoder's own thread
// (native/core/serial_executor.h). It implements the scheduler's Decoder contract (src/scheduler/decoder.ts), which
// owns the option and event types.

import { ArgumentError } from '../errors.ts';
import type { Decoder, ResumePoints, SlotState, StartOptions, StepResult } from '../scheduler/decoder.ts';
import type { Model } from './model.ts';
import {
  awaitNative,
  callNative,
  loadAddon,
  type NativeBatchDecoder,
  type NativeDecoderInfo,
  type NativeDecoderOptions,
  type NativeSpeculativeOptions,
  type NativeStartParams,
  nativeDefaults,
} from './native.ts';
import { fingerprintModel, readSlotFile, type SlotFileTarget, writeSlotFile } from './slot-file.ts';

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
  /**
   * Sliding-window checkpoints per slot (llama-server's --ctx-checkpoints, default 32; 0: none): the window's state
   * saved shortly before each prompt's end, so a later prompt diverging near there resumes instead of prefilling.
   */
  ctxCheckpoints?: number;
  /** Earlier requests' checkpoints closer than this many tokens to an older one are dropped (default 8192). */
  checkpointMinStep?: number;
  /** Speculative decoding (llama-server's --spec-* flags); off by default. */
  speculative?: SpeculativeOptions;
}

/**
 * Speculative decoding through llama.cpp's common_speculative (native/core/speculation.h documents each field): types
 * by llama-server's --spec-type names, draft-simple with a draft model of the same vocabulary.
 */
export interface SpeculativeOptions extends Omit<NativeSpeculativeOptions, 'draftModel'> {
  draftModel?: Model;
}

export interface SlotInfo {
  state: 'idle' | 'prefill' | 'generating';
  cachedTokens: number;
  pendingPrompt: number;
  generated: number;
  /** This request's verified drafts: tokens drafted, and accepted of them. */
  draftTokens: number;
  draftAccepted: number;
}

const FLASH_ATTN = { auto: -1, off: 0, on: 1 } as const;

/** The addon's options for a decoder: the draft model as its native object. */
function nativeOptions(options: DecoderOptions) {
  const { draftModel, ...speculative } = options.speculative ?? { types: [] };
  return {
    ...nativeDecoderOptions(options),
    ...(options.speculative !== undefined
      ? { speculative: { ...speculative, ...(draftModel !== undefined ? { draftModel: draftModel.native } : {}) } }
      : {}),
  };
}

export class BatchDecoder implements Decoder {
  readonly model: Model;
  /** KV cells in all: slots * ctxPerSlot as configured (with kvUnified, one pool any slot may draw on). */
  readonly kvCells: number;
  readonly unifiedKv: boolean;
  readonly #native: NativeBatchDecoder;

  constructor(model: Model, options: DecoderOptions, created?: NativeBatchDecoder) {
    this.model = model;
    this.#native = created ?? callNative(() => new (loadAddon().BatchDecoder)(model.native, nativeOptions(options)));
    this.kvCells = options.slots * options.ctxPerSlot;
    this.unifiedKv = options.kvUnified ?? false;
  }

  /** The constructor's work with the context (and its KV cache) created off the JS thread. */
  static async create(model: Model, options: DecoderOptions): Promise<BatchDecoder> {
    const created = await awaitNative(() => loadAddon().BatchDecoder.create(model.native, nativeOptions(options)));
    return new BatchDecoder(model, options, created);
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

  /** The most tokens a slot drafts in one step (0: no speculative decoding). */
  get draftMax(): number {
    return this.info.draftMax;
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

  /** One llama_decode; with speculative decoding each slot drafts up to draftLimits[slot] tokens (absent: draftMax). */
  async step(tokenBudget?: number, draftLimits?: readonly number[]): Promise<StepResult> {
    const r = await awaitNative(() => this.#native.step(tokenBudget, draftLimits));
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

  /** An idle slot's state (KV, tokens, checkpoints) to a slot file (slot-file.ts); resolves with its size in bytes. */
  async saveSlot(slot: number, path: string): Promise<number> {
    const saved = await this.saveState(slot);
    return writeSlotFile(path, await this.#slotFileTarget(), saved);
  }

  /**
   * Loads a slot file into an idle slot; resolves with the tokens it now holds. A file of another model, KV type or
   * --swa-full, or with more tokens than a slot holds here, is refused (INVALID_ARGUMENT naming why).
   */
  async restoreSlot(slot: number, path: string): Promise<number> {
    const saved = await readSlotFile(path, await this.#slotFileTarget());
    return this.restoreState(slot, saved);
  }

  #target: Promise<SlotFileTarget> | null = null;

  #slotFileTarget(): Promise<SlotFileTarget> {
    if (this.#target === null) {
      const info = this.info;
      const model = this.model.info;
      this.#target = fingerprintModel(model.path, { arch: model.architecture, nParams: model.nParams }).then((fp) => ({
        model: fp,
        kvTypeK: info.kvType,
        kvTypeV: info.kvTypeV,
        swaFull: info.swaFull,
        ctxPerSlot: info.nCtxPerSlot,
      }));
      // A failed read (the file moved) is tried again next time.
      this.#target.catch(() => {
        this.#target = null;
      });
    }
    return this.#target;
  }

  /**
   * An idle slot's KV and tokens in host memory (llama_state_seq_get_data_ext), taken behind any step in flight.
   * The bytes are opaque: restoreState() on a decoder of the same model and KV layout takes them back.
   */
  async saveState(slot: number): Promise<SlotState> {
    const saved = await awaitNative(() => this.#native.saveState(slot));
    return { tokens: Array.from(saved.tokens), state: saved.state, resume: saved.resume };
  }

  /**
   * Loads a state saveState() gave into an idle slot (what it held is dropped); resolves with the tokens it now
   * holds. A state of another model, KV type or pool layout is refused (INVALID_ARGUMENT), the slot left empty.
   */
  restoreState(slot: number, saved: SlotState): Promise<number> {
    return awaitNative(() => this.#native.restoreState(slot, saved.tokens, saved.state));
  }

  /** Drops an idle slot's KV, queued behind any step in flight. */
  eraseSlot(slot: number): Promise<void> {
    return awaitNative(() => this.#native.eraseSlot(slot));
  }

  cachedPrefix(slot: number): number[] {
    return Array.from(callNative(() => this.#native.cachedPrefix(slot)));
  }

  resumePoints(slot: number): ResumePoints {
    return callNative(() => this.#native.resumePoints(slot));
  }

  /** Frees the context (after a running step ends). Idempotent. */
  dispose(): void {
    this.#native.dispose();
  }

  /** dispose(), with the context freed off the JS thread; resolves when it is. */
  release(): Promise<void> {
    return awaitNative(() => this.#native.release());
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
    ctxCheckpoints: options.ctxCheckpoints ?? d.ctxCheckpoints,
    checkpointMinStep: options.checkpointMinStep ?? d.checkpointMinStep,
  };
}

function toNativeParams(o: StartOptions): NativeStartParams {
  if (!Number.isInteger(o.maxTokens) || o.maxTokens < 1)
    throw new ArgumentError('INVALID_ARGUMENT', 'maxTokens must be an integer >= 1');
  // The addon takes one flat object: the start's fields and the sampler's side by side.
  const { sampling = {}, ...start } = o;
  const { logitBias, ...rest } = sampling;
  const p: NativeStartParams = { ...rest, ...start };
  if (logitBias !== undefined) {
    const entries = logitBias instanceof Map ? [...logitBias.entries()] : Object.entries(logitBias);
    p.logitBias = entries.map(([k, v]) => [Number(k), Number(v)]);
  }
  return p;
}
