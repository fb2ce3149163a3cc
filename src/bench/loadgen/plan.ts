// The workload, decided before any rank starts and the same for the same seed: which requests each rank
// sends, when (open loop), and the text of each prompt.

import type { RankPlan } from './types.ts';

/**
 * Characters per token assumed when sizing prompts. English-like text runs at about 4 characters per
 * token on BPE and SentencePiece vocabularies; the real count depends on the tokenizer, and the chat
 * template adds a few tokens more. Reports use usage.prompt_tokens, never this estimate.
 */
export const CHARS_PER_TOKEN = 4;

/** Mulberry32: small, fast, good enough for workload shapes. Returns floats in [0, 1). */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Mixes a seed with a stream number and an index (so prompts and arrivals draw independent numbers). */
export function mixSeed(seed: number, stream: number, index: number): number {
  let h = Math.imul(seed >>> 0, 0x9e3779b1) ^ Math.imul(stream + 1, 0x85ebca6b) ^ Math.imul(index + 1, 0xc2b2ae35);
  h = Math.imul(h ^ (h >>> 16), 0x7feb352d);
  h = Math.imul(h ^ (h >>> 15), 0x846ca68b);
  return (h ^ (h >>> 16)) >>> 0;
}

const WORDS = (
  'the of and to in is was for on that with as by at from it his an were are which this be or has had ' +
  'first one their its new after but who not they have her she two been other when there all during into ' +
  'school time may years more most only over city some world would where later up such used many can state ' +
  'about national out known university united then made also river water light system music house small ' +
  'large early people under between while family forest number several found three same part since each village ' +
  'through both however because public before great south north west east street road history team work'
).split(' ');

const PROMPT_STREAM = 1;
const ARRIVAL_STREAM = 2;
const SYSTEM_STREAM = 3;

/**
 * Deterministic English-like text of about `promptTokens * CHARS_PER_TOKEN` characters for request `id`.
 * Each request gets different text, so a server's prompt cache sees no shared prefix beyond the template.
 */
export function promptText(seed: number, id: number, promptTokens: number): string {
  return wordsText(mulberry32(mixSeed(seed, PROMPT_STREAM, id)), promptTokens);
}

/** The system prompt every request of a run shares: text of ~`systemTokens` tokens, the same for every rank. */
export function systemText(seed: number, systemTokens: number): string {
  return `You are a helpful assistant. ${wordsText(mulberry32(mixSeed(seed, SYSTEM_STREAM, 0)), systemTokens)}`;
}

function wordsText(random: () => number, promptTokens: number): string {
  const target = promptTokens * CHARS_PER_TOKEN;
  let text = '';
  let sentence = 0;
  while (text.length < target) {
    let word = WORDS[Math.floor(random() * WORDS.length)] ?? 'the';
    if (sentence === 0) word = word.charAt(0).toUpperCase() + word.slice(1);
    sentence++;
    const end = sentence >= 6 && random() < 0.2;
    if (end) sentence = 0;
    text += (text ? ' ' : '') + word + (end ? '.' : '');
  }
  return text;
}

/** Request ids of each rank: interleaved (rank r sends r, r+N, r+2N, ...), so counts differ by at most one. */
export function splitRequests(requests: number, ranks: number): number[][] {
  const out: number[][] = Array.from({ length: ranks }, () => []);
  for (let id = 0; id < requests; id++) out[id % ranks]?.push(id);
  return out;
}

/**
 * Arrival offsets (ms after the go signal) of a Poisson process: exponential gaps with mean 1000/rate.
 * Each rank runs its own process at rate/ranks; together they make a Poisson process at `rate`.
 */
export function poissonArrivals(count: number, ratePerSecond: number, random: () => number): number[] {
  const out: number[] = [];
  let t = 0;
  for (let k = 0; k < count; k++) {
    t += (-Math.log(1 - random()) * 1000) / ratePerSecond;
    out.push(t);
  }
  return out;
}

export function planRanks(o: { requests: number; ranks: number; rate: number | null; seed: number }): RankPlan[] {
  return splitRequests(o.requests, o.ranks).map((ids, rank) => {
    const arrivals =
      o.rate === null
        ? null
        : poissonArrivals(ids.length, o.rate / o.ranks, mulberry32(mixSeed(o.seed, ARRIVAL_STREAM, rank)));
    return { rank, requests: ids.map((id, k) => ({ id, atMs: arrivals?.[k] ?? null })) };
  });
}
