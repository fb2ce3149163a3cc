// The real decoder with a record of its steps: which slots each step decoded for, and whether one is in flight.
// Tests use it to check what a client cannot see: that decoding for a cancelled request stopped (no later step
// decodes for its slot) and that the decoder itself, not only the scheduler, holds the slot idle. The decoder's
// own slot state is read only between steps (a step may be changing it).
import type { BatchDecoder, SlotInfo } from '../../src/engine/index.ts';
import type { Decoder, SlotState } from '../../src/scheduler/decoder.ts';
import type { StartOptions, StepResult } from '../../src/scheduler/types.ts';

interface StepRecord {
  /** Each slot's state as the decoder held it when the step was called (between steps). */
  before: string[];
  /** Slots the step decoded for: a token sampled or prompt tokens processed. */
  decoded: Set<number>;
  /** Slots the step ended, with the reason. */
  ended: Map<number, string>;
  ms: number;
}

export class StepLog implements Decoder {
  readonly real: BatchDecoder;
  readonly records: StepRecord[] = [];
  /** Every start() the decoder was given, in order: the slot and the whole prompt's tokens (the rendered prompt). */
  readonly starts: Array<{ slot: number; tokens: number[] }> = [];
  /** The most KV cells the decoder held after any step (its own count). */
  maxCellsUsed = 0;
  #inFlight = false;
  #waiters: Array<() => void> = [];

  constructor(real: BatchDecoder) {
    this.real = real;
  }

  get slots(): number {
    return this.real.slots;
  }
  get ctxPerSlot(): number {
    return this.real.ctxPerSlot;
  }
  get batchSize(): number {
    return this.real.batchSize;
  }
  get kvCells(): number {
    return this.real.kvCells;
  }
  get unifiedKv(): boolean {
    return this.real.unifiedKv;
  }
  /** Steps started so far: a mark for decodedFor(). */
  get started(): number {
    return this.records.length + (this.#inFlight ? 1 : 0);
  }
  get inFlight(): boolean {
    return this.#inFlight;
  }

  start(
    slot: number,
    tokens: readonly number[],
    options: StartOptions,
  ): { reusedTokens: number; promptTokens: number } {
    const started = this.real.start(slot, tokens, options);
    this.starts.push({ slot, tokens: [...tokens] });
    return started;
  }
  cancel(slot: number): boolean {
    return this.real.cancel(slot);
  }
  cachedPrefix(slot: number): readonly number[] {
    return this.real.cachedPrefix(slot);
  }
  copyPrefix(src: number, dst: number, count: number): number {
    return this.real.copyPrefix(src, dst, count);
  }
  saveSlot(slot: number, path: string): Promise<number> {
    return this.real.saveSlot(slot, path);
  }
  restoreSlot(slot: number, path: string): Promise<number> {
    return this.real.restoreSlot(slot, path);
  }
  eraseSlot(slot: number): Promise<void> {
    return this.real.eraseSlot(slot);
  }
  saveState(slot: number): Promise<SlotState> {
    return this.real.saveState(slot);
  }
  restoreState(slot: number, saved: SlotState): Promise<number> {
    return this.real.restoreState(slot, saved);
  }

  async step(tokenBudget: number): Promise<StepResult> {
    const before = Array.from({ length: this.real.slots }, (_, i) => this.real.slotInfo(i).state);
    this.#inFlight = true;
    const t0 = performance.now();
    try {
      const result = await this.real.step(tokenBudget);
      const record: StepRecord = { before, decoded: new Set(), ended: new Map(), ms: performance.now() - t0 };
      for (const ev of result.events) {
        if (ev.token !== null || ev.promptProcessed > 0) record.decoded.add(ev.slot);
        if (ev.end !== null) record.ended.set(ev.slot, ev.end);
      }
      this.records.push(record);
      this.maxCellsUsed = Math.max(this.maxCellsUsed, this.real.info.kvCellsUsed);
      return result;
    } finally {
      this.#inFlight = false;
      // Told before the scheduler's continuation runs (it was queued later): no step is in flight for them.
      for (const w of this.#waiters.splice(0)) w();
    }
  }

  /** Steps started at or after the mark `since` (a `started` value) that decoded for the slot. */
  decodedFor(slot: number, since: number): number {
    return this.records.slice(since).filter((r) => r.decoded.has(slot)).length;
  }

  /** The decoder's state of the slot when the first step started at or after the mark `since` was called. */
  stateAtStep(slot: number, since: number): string | undefined {
    return this.records[since]?.before[slot];
  }

  /** Resolves when no step is in flight: at once, or when the one in flight ends. */
  between(): Promise<void> {
    if (!this.#inFlight) return Promise.resolve();
    return new Promise((resolve) => this.#waiters.push(resolve));
  }

  /** The decoder's own view of a slot, read between steps. */
  async slotInfo(slot: number): Promise<SlotInfo> {
    await this.between();
    return this.real.slotInfo(slot);
  }

  /** Every slot's state as the decoder holds it, read between steps. */
  async states(): Promise<string[]> {
    await this.between();
    return Array.from({ length: this.real.slots }, (_, i) => this.real.slotInfo(i).state);
  }

  /** The median step duration so far, ms. */
  medianStepMs(): number {
    const ms = this.records.map((r) => r.ms).sort((a, b) => a - b);
    return ms[Math.floor(ms.length / 2)] ?? 0;
  }
}
