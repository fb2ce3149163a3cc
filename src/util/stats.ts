// Percentiles and means shared by the load generator's report and the server's live view, so both compute a
// p95 the same way (numpy's default: linear interpolation between closest ranks).

/** Percentile `p` (0..100) of ascending `sorted` by linear interpolation between closest ranks; null when empty. */
export function percentile(sorted: readonly number[], p: number): number | null {
  const n = sorted.length;
  if (n === 0) return null;
  const h = ((n - 1) * Math.min(100, Math.max(0, p))) / 100;
  const lo = Math.floor(h);
  const a = sorted[lo] as number;
  const b = sorted[Math.min(lo + 1, n - 1)] as number;
  return a + (h - lo) * (b - a);
}

export function mean(values: readonly number[]): number | null {
  if (values.length === 0) return null;
  let sum = 0;
  for (const v of values) sum += v;
  return sum / values.length;
}
