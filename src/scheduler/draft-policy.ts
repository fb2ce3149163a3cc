// How many tokens each generating slot drafts in the next step (speculative decoding). A draft costs the step target
// compute for every drafted token whether it is accepted or not, and the draft model's sequential passes; it pays only
// while the step is dominated by what does not grow with its tokens (reading the weights once). So the rule is
// measured, not fixed:
//
//   - the step's cost is fitted online as t = a + bOut * (tokens with logits) + bIn * (prompt tokens) + c * (draft
//     passes), by least squares over the steps just run (forgetting old ones, so a changing machine or load is
//     followed);
//   - each slot's acceptance is a per-position probability p (drafted token i is accepted when the ones before it
//     were), counted from its verified drafts and seeded from all slots';
//   - drafts are handed out one token at a time to the slot whose next token adds the most expected output
//     (p^(n+1)), as long as the step's expected tokens per microsecond, sum(1 + p + ... + p^n) / t, still rises.
//
// The fit starts pessimistic (a drafted token costing half a step) and learns from two kinds of exploration: while
// nothing is drafted, one slot now and then drafts a single token (ever more rarely while that keeps not paying: a probe
// costs a verified token); while drafting, every 16th step drafts nothing.
// Without the second, a policy that always drafts the same length can never tell how much of the step the drafts
// cost. With one or two busy slots on a memory-bound step this drafts long; as the batch grows, or where verifying a
// token costs nearly as much as generating one (a small CPU), drafting switches itself off. docs/PERFORMANCE.md has
// the figures that chose it.

import type { DraftOutcome } from './decoder.ts';

export interface DraftPolicyOptions {
  /** The decoder's most tokens per draft. */
  maxDraft: number;
  slots: number;
  /** 'max': every slot drafts maxDraft every step (llama-server's rule). */
  mode: 'adaptive' | 'max';
}

/** What the policy learns from one step. */
export interface StepObservation {
  durationMicros: number;
  batchTokens: number;
  promptTokens: number;
  drafts: readonly DraftOutcome[];
}

const FORGET = 0.98; // cost fit: weight of a step k steps ago is FORGET^k
const SLOT_DECAY = 0.9; // acceptance counts of a slot
const GLOBAL_DECAY = 0.99;
const PRIOR_WEIGHT = 2; // pseudo-observations the global acceptance lends a slot
// Steps between explorations: a baseline (no slot drafts) every 16 while drafting; a probe (one slot drafts one token)
// after 16 steps without drafts, then twice as long after each probe that did not make drafting pay, up to 256.
const EXPLORE_EVERY = 16;
const PROBE_EVERY_MAX = 256;

export class DraftPolicy {
  readonly #maxDraft: number;
  readonly #mode: 'adaptive' | 'max';
  // Cost model t = theta . [1, out, in, passes] (microseconds), and its RLS covariance.
  #theta: number[] | null = null;
  #prior: number[] | null = null;
  #ridge: number[] = [];
  #xx: number[][] = [];
  #xy: number[] = [];
  // Acceptance counts (successes, failures): per slot, and over all slots.
  readonly #hits: number[];
  readonly #misses: number[];
  #sinceExplore = 0;
  #probeEvery = EXPLORE_EVERY;
  #probeNext = 0;
  #allHits = 1;
  #allMisses = 1;

  constructor(options: DraftPolicyOptions) {
    this.#maxDraft = Math.max(0, Math.floor(options.maxDraft));
    this.#mode = options.mode;
    this.#hits = new Array<number>(options.slots).fill(0);
    this.#misses = new Array<number>(options.slots).fill(0);
  }

  /** The slot's per-position acceptance estimate. */
  acceptance(slot: number): number {
    const prior = this.#allHits / (this.#allHits + this.#allMisses);
    const hits = this.#hits[slot] ?? 0;
    const misses = this.#misses[slot] ?? 0;
    return (hits + PRIOR_WEIGHT * prior) / (hits + misses + PRIOR_WEIGHT);
  }

  /** The fitted step cost in microseconds, or null before the first step. */
  cost(out: number, prompt: number, passes: number): number | null {
    const th = this.#theta;
    if (th === null) return null;
    // A fitted slope below zero is noise: more work never costs less.
    const [a = 0, bOut = 0, bIn = 0, c = 0] = th;
    return a + Math.max(0, bOut) * out + Math.max(0, bIn) * prompt + Math.max(0, c) * passes;
  }

  /** A new request on the slot: its own acceptance is forgotten (the prior from all slots stays). */
  reset(slot: number): void {
    this.#hits[slot] = 0;
    this.#misses[slot] = 0;
  }

  /**
   * Draft lengths for the next step, per slot (0 for slots not in `generating`). `promptTokens`: what the step will
   * carry of prompts; `room`: the most draft tokens the step can take in all.
   */
  limits(generating: readonly number[], promptTokens: number, room: number): number[] {
    const out = new Array<number>(this.#hits.length).fill(0);
    if (this.#maxDraft === 0 || generating.length === 0) return out;
    if (this.#mode === 'max') {
      for (const s of generating) out[s] = this.#maxDraft;
      return out;
    }
    let budget = Math.max(0, Math.floor(room));
    const p = generating.map((s) => this.acceptance(s));
    const n = generating.map(() => 0);
    const gain = (k: number) => (p[k] ?? 0) ** ((n[k] ?? 0) + 1);
    let expected = generating.length;
    let passes = 0;
    let drafted = 0;
    const time = (extra: number, newPasses: number) =>
      this.cost(generating.length + drafted + extra, promptTokens, newPasses) ?? Number.NaN;
    let now = time(0, 0);
    // Before the first step is measured nothing is drafted: the first step teaches the fit its scale.
    while (budget > 0 && Number.isFinite(now) && now > 0) {
      let best = -1;
      let bestRate = expected / now;
      let bestTime = now;
      for (let k = 0; k < generating.length; k++) {
        if ((n[k] ?? 0) >= this.#maxDraft) continue;
        const t = time(1, Math.max(passes, (n[k] ?? 0) + 1));
        const rate = (expected + gain(k)) / t;
        if (t > 0 && rate > bestRate) {
          best = k;
          bestRate = rate;
          bestTime = t;
        }
      }
      if (best < 0) break;
      expected += gain(best);
      n[best] = (n[best] ?? 0) + 1;
      passes = Math.max(passes, n[best] ?? 0);
      drafted++;
      budget--;
      now = bestTime;
    }
    for (const [k, s] of generating.entries()) out[s] = n[k] ?? 0;
    // Exploration: a baseline step while drafting, a one-token probe while not.
    if (!Number.isFinite(now)) return out;
    this.#sinceExplore++;
    if (drafted > 0) {
      this.#probeEvery = EXPLORE_EVERY;
      if (this.#sinceExplore >= EXPLORE_EVERY) {
        this.#sinceExplore = 0;
        out.fill(0);
      }
    } else if (this.#sinceExplore >= this.#probeEvery && budget > 0) {
      this.#sinceExplore = 0;
      this.#probeEvery = Math.min(PROBE_EVERY_MAX, 2 * this.#probeEvery);
      out[generating[this.#probeNext++ % generating.length] ?? 0] = 1;
    }
    return out;
  }

  /** Learns from a step: its measured cost, and each verified draft's acceptance. */
  observe(step: StepObservation): void {
    let passes = 0;
    for (const d of step.drafts) {
      passes = Math.max(passes, d.drafted);
      if (d.drafted === 0) continue;
      const misses = d.accepted < d.drafted ? 1 : 0;
      this.#hits[d.slot] = (this.#hits[d.slot] ?? 0) * SLOT_DECAY + d.accepted;
      this.#misses[d.slot] = (this.#misses[d.slot] ?? 0) * SLOT_DECAY + misses;
      this.#allHits = this.#allHits * GLOBAL_DECAY + d.accepted;
      this.#allMisses = this.#allMisses * GLOBAL_DECAY + misses;
    }
    if (step.batchTokens <= 0 || !(step.durationMicros > 0)) return;
    const out = step.batchTokens - step.promptTokens;
    this.#fit([1, out, step.promptTokens, passes], step.durationMicros);
  }

  /**
   * Least squares over the recent steps (weights FORGET^age) with a ridge towards a prior set by the first generation
   * step, so a direction the steps have not varied (no drafts yet) keeps the prior's value instead of drifting.
   */
  #fit(x: number[], y: number): void {
    if (this.#prior === null) {
      // Only a step without prompt tokens shows what generating costs.
      if ((x[2] ?? 0) > 0) return;
      // Prior, pessimistic and consistent with this step: half of it is fixed cost and half its tokens with logits,
      // a draft pass a fifth of it, a prompt token a fifth of an output token; so nothing is drafted until probes show
      // it pays. Each worth one step.
      const out = Math.max(1, x[1] ?? 1);
      this.#prior = [0.5 * y, (0.5 * y) / out, (0.1 * y) / out, 0.2 * y];
      const scale = [y, y / out, y / out, y];
      this.#ridge = scale.map((v) => 1 / (v * v));
      this.#xx = x.map(() => x.map(() => 0));
      this.#xy = x.map(() => 0);
    }
    for (let i = 0; i < x.length; i++) {
      this.#xy[i] = FORGET * (this.#xy[i] ?? 0) + y * (x[i] ?? 0);
      const row = this.#xx[i] ?? [];
      for (let j = 0; j < x.length; j++) row[j] = FORGET * (row[j] ?? 0) + (x[i] ?? 0) * (x[j] ?? 0);
    }
    const prior = this.#prior;
    const m = this.#xx.map((row, i) => row.map((v, j) => v + (i === j ? (this.#ridge[i] ?? 0) : 0)));
    const rhs = this.#xy.map((v, i) => v + (this.#ridge[i] ?? 0) * (prior[i] ?? 0));
    const solved = solve(m, rhs);
    if (solved !== null) this.#theta = solved;
  }
}

/** Solves m x = b by Gaussian elimination with partial pivoting; null when m is singular. */
function solve(m: number[][], b: number[]): number[] | null {
  const n = b.length;
  const a = m.map((row, i) => [...row, b[i] ?? 0]);
  for (let c = 0; c < n; c++) {
    let pivot = c;
    for (let r = c + 1; r < n; r++) if (Math.abs(a[r]?.[c] ?? 0) > Math.abs(a[pivot]?.[c] ?? 0)) pivot = r;
    const top = a[pivot];
    if (top === undefined || Math.abs(top[c] ?? 0) < 1e-300) return null;
    [a[c], a[pivot]] = [top, a[c] ?? []];
    for (let r = 0; r < n; r++) {
      if (r === c) continue;
      const row = a[r] ?? [];
      const f = (row[c] ?? 0) / (top[c] ?? 1);
      for (let k = c; k <= n; k++) row[k] = (row[k] ?? 0) - f * (top[k] ?? 0);
    }
  }
  return a.map((row, i) => (row[n] ?? 0) / (row[i] ?? 1));
}
