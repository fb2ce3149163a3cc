// "Equals its solo greedy run", as far as arithmetic allows. A batch of several sequences is computed with other
// kernels and another order of sums than one sequence alone (and a unified KV pool puts a sequence's cells
// elsewhere), so two candidates whose logits are within rounding of each other may come out in either order. The
// generated models' random weights give nearly flat distributions (top candidates ~1e-5 nats apart happen), so such
// ties do occur (seen: 1.3e-4 nats apart and swapped between a batch of four and a run alone; 1.6e-3 with AVX2's
// kernels, whose sums are not batch-invariant, on the conversations workload). The comparison is
// exact up to the first position where the two runs differ; there it accepts only a numerical tie: the solo run's
// best two candidates within TIE_NATS, and the same two candidates on both sides, swapped. A wrong context (another
// conversation's KV, a lost prefix) differs where no such tie is, which fails.
export const TIE_NATS = 5e-3;

/** One generated position: the chosen token, and the best candidates with their log-probabilities, best first. */
export interface Position {
  token: number | string;
  top: ReadonlyArray<{ token: number | string; logprob: number }>;
}

export interface GreedyComparison {
  /** Positions that were equal before the first difference (all of them when none). */
  equal: number;
  /** Where a numerical tie made the runs part, or null. */
  tieAt: number | null;
  /** Why they do not count as the same greedy run; null when they do. */
  problem: string | null;
}

export function compareGreedy(ours: readonly Position[], solo: readonly Position[]): GreedyComparison {
  const n = Math.min(ours.length, solo.length);
  for (let i = 0; i < n; i++) {
    const a = ours[i] as Position;
    const b = solo[i] as Position;
    if (a.token === b.token) continue;
    const [first, second] = b.top;
    if (first === undefined || second === undefined)
      return { equal: i, tieAt: null, problem: `token ${i} differs and the solo run gave no candidates` };
    const gap = first.logprob - second.logprob;
    const candidates = [first.token, second.token];
    const ourTwo = a.top.slice(0, 2).map((c) => c.token);
    if (gap < TIE_NATS && candidates.includes(a.token) && ourTwo.includes(b.token))
      return { equal: i, tieAt: i, problem: null };
    return {
      equal: i,
      tieAt: null,
      problem: `token ${i}: ${JSON.stringify(a.token)}, alone ${JSON.stringify(b.token)} (its best two ${JSON.stringify(candidates)} are ${gap.toExponential(2)} nats apart: no tie)`,
    };
  }
  if (ours.length !== solo.length)
    return { equal: n, tieAt: null, problem: `${ours.length} tokens, alone ${solo.length}` };
  return { equal: n, tieAt: null, problem: null };
}

/** llama-server's /completion probabilities (n_probs, return_tokens) as positions. */
export function completionPositions(body: {
  completion_probabilities?: Array<{ id: number; top_logprobs: Array<{ id: number; logprob: number }> }>;
}): Position[] {
  return (body.completion_probabilities ?? []).map((p) => ({
    token: p.id,
    top: p.top_logprobs.map((c) => ({ token: c.id, logprob: c.logprob })),
  }));
}

/** An OpenAI chat completion's logprobs (logprobs: true, top_logprobs) as positions. */
export function chatPositions(body: {
  choices: Array<{
    logprobs?: {
      content: Array<{ token: string; top_logprobs: Array<{ token: string; logprob: number }> }> | null;
    } | null;
  }>;
}): Position[] {
  return (body.choices[0]?.logprobs?.content ?? []).map((p) => ({
    token: p.token,
    top: p.top_logprobs.map((c) => ({ token: c.token, logprob: c.logprob })),
  }));
}
