// The KV pool: what each slot's cells hold and who runs on them, and the decisions about cells. It owns each slot's
// cache as the scheduler knows it (the tokens, their count, when it was last used, whether RAM holds it already, a
// hold while something works on it) and the host-RAM prompt cache around it (keep a slot's state before its cells
// are reused or given back, restore one when its prompt returns). Admission asks it where a request goes and what
// must be freed or restored first; with a unified pool a request fits when its prompt and an output reservation
// fit the free cells, idle slots' caches giving theirs back least recently used first. A step that finds the pool
// full asks it to make room: an idle cache goes back, else the most recently started request gives its slot up.
// It reads the requests only through Tenant and drives the decoder only through PoolDecoder.
import { type ResumePoints, reusablePrefix } from './decoder.ts';
import { type CachedPrompt, PromptCache, type PromptCacheStats } from './prompt-cache.ts';
import { chooseSlot, commonPrefix } from './slot-choice.ts';
import type { Decoder, PromptCacheEvent } from './types.ts';

/** What the pool reads of the request running on a slot. */
export interface Tenant {
  /** When it first started (a resumed request keeps that time): the latest to start gives its slot up first. */
  readonly startedAt: number | null;
  /** Set while a cancel waits for the step in flight: its slot frees itself, so it is never preempted. */
  readonly cancel: object | null;
}

/** The decoder calls the pool makes: reading slots' caches, copying, saving, restoring and erasing them. */
export type PoolDecoder = Pick<
  Decoder,
  | 'slots'
  | 'kvCells'
  | 'unifiedKv'
  | 'cachedPrefix'
  | 'resumePoints'
  | 'copyPrefix'
  | 'saveState'
  | 'restoreState'
  | 'eraseSlot'
>;

export interface KvPoolOptions {
  /** A common prefix shorter than this is not worth choosing a slot for, restoring or saving. */
  minReusePrefix: number;
  /** Output tokens a request is sure of when admitted to a unified pool (at most what it has left to generate). */
  outputReserve: number;
  /** Bytes of host RAM for slots' states; 0: off. */
  promptCacheBytes: number;
}

/** Where a request goes and what must happen first. */
export interface Placement {
  readonly slot: number;
  /** Idle slots whose cells go back to the pool (saved to RAM first). */
  readonly evict: readonly number[];
  /** A RAM entry to load into the slot instead of its own cache. */
  readonly restore: CachedPrompt | null;
  readonly restorePrefix: number;
}

/** What the step loop does for the pool when it must take cells from running requests. */
export interface RoomActions<T extends Tenant> {
  /** Stop this request and queue it again to resume; the pool then takes its slot's cells back. */
  preempt(slot: number, tenant: T): void;
  /** These requests cannot go on: one request alone fills the pool (its slot's context ran out). */
  overflow(tenants: readonly T[]): void;
}

interface PoolSlot<T> {
  readonly id: number;
  tenant: T | null;
  /** Cells the tenant was admitted with: its prompt and its output reservation. */
  reservedCells: number;
  /** The slot's cached tokens, read from the decoder between steps; null until read after a change. */
  cache: readonly number[] | null;
  /** Cached token count (estimated while a request runs: the decoder can't be read during a step). */
  cachedCount: number;
  /** Use counter value when the slot last ended a request (for least-recently-used choice). */
  lastUsed: number;
  /** A slot action, an admission or a give-back holds it: no request starts on it meanwhile. */
  reserved: boolean;
  /** The RAM cache holds the slot's cache as it is now (nothing new to save); false once a request changes it. */
  saved: boolean;
}

export class KvPool<T extends Tenant> {
  readonly #decoder: PoolDecoder;
  readonly #onPromptCache: (event: PromptCacheEvent) => void;
  readonly #kvCells: number;
  readonly #unified: boolean;
  readonly #minReusePrefix: number;
  readonly #outputReserve: number;
  readonly #promptCache: PromptCache;
  readonly #slots: PoolSlot<T>[];
  #uses = 0;

  constructor(decoder: PoolDecoder, options: KvPoolOptions, onPromptCache: (event: PromptCacheEvent) => void) {
    this.#decoder = decoder;
    this.#onPromptCache = (event) => guard(() => onPromptCache(event));
    this.#kvCells = decoder.kvCells;
    this.#unified = decoder.unifiedKv;
    this.#minReusePrefix = options.minReusePrefix;
    this.#outputReserve = options.outputReserve;
    this.#promptCache = new PromptCache(options.promptCacheBytes);
    this.#slots = Array.from({ length: decoder.slots }, (_, id) => ({
      id,
      tenant: null,
      reservedCells: 0,
      cache: null,
      cachedCount: 0,
      lastUsed: -Infinity,
      reserved: false,
      saved: false,
    }));
  }

  // --- what the pool holds --------------------------------------------------------------------------------

  /** Slots in the pool. */
  get size(): number {
    return this.#slots.length;
  }

  /** The request running on the slot; null when idle (or no such slot). */
  tenant(slot: number): T | null {
    return this.#slots[slot]?.tenant ?? null;
  }

  /** Tokens the slot's cells hold, as far as the pool knows (estimated while a request runs). */
  cachedCount(slot: number): number {
    return this.#slots[slot]?.cachedCount ?? 0;
  }

  /** Slots running a request. */
  get busy(): number {
    return this.#slots.reduce((n, s) => n + (s.tenant ? 1 : 0), 0);
  }

  /** Cells holding tokens, idle slots' caches included. */
  get cellsUsed(): number {
    return this.#slots.reduce((n, s) => n + s.cachedCount, 0);
  }

  /** Cells the running requests hold. */
  get runningCells(): number {
    return this.#slots.reduce((n, s) => n + (s.tenant ? s.cachedCount : 0), 0);
  }

  /** Slots a request could start on now: idle and not held. */
  idleSlots(): number[] {
    return this.#slots.filter((s) => s.tenant === null && !s.reserved).map((s) => s.id);
  }

  /** Idle and not held (a slot action may take it). */
  available(slot: number): boolean {
    const s = this.#slots[slot];
    return s !== undefined && s.tenant === null && !s.reserved;
  }

  promptCacheStats(): PromptCacheStats {
    return this.#promptCache.stats();
  }

  /** Only between steps: the decoder's cache must not be read while a step may change it. */
  cachedPrefix(slot: number): readonly number[] {
    return this.#cachedPrefixOf(this.#at(slot));
  }

  // --- admission --------------------------------------------------------------------------------------------

  /**
   * Where a request for `prompt` (with `outputLeft` tokens still to generate) goes: the idle slot that reuses most
   * (or `pinned`), a RAM entry to restore when that reuses clearly more, and with a unified pool the idle caches
   * that must give their cells back first. Null: it does not fit while others run (it waits for them).
   */
  place(prompt: readonly number[], outputLeft: number, pinned?: number): Placement | null {
    const idle = this.#slots.filter((s) => s.tenant === null && !s.reserved);
    let slot: PoolSlot<T> | undefined;
    let own = 0;
    if (pinned !== undefined) {
      slot = this.#slots[pinned];
      if (slot !== undefined) own = this.#reusable(slot, prompt);
    } else {
      const candidates = idle.map((s) => ({
        id: s.id,
        cachedPrefix: this.#cachedPrefixOf(s),
        resume: this.#resumePoints(s),
        lastUsed: s.lastUsed,
      }));
      const choice = chooseSlot(candidates, prompt, this.#minReusePrefix);
      slot = choice === null ? undefined : this.#slots[choice.slot];
      own = choice?.prefix ?? 0;
    }
    if (slot === undefined) throw new Error('no idle slot was chosen');
    // A prompt the slot has forgotten but the RAM cache kept: restore it when that reuses clearly more.
    let restore: CachedPrompt | null = null;
    let restorePrefix = 0;
    if (this.#promptCache.enabled) {
      const best = this.#promptCache.best(prompt);
      const usable = best === null ? 0 : Math.min(best.prefix, prompt.length - 1);
      if (best !== null && usable >= this.#minReusePrefix && usable > own + this.#minReusePrefix) {
        restore = best.entry;
        restorePrefix = usable;
        // Not the slot whose own cache served this prompt best: that one may serve the next.
        if (pinned === undefined) slot = lruOf(idle) ?? slot;
      }
    }
    const evict = this.#unified ? this.#cellsFor(prompt.length, outputLeft, slot, idle) : [];
    if (evict === null) return null;
    return { slot: slot.id, evict: evict.map((s) => s.id), restore, restorePrefix };
  }

  /**
   * Readies the placed slot for `prompt`: the evicted caches go back to the pool, the slot's own cache is kept in
   * RAM when the prompt would overwrite it, the RAM entry is restored. Resolves with the tokens restored (0: none).
   * Never rejects: when a save or restore fails the slot's cache is unknown and the request starts cold.
   */
  async prepare(placement: Placement, prompt: readonly number[]): Promise<number> {
    const slot = this.#at(placement.slot);
    slot.reserved = true;
    try {
      for (const victim of placement.evict) await this.#giveBack(this.#at(victim));
      // The slot's own cache is about to be overwritten by another prompt: keep it in RAM first.
      if (placement.restore !== null || commonPrefix(this.#cachedPrefixOf(slot), prompt) < slot.cachedCount)
        await this.#keep(slot);
      if (placement.restore !== null) {
        await this.#restore(slot, placement.restore, placement.restorePrefix);
        return placement.restorePrefix;
      }
    } catch {
      slot.cache = null;
      this.#onPromptCache({ kind: 'miss' });
    } finally {
      slot.reserved = false;
    }
    return 0;
  }

  /**
   * A new prompt (not a resume) starts on its placed slot: with the RAM cache on, that is a miss unless a restore or
   * the slot's own cache serves it.
   */
  countLookup(placement: Placement, prompt: readonly number[]): void {
    if (!this.#promptCache.enabled || placement.restore !== null) return;
    if (this.#reusable(this.#at(placement.slot), prompt) < this.#minReusePrefix) {
      this.#promptCache.missed();
      this.#onPromptCache({ kind: 'miss' });
    }
  }

  /** The KV slot `src` holds of `tokens`, copied into idle slot `dst` (when `src` still holds some). Between steps. */
  copyPrefix(src: number, tokens: readonly number[], dst: number): void {
    if (src === dst) return;
    const source = this.#slots[src];
    if (source === undefined || source.reserved) return;
    const held = this.#decoder.cachedPrefix(src);
    let n = 0;
    while (n < held.length && n < tokens.length && held[n] === tokens[n]) n++;
    if (n === 0) return;
    this.#decoder.copyPrefix(src, dst, n);
    this.#at(dst).cache = null;
  }

  /**
   * A request started on the slot, reusing `reused` cached tokens, admitted with a prompt of `promptLength` tokens
   * and `outputLeft` still to generate.
   */
  occupy(slot: number, tenant: T, reused: number, promptLength: number, outputLeft: number): void {
    const s = this.#at(slot);
    s.tenant = tenant;
    s.reservedCells = promptLength + Math.min(outputLeft, this.#outputReserve);
    s.cache = null;
    s.cachedCount = reused;
    s.saved = false;
  }

  /** The slot's request ended or gave it up: the slot is idle, the most recently used. */
  vacate(slot: number): void {
    const s = this.#at(slot);
    s.tenant = null;
    s.cache = null;
    s.lastUsed = ++this.#uses;
  }

  /** The slot holds `cells` tokens now (the step loop's estimate while a request runs); its tokens are re-read. */
  recount(slot: number, cells: number): void {
    this.#at(slot).cachedCount = cells;
  }

  /** The decoder's copy of the slot changed in a way the pool cannot tell (a failed start or step): re-read it. */
  forget(slot: number): void {
    this.#at(slot).cache = null;
  }

  /** Holds an idle slot for work outside the pool (a slot action): no request starts on it until release(). */
  hold(slot: number): void {
    this.#at(slot).reserved = true;
  }

  /** Ends a hold; the decoder's copy is the truth now, re-read when next needed. */
  release(slot: number): void {
    const s = this.#at(slot);
    s.reserved = false;
    s.cache = null;
  }

  // --- a full pool ------------------------------------------------------------------------------------------

  /**
   * The pool had no cell for the running requests' next tokens. An idle slot's cache goes back first (least
   * recently used first, kept in RAM); failing that, the most recently started request gives its slot up (`preempt`),
   * its state kept in RAM (or dropped); when one request alone fills the pool, it cannot go on (`overflow`).
   */
  async makeRoom(actions: RoomActions<T>): Promise<void> {
    const idle = this.#slots
      .filter((s) => s.tenant === null && !s.reserved && s.cachedCount > 0)
      .sort((a, b) => a.lastUsed - b.lastUsed);
    const victim = idle[0];
    if (victim !== undefined) {
      victim.reserved = true;
      try {
        await this.#giveBack(victim);
        return;
      } catch {
        // The decoder could not erase it (it is failing): the next steps find out; make room by preemption now.
        victim.cache = null;
      } finally {
        victim.reserved = false;
      }
    }
    const running = this.#slots
      .flatMap((s) => (s.tenant !== null && s.tenant.cancel === null ? [{ slot: s, tenant: s.tenant }] : []))
      .sort((a, b) => (b.tenant.startedAt ?? 0) - (a.tenant.startedAt ?? 0));
    const latest = running[0];
    if (latest === undefined || running.length === 1) {
      actions.overflow(running.map((r) => r.tenant));
      return;
    }
    const slot = latest.slot;
    actions.preempt(slot.id, latest.tenant);
    this.vacate(slot.id);
    slot.reserved = true;
    try {
      await this.#giveBack(slot);
    } catch {
      slot.cache = null;
    } finally {
      slot.reserved = false;
    }
  }

  // --- inside ----------------------------------------------------------------------------------------------

  #at(slot: number): PoolSlot<T> {
    const s = this.#slots[slot];
    if (s === undefined) throw new RangeError(`slot ${slot} does not exist`);
    return s;
  }

  /**
   * With a unified pool: the idle slots whose caches must go back (least recently used first) so that a prompt of
   * `prompt` tokens and its output reservation fit on `slot`; null when even that is not enough while others run.
   */
  #cellsFor(prompt: number, outputLeft: number, slot: PoolSlot<T>, idle: readonly PoolSlot<T>[]): PoolSlot<T>[] | null {
    // What the others hold: a running request at least its prompt and its own reservation.
    let held = 0;
    for (const s of this.#slots) {
      if (s === slot) continue;
      held += s.tenant !== null ? Math.max(s.cachedCount, s.reservedCells) : s.cachedCount;
    }
    const need = prompt + Math.min(outputLeft, this.#outputReserve);
    const evict: PoolSlot<T>[] = [];
    const candidates = idle.filter((s) => s !== slot && s.cachedCount > 0).sort((a, b) => a.lastUsed - b.lastUsed);
    while (held + need > this.#kvCells && candidates.length > 0) {
      const victim = candidates.shift() as PoolSlot<T>;
      evict.push(victim);
      held -= victim.cachedCount;
    }
    if (held + need <= this.#kvCells) return evict;
    // Nothing else runs: it goes alone (its prompt fits a slot, so it fits the pool).
    return this.busy === 0 ? evict : null;
  }

  /**
   * Saves an idle slot's cache to the RAM cache (when it is on and the slot holds something it lacks). A failed save
   * loses only that copy: the slot's cache is as it was, and nothing else depends on the save.
   */
  async #keep(slot: PoolSlot<T>): Promise<void> {
    if (!this.#promptCache.enabled || slot.saved || slot.cachedCount < this.#minReusePrefix) return;
    // A conversation that came back and went the same way (greedy, the same answer) left what an entry holds already.
    if (this.#promptCache.holds(this.#cachedPrefixOf(slot), this.#resumePoints(slot))) {
      slot.saved = true;
      return;
    }
    let saved: Awaited<ReturnType<Decoder['saveState']>>;
    try {
      saved = await this.#decoder.saveState(slot.id);
    } catch {
      this.#onPromptCache({ kind: 'save_failed' });
      return;
    }
    slot.saved = true;
    if (this.#promptCache.put(saved.tokens, saved.state, saved.resume))
      this.#onPromptCache({ kind: 'saved', tokens: saved.tokens.length, bytes: saved.state.byteLength });
  }

  /** Gives an idle slot's cells back to the pool, keeping its state in RAM first. */
  async #giveBack(slot: PoolSlot<T>): Promise<void> {
    await this.#keep(slot);
    await this.#decoder.eraseSlot(slot.id);
    slot.cache = null;
    slot.cachedCount = 0;
    slot.saved = false;
  }

  async #restore(slot: PoolSlot<T>, entry: CachedPrompt, prefix: number): Promise<void> {
    const n = await this.#decoder.restoreState(slot.id, entry);
    slot.cache = null;
    slot.cachedCount = n;
    slot.saved = true;
    this.#promptCache.used(entry, prefix);
    this.#onPromptCache({ kind: 'hit', tokens: prefix, bytes: entry.state.byteLength });
  }

  /** Prompt tokens the slot's cache lets it skip: the common prefix, as far as it can resume there. */
  #reusable(slot: PoolSlot<T>, prompt: readonly number[]): number {
    return reusablePrefix(commonPrefix(this.#cachedPrefixOf(slot), prompt), this.#resumePoints(slot));
  }

  #resumePoints(slot: PoolSlot<T>): ResumePoints | undefined {
    try {
      return this.#decoder.resumePoints?.(slot.id);
    } catch {
      return { from: Number.POSITIVE_INFINITY, checkpoints: [] };
    }
  }

  #cachedPrefixOf(slot: PoolSlot<T>): readonly number[] {
    if (slot.cache === null) {
      try {
        slot.cache = this.#decoder.cachedPrefix(slot.id);
      } catch {
        slot.cache = [];
      }
      slot.cachedCount = slot.cache.length;
    }
    return slot.cache;
  }
}

/** The least recently used of these slots. */
function lruOf<S extends { lastUsed: number }>(slots: readonly S[]): S | undefined {
  let best: S | undefined;
  for (const s of slots) if (best === undefined || s.lastUsed < best.lastUsed) best = s;
  return best;
}

function guard(call: () => void): void {
  try {
    call();
  } catch {
    // Observers run after the pool's decision; their failures change nothing.
  }
}
