// The host-RAM prompt cache (llama-server's --cache-ram): sequence states saved from slots that were reused or
// evicted, keyed by the tokens they hold, so a prompt that comes back after its slot moved on restores its KV
// instead of prefilling it again. Bounded by bytes, least recently used out first (lru-cache does the
// bookkeeping). The scheduler saves and restores through the decoder and asks this which entry serves a
// prompt best.
import { LRUCache } from 'lru-cache';
import { type ResumePoints, reusablePrefix } from './decoder.ts';
import { commonPrefix } from './slot-choice.ts';

/** A slot's saved state: the tokens its KV held, the bytes it was serialised to, and where it can resume. */
export interface CachedPrompt {
  readonly tokens: readonly number[];
  readonly state: Uint8Array;
  readonly resume?: ResumePoints;
}

/**
 * Whether `longer` (holding a continuation of `shorter`'s tokens) resumes every prefix `shorter` could, as far:
 * always without sliding-window layers; with them only if its window and checkpoints reach back as far.
 */
function covers(longer: ResumePoints | undefined, shorter: CachedPrompt): boolean {
  if (longer === undefined) return true;
  const r = shorter.resume;
  const from = r === undefined ? 0 : r.from;
  if (from <= shorter.tokens.length && longer.from > from) return false;
  return (r?.checkpoints ?? []).every((c) => reusablePrefix(c, longer) >= c);
}

export interface PromptCacheStats {
  entries: number;
  bytes: number;
  capacityBytes: number;
  hits: number;
  misses: number;
  /** Tokens whose KV came back from RAM instead of being decoded. */
  restoredTokens: number;
  /** Entries dropped to stay within the bound. */
  evictions: number;
}

let nextKey = 0;
const EMPTY = new Uint8Array(0);

function startsWith(tokens: readonly number[], prefix: readonly number[]): boolean {
  if (prefix.length > tokens.length) return false;
  for (let i = 0; i < prefix.length; i++) if (tokens[i] !== prefix[i]) return false;
  return true;
}

export class PromptCache {
  readonly capacityBytes: number;
  readonly #lru: LRUCache<number, CachedPrompt> | null;
  #hits = 0;
  #misses = 0;
  #restoredTokens = 0;
  #evictions = 0;

  /** capacityBytes 0 turns the cache off (everything offered is dropped); Infinity: no bound. */
  constructor(capacityBytes: number) {
    if (!(capacityBytes >= 0)) throw new RangeError(`capacityBytes must be >= 0, got ${capacityBytes}`);
    this.capacityBytes = capacityBytes;
    this.#lru =
      capacityBytes === 0
        ? null
        : new LRUCache<number, CachedPrompt>({
            maxSize: Number.isFinite(capacityBytes) ? capacityBytes : Number.MAX_SAFE_INTEGER,
            sizeCalculation: (e) => Math.max(1, e.state.byteLength),
            dispose: (_e, _key, reason) => {
              if (reason === 'evict') this.#evictions++;
            },
          });
  }

  get enabled(): boolean {
    return this.#lru !== null;
  }

  /**
   * Keeps a slot's state. Entries whose tokens are a prefix of these are dropped when this one resumes every
   * prompt they did; a state larger than the whole cache is not kept. Returns whether it was kept.
   */
  put(tokens: readonly number[], state: Uint8Array, resume?: ResumePoints): boolean {
    const lru = this.#lru;
    if (lru === null || tokens.length === 0 || state.byteLength > this.capacityBytes) return false;
    for (const [key, e] of lru.entries()) {
      const prefixOfThis = e.tokens.length <= tokens.length && commonPrefix(e.tokens, tokens) === e.tokens.length;
      if (prefixOfThis && covers(resume, e)) lru.delete(key);
    }
    const key = nextKey++;
    lru.set(key, { tokens: [...tokens], state, ...(resume !== undefined ? { resume } : {}) });
    return lru.has(key);
  }

  /**
   * True when an entry already serves every prompt a state of these tokens and resume points would: its tokens start
   * with these and it resumes wherever this state could. Saving such a state again would only copy it; the entry
   * becomes the most recently used instead.
   */
  holds(tokens: readonly number[], resume?: ResumePoints): boolean {
    const lru = this.#lru;
    if (lru === null || tokens.length === 0) return false;
    const probe: CachedPrompt = { tokens, state: EMPTY, ...(resume !== undefined ? { resume } : {}) };
    for (const [key, e] of lru.entries()) {
      if (startsWith(e.tokens, tokens) && covers(e.resume, probe)) {
        lru.get(key);
        return true;
      }
    }
    return false;
  }

  /**
   * The entry that lets `prompt` skip the most tokens, and how many (the common prefix, as far as the entry can
   * resume there); null when none lets it skip any.
   */
  best(prompt: readonly number[]): { entry: CachedPrompt; prefix: number } | null {
    let best: { entry: CachedPrompt; prefix: number } | null = null;
    for (const e of this.#lru?.values() ?? []) {
      const prefix = reusablePrefix(commonPrefix(e.tokens, prompt), e.resume);
      if (prefix > 0 && (best === null || prefix > best.prefix)) best = { entry: e, prefix };
    }
    return best;
  }

  /**
   * The scheduler restored `entry` for a prompt that reuses `tokens` of it: a hit, and the entry is the most
   * recently used again. (Its KV is in a slot now, but the slot may move on before the prompt comes back.)
   */
  used(entry: CachedPrompt, tokens: number): void {
    const lru = this.#lru;
    if (lru === null) return;
    for (const [key, e] of lru.entries()) {
      if (e === entry) {
        lru.get(key);
        break;
      }
    }
    this.#hits++;
    this.#restoredTokens += tokens;
  }

  /** A prompt found nothing worth restoring. */
  missed(): void {
    this.#misses++;
  }

  stats(): PromptCacheStats {
    return {
      entries: this.#lru?.size ?? 0,
      bytes: this.#lru?.calculatedSize ?? 0,
      capacityBytes: this.capacityBytes,
      hits: this.#hits,
      misses: this.#misses,
      restoredTokens: this.#restoredTokens,
      evictions: this.#evictions,
    };
  }
}
