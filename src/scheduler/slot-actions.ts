// llama-server's slot actions (POST /slots/:id?action=save|restore|erase): an idle slot's KV written to a file, read
// back from one, or dropped. The slot is held for the action, so no request starts on it meanwhile; the KV pool
// learns what the slot holds afterwards. Requests pinned to a slot (id_slot) are admission's business, not this.
import { ArgumentError, StateError } from '../errors.ts';
import type { Decoder } from './types.ts';

export type SlotAction = 'save' | 'restore' | 'erase';

export interface SlotActionResult {
  tokens: number;
  /** Bytes written (save). */
  bytes?: number;
  ms: number;
}

/** What a slot action needs of the KV pool: hold an idle slot, read what it holds, tell what it holds after. */
export interface SlotCells {
  readonly size: number;
  /** Idle and not held by anything else. */
  available(slot: number): boolean;
  hold(slot: number): void;
  cachedPrefix(slot: number): readonly number[];
  /** The slot holds `cells` tokens now. */
  recount(slot: number, cells: number): void;
  /** Ends the hold; the slot's tokens are re-read when next needed. */
  release(slot: number): void;
}

export type SlotFiles = Pick<Decoder, 'saveSlot' | 'restoreSlot' | 'eraseSlot'>;

export class SlotActions {
  readonly #cells: SlotCells;
  readonly #files: SlotFiles;
  readonly #now: () => number;
  /** Called once the slot is free again: requests waiting for it may start. */
  readonly #released: () => void;

  constructor(cells: SlotCells, files: SlotFiles, now: () => number, released: () => void) {
    this.#cells = cells;
    this.#files = files;
    this.#now = now;
    this.#released = released;
  }

  /**
   * Saves, restores or erases a slot's cache. The slot must be idle; no request starts on it until the action
   * ends. Rejects with a StateError when it is busy, an ArgumentError when it does not exist or a file is missing.
   */
  async run(slotId: number, action: SlotAction, path?: string): Promise<SlotActionResult> {
    const cells = this.#cells;
    if (!(Number.isInteger(slotId) && slotId >= 0 && slotId < cells.size))
      throw new ArgumentError('INVALID_ARGUMENT', `slot ${slotId} does not exist (slots 0..${cells.size - 1})`);
    if (!cells.available(slotId)) throw new StateError('BUSY', `slot ${slotId} is busy`);
    if (action !== 'erase' && path === undefined) throw new ArgumentError('INVALID_ARGUMENT', `${action} needs a file`);
    cells.hold(slotId);
    const t0 = this.#now();
    try {
      if (action === 'save') {
        const tokens = cells.cachedPrefix(slotId).length;
        const bytes = await this.#files.saveSlot(slotId, path ?? '');
        return { tokens, bytes, ms: this.#now() - t0 };
      }
      if (action === 'restore') {
        cells.recount(slotId, 0);
        const tokens = await this.#files.restoreSlot(slotId, path ?? '');
        cells.recount(slotId, tokens);
        return { tokens, ms: this.#now() - t0 };
      }
      const erased = cells.cachedPrefix(slotId).length;
      await this.#files.eraseSlot(slotId);
      cells.recount(slotId, 0);
      return { tokens: erased, ms: this.#now() - t0 };
    } finally {
      cells.release(slotId);
      this.#released();
    }
  }
}
