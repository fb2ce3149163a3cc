// Which idle slot a new request goes to: the one whose cached tokens share the longest prefix with the
// prompt (the prompt cache), else the least recently used one, so the caches most likely to be wanted
// again (the freshest conversations) survive longest.

import { type ResumePoints, reusablePrefix } from './decoder.ts';

export interface IdleSlot {
  id: number;
  /** Tokens whose KV the slot holds. */
  cachedPrefix: readonly number[];
  /** Where it can resume a shared prefix (sliding-window models); absent: anywhere. */
  resume?: ResumePoints | undefined;
  /** When the slot last ended a request (any increasing clock; lower = longer ago; never used: -Infinity). */
  lastUsed: number;
}

export interface SlotChoice {
  slot: number;
  /** Prompt tokens the slot is expected to reuse (0 when chosen as least recently used). */
  prefix: number;
}

/**
 * A shorter common prefix is no evidence that the slot holds this conversation: every prompt starts
 * with BOS and every chat request with the template's role header (3-5 tokens in ChatML, Llama 3 and
 * Gemma), and a short system prompt fragment is common too. Reusing fewer than 16 tokens saves a sliver of
 * one prefill step, while overwriting the least recently used slot instead keeps a fresher
 * conversation's cache alive.
 */
export const MIN_REUSE_PREFIX = 16;

/** Picks the idle slot for `prompt`; null when there is none. Ties go to the least recently used slot. */
export function chooseSlot(
  idle: readonly IdleSlot[],
  prompt: readonly number[],
  minPrefix = MIN_REUSE_PREFIX,
): SlotChoice | null {
  let best: SlotChoice | null = null;
  let bestLastUsed = Infinity;
  for (const s of idle) {
    let prefix = reusablePrefix(commonPrefix(s.cachedPrefix, prompt), s.resume);
    if (prefix < minPrefix) prefix = 0;
    const better = best === null || prefix > best.prefix || (prefix === best.prefix && s.lastUsed < bestLastUsed);
    if (better) {
      best = { slot: s.id, prefix };
      bestLastUsed = s.lastUsed;
    }
  }
  return best;
}

/**
 * Tokens the decoder can reuse: the common prefix, less the last prompt token, which it always evaluates
 * again to get fresh logits (so two slots holding the whole prompt or all but its last token tie).
 */
export function commonPrefix(cached: readonly number[], prompt: readonly number[]): number {
  const limit = Math.min(cached.length, prompt.length - 1);
  let n = 0;
  while (n < limit && cached[n] === prompt[n]) n++;
  return n;
}
