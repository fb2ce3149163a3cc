// Stop strings over a stream of text pieces. A piece may end in the middle of a stop string, so the longest
// tail that could still grow into one is held back until the next piece decides it; nothing that is part of a
// stop string is ever released.

export interface StopResult {
  /** Text that can be sent: it can no longer be part of a stop string. */
  text: string;
  /** The stop string that matched, or null. After a match the matcher is done and further pushes return ''. */
  stop: string | null;
}

export class StopMatcher {
  readonly #stops: readonly string[];
  readonly #longest: number;
  #held = '';
  #stopped: string | null = null;

  constructor(stops: readonly string[]) {
    this.#stops = [...new Set(stops.filter((s) => s !== ''))];
    this.#longest = Math.max(0, ...this.#stops.map((s) => s.length));
  }

  /** The stop string that ended the text, if one did. */
  get stopped(): string | null {
    return this.#stopped;
  }

  /** Text held back because it may be the start of a stop string. */
  get pending(): string {
    return this.#held;
  }

  push(piece: string): StopResult {
    if (this.#stopped !== null) return { text: '', stop: null };
    if (this.#longest === 0) return { text: piece, stop: null };
    const buffer = this.#held + piece;

    // The match that completes first wins, as if the text had arrived one character at a time (so the result
    // never depends on where pieces split); of two completing together, the longer one.
    let at = -1;
    let end = Number.POSITIVE_INFINITY;
    let which: string | null = null;
    for (const s of this.#stops) {
      const i = buffer.indexOf(s);
      if (i < 0) continue;
      if (i + s.length < end || (i + s.length === end && i < at)) {
        at = i;
        end = i + s.length;
        which = s;
      }
    }
    if (which !== null) {
      this.#stopped = which;
      this.#held = '';
      return { text: buffer.slice(0, at), stop: which };
    }

    const keep = this.#partialSuffix(buffer);
    this.#held = buffer.slice(buffer.length - keep);
    return { text: buffer.slice(0, buffer.length - keep), stop: null };
  }

  /** At the end of generation without a match: the held-back text, which turned out to be ordinary text. */
  flush(): string {
    if (this.#stopped !== null) return '';
    const out = this.#held;
    this.#held = '';
    return out;
  }

  /** Length of the longest suffix of `buffer` that is a proper prefix of some stop string. */
  #partialSuffix(buffer: string): number {
    for (let n = Math.min(buffer.length, this.#longest - 1); n > 0; n--) {
      const tail = buffer.slice(buffer.length - n);
      if (this.#stops.some((s) => s.length > n && s.startsWith(tail))) return n;
    }
    return 0;
  }
}
