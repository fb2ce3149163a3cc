// The soak's verdict, from its samples and counts. Pure. RSS growth compares the median of the samples in a
// window right after the warm-up with the median of the last window (medians, so one GC pause or one large
// response does not decide it), less the host prompt cache (--cache-ram) and the slots' sliding-window checkpoints
// (--ctx-checkpoints): those stores fill by design up to their caps (8 GiB by default, as llama-server's; so many
// checkpoints per slot), so they are reported beside RSS rather than judged as growth. Leaked
// slots are those still busy once the load stopped and the server settled.

export interface Sample {
  /** Seconds since the load started. */
  t: number;
  rssBytes: number;
  /** The host prompt cache's bytes (llama_slots_prompt_cache_bytes), part of rssBytes. */
  promptCacheBytes: number;
  /** The slots' checkpoints' bytes (llama_slots_checkpoint_bytes), part of rssBytes; absent: 0. */
  checkpointBytes?: number;
  heapUsedBytes: number;
  /** The event loop's delay over the sample interval (prom-client's monitorEventLoopDelay), ms. */
  lagP99Ms: number;
  lagMaxMs: number;
  handles: number;
  busySlots: number;
  queued: number;
  /** GET /health round trip, ms; null when it failed. */
  healthMs: number | null;
}

export interface Counts {
  /** Requests per action and status ('complete 200', 'abort aborted', 'bad 400', ...). */
  byOutcome: Record<string, number>;
  requests: number;
  /** Answers (or in-stream errors) of type server_error, and HTTP 5xx. */
  serverErrors: number;
  /** Error answers not in OpenAI's shape. */
  shapeErrors: number;
  rateLimited: number;
  aborted: number;
  /** Requests the client gave up on at fetch's own deadlines (300 s without headers or between chunks). */
  clientTimeouts: number;
  completionTokens: number;
}

export interface Verdict {
  warmupSeconds: number;
  windowSeconds: number;
  /** The first sample's RSS: the server as the load found it. */
  rssStartMiB: number;
  rssWarmMiB: number;
  rssEndMiB: number;
  /** Growth of RSS less the prompt cache and the checkpoints: what the verdict judges. */
  rssGrowthPercent: number;
  /** Growth of RSS as it is, prompt cache included. */
  rssRawGrowthPercent: number;
  promptCacheWarmMiB: number;
  promptCacheEndMiB: number;
  checkpointsWarmMiB: number;
  checkpointsEndMiB: number;
  rssMaxMiB: number;
  lagP99MaxMs: number;
  lagMaxMs: number;
  handlesWarm: number;
  handlesEnd: number;
  healthFailures: number;
  healthMaxMs: number;
  leakedSlots: number;
  leftQueued: number;
  serverErrors: number;
  shapeErrors: number;
  clientTimeouts: number;
  pass: boolean;
  reasons: string[];
}

const MIB = 1024 * 1024;

export function median(values: readonly number[]): number {
  if (values.length === 0) return 0;
  const s = [...values].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? (s[mid] ?? 0) : ((s[mid - 1] ?? 0) + (s[mid] ?? 0)) / 2;
}

export interface VerdictInput {
  samples: readonly Sample[];
  durationSeconds: number;
  warmupSeconds: number;
  counts: Counts;
  /** After the load: slots still busy and requests still queued once the server had time to settle. */
  leakedSlots: number;
  leftQueued: number;
  maxRssGrowthPercent: number;
}

export function soakVerdict(input: VerdictInput): Verdict {
  const { samples, durationSeconds, warmupSeconds } = input;
  const after = samples.filter((s) => s.t >= warmupSeconds);
  const span = Math.max(0, durationSeconds - warmupSeconds);
  // A minute at either end, or a fifth of what follows the warm-up on short runs.
  const windowSeconds = Math.min(60, span / 5);
  const first = after.filter((s) => s.t <= warmupSeconds + windowSeconds);
  const last = after.filter((s) => s.t >= durationSeconds - windowSeconds);
  const firstWindow = first.length > 0 ? first : after.slice(0, 1);
  const lastWindow = last.length > 0 ? last : after.slice(-1);
  const warm = median(firstWindow.map((s) => s.rssBytes));
  const end = median(lastWindow.map((s) => s.rssBytes));
  const cacheWarm = median(firstWindow.map((s) => s.promptCacheBytes));
  const cacheEnd = median(lastWindow.map((s) => s.promptCacheBytes));
  const checkpoints = (s: Sample): number => s.checkpointBytes ?? 0;
  const percent = (from: number, to: number): number => (from > 0 ? ((to - from) / from) * 100 : 0);
  const rest = (s: Sample): number => s.rssBytes - s.promptCacheBytes - checkpoints(s);
  const growth = percent(median(firstWindow.map(rest)), median(lastWindow.map(rest)));
  const health = samples.map((s) => s.healthMs);
  const v: Verdict = {
    warmupSeconds,
    windowSeconds,
    rssStartMiB: (samples[0]?.rssBytes ?? 0) / MIB,
    rssWarmMiB: warm / MIB,
    rssEndMiB: end / MIB,
    rssGrowthPercent: growth,
    rssRawGrowthPercent: percent(warm, end),
    promptCacheWarmMiB: cacheWarm / MIB,
    promptCacheEndMiB: cacheEnd / MIB,
    checkpointsWarmMiB: median(firstWindow.map(checkpoints)) / MIB,
    checkpointsEndMiB: median(lastWindow.map(checkpoints)) / MIB,
    rssMaxMiB: Math.max(0, ...samples.map((s) => s.rssBytes)) / MIB,
    lagP99MaxMs: Math.max(0, ...after.map((s) => s.lagP99Ms)),
    lagMaxMs: Math.max(0, ...after.map((s) => s.lagMaxMs)),
    handlesWarm: median(first.map((s) => s.handles)),
    handlesEnd: median(last.map((s) => s.handles)),
    healthFailures: health.filter((h) => h === null).length,
    healthMaxMs: Math.max(0, ...health.filter((h): h is number => h !== null)),
    leakedSlots: input.leakedSlots,
    leftQueued: input.leftQueued,
    serverErrors: input.counts.serverErrors,
    shapeErrors: input.counts.shapeErrors,
    clientTimeouts: input.counts.clientTimeouts,
    pass: true,
    reasons: [],
  };
  const fail = (reason: string): void => {
    v.pass = false;
    v.reasons.push(reason);
  };
  if (after.length < 2) fail(`too few samples after the warm-up (${after.length}) to judge RSS growth`);
  if (growth >= input.maxRssGrowthPercent)
    fail(
      `RSS less the prompt cache and checkpoints grew ${growth.toFixed(1)}% after the warm-up (limit ${input.maxRssGrowthPercent}%)`,
    );
  if (v.leakedSlots > 0) fail(`${v.leakedSlots} slots still busy after the load`);
  if (v.leftQueued > 0) fail(`${v.leftQueued} requests still queued after the load`);
  if (v.serverErrors > 0) fail(`${v.serverErrors} server errors (5xx or server_error events)`);
  if (v.shapeErrors > 0) fail(`${v.shapeErrors} errors not in OpenAI's shape`);
  if (v.clientTimeouts > 0) fail(`${v.clientTimeouts} requests unanswered within the client's 300 s`);
  if (v.healthFailures > 0) fail(`/health failed ${v.healthFailures} times`);
  return v;
}

function signed(percent: number): string {
  return `${percent >= 0 ? '+' : ''}${percent.toFixed(2)}%`;
}

export function formatVerdict(v: Verdict, counts: Counts, durationSeconds: number): string {
  const outcomes = Object.entries(counts.byOutcome)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([k, n]) => `${k}: ${n}`)
    .join(', ');
  return [
    `=== soak: ${(durationSeconds / 60).toFixed(1)} min, warm-up ${(v.warmupSeconds / 60).toFixed(1)} min ===`,
    `requests=${counts.requests} (${(counts.requests / Math.max(1, durationSeconds)).toFixed(1)}/s) completion_tokens=${counts.completionTokens} rate_limited=${counts.rateLimited} aborted=${counts.aborted}`,
    `outcomes: ${outcomes}`,
    `RSS: ${v.rssStartMiB.toFixed(1)} MiB at the start, ${v.rssWarmMiB.toFixed(1)} MiB after warm-up -> ${v.rssEndMiB.toFixed(1)} MiB at the end (${signed(v.rssRawGrowthPercent)}; medians over ${v.windowSeconds.toFixed(0)} s windows), max ${v.rssMaxMiB.toFixed(1)} MiB`,
    `prompt cache (--cache-ram): ${v.promptCacheWarmMiB.toFixed(1)} MiB after warm-up -> ${v.promptCacheEndMiB.toFixed(1)} MiB; checkpoints (--ctx-checkpoints): ${v.checkpointsWarmMiB.toFixed(1)} -> ${v.checkpointsEndMiB.toFixed(1)} MiB; RSS less both: ${signed(v.rssGrowthPercent)}`,
    `event-loop lag: p99 <= ${v.lagP99MaxMs.toFixed(1)} ms, max ${v.lagMaxMs.toFixed(1)} ms; /health: max ${v.healthMaxMs.toFixed(0)} ms, ${v.healthFailures} failures`,
    `open handles: ${v.handlesWarm} after warm-up -> ${v.handlesEnd} at the end`,
    `after the load: ${v.leakedSlots} slots busy, ${v.leftQueued} queued; 5xx/server errors: ${v.serverErrors}; errors not in OpenAI's shape: ${v.shapeErrors}; client timeouts: ${v.clientTimeouts}`,
    `verdict: ${v.pass ? 'PASS' : `FAIL (${v.reasons.join('; ')})`}`,
    '',
  ].join('\n');
}
