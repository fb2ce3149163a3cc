// The storm as a property (fast-check): every generated request (requests.ts) gets an answer that keeps the
// rules (invariants.ts) within a deadline; afterwards the servers answer /health and a valid request, and every
// slot is idle, in the scheduler's view and the decoder's.
//
// Requests go `concurrency` at a time. fast-check draws them, one run each, and the property hands each to a pool
// of that many clients and returns as soon as a client is free, so that many are always in flight; their answers
// are judged as they come. A broken rule stops the storm (no new request is sent; those in flight finish), and
// fast-check replays the failing run alone (its seed and the run's path) and shrinks it there, each candidate sent
// on its own: the smallest request that still breaks the rule is reported, with the requests that were in flight
// beside the original. A failure that needs its neighbours (it does not come back alone) is reported as it came,
// with them. The same seed draws the same requests; how they interleave may differ from one run to the next.
import fc from 'fast-check';
import { type FuzzResponse, violations } from './invariants.ts';
import { type FuzzRequest, type FuzzServer, fuzzRequest } from './requests.ts';

export interface FuzzTarget {
  /** The servers it has (requests for a missing one are not drawn). */
  readonly servers: readonly FuzzServer[];
  send(request: FuzzRequest): Promise<FuzzResponse>;
  /** Every slot's state, as the scheduler and as the decoder see it ('idle' when free). */
  slotStates(): { scheduler: string[]; decoder: string[] };
  /** Resolves once no request is queued or running (or after `ms`). */
  settled(ms: number): Promise<void>;
}

export interface FuzzOptions {
  cases: number;
  seed: number;
  bodyLimitBytes: number;
  /** Requests in flight at a time. Default 1. */
  concurrency?: number;
  /** Tokens per slot of the generation server: no answer may hold more. */
  ctxPerSlot?: number;
  /** A request without an answer by then is a hang. Default 20 s. */
  caseTimeoutMs?: number;
  /** How long fast-check may shrink a failure; past it the smallest failing request so far is reported. Default 60 s. */
  shrinkBudgetMs?: number;
}

type ReportedRequest = Omit<FuzzRequest, 'payload'> & { payload: string };

export interface FuzzReport {
  cases: number;
  seed: number;
  concurrency: number;
  /** The storm's time (until the requests in flight when a rule broke had answered). */
  ms: number;
  /** Time spent replaying and shrinking a failure (0 when none). */
  shrinkMs: number;
  byStatus: Record<string, number>;
  /** How many of the 200s were streams (SSE). */
  streamed: number;
  /** Statuses by route ('server url'), so every route's share of the storm shows. */
  byRoute: Record<string, Record<string, number>>;
  /** How often each kind of mutation was sent. */
  byMutation: Record<string, number>;
  slowestMs: number;
  p99Ms: number;
  /** Warnings the process emitted during the storm (a listener leak, a deprecation): none is the rule. */
  warnings: string[];
  /** The first request that broke a rule, shrunk when it breaks it alone; null when every rule held. */
  failure: {
    request: ReportedRequest;
    problems: string[];
    /** Its run (replay it with the same seed and `path`). */
    run: number;
    /** true: it broke the rule sent alone too (and is shrunk); false: only beside the requests in `with`. */
    alone: boolean;
    /** The requests in flight beside the original failing one. */
    with: string[];
  } | null;
  after: {
    healthStatus: number;
    validStatus: number;
    slots: { scheduler: string[]; decoder: string[] };
    /** The embedding server, when the target has one. */
    embeddings?: { healthStatus: number; validStatus: number };
  };
}

class RuleBroken extends Error {
  constructor(
    readonly request: FuzzRequest,
    readonly problems: string[],
  ) {
    super(`${summary(request)}: ${problems.join('; ')}`);
  }
}

function summary(r: FuzzRequest): string {
  return `${r.server === 'embeddings' ? '[embeddings] ' : ''}${r.method} ${r.url} (${r.mutation || 'valid'})`;
}

function reported(r: FuzzRequest): ReportedRequest {
  const { payload, ...rest } = r;
  return { ...rest, payload: payload.toString('utf8').slice(0, 2000) };
}

function withDeadline<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms: ${what}`)), ms);
  });
  return Promise.race([p, deadline]).finally(() => clearTimeout(timer));
}

function json(body: unknown): Buffer {
  return Buffer.from(JSON.stringify(body));
}

function request(server: FuzzServer, method: 'GET' | 'POST', url: string, body?: unknown): FuzzRequest {
  return {
    server,
    method,
    url,
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    payload: body === undefined ? Buffer.alloc(0) : json(body),
    mutation: '',
  };
}

const bump = (counts: Record<string, number>, key: string): void => {
  counts[key] = (counts[key] ?? 0) + 1;
};

/** At most `size` holders at a time; the next waiter gets a released place. */
class Pool {
  #free: number;
  readonly #waiting: (() => void)[] = [];
  constructor(size: number) {
    this.#free = size;
  }
  acquire(): Promise<void> {
    if (this.#free > 0) {
      this.#free--;
      return Promise.resolve();
    }
    return new Promise((resolve) => this.#waiting.push(resolve));
  }
  release(): void {
    const next = this.#waiting.shift();
    if (next !== undefined) next();
    else this.#free++;
  }
}

interface Broken {
  run: number;
  request: FuzzRequest;
  problems: string[];
  with: Set<number>;
}

export async function runFuzz(target: FuzzTarget, options: FuzzOptions): Promise<FuzzReport> {
  const caseTimeoutMs = options.caseTimeoutMs ?? 20_000;
  const concurrency = Math.max(1, options.concurrency ?? 1);
  const invariantOptions = options.ctxPerSlot !== undefined ? { ctxPerSlot: options.ctxPerSlot } : {};
  // Drawn the same way for the storm and for the replay, so a run's path names the same request in both.
  const drawn = () => fuzzRequest({ bodyLimitBytes: options.bodyLimitBytes, servers: target.servers });
  const byStatus: Record<string, number> = {};
  const byRoute: Record<string, Record<string, number>> = {};
  const byMutation: Record<string, number> = {};
  const times: number[] = [];
  let streamed = 0;

  /** Sends one request and judges its answer; `count`: it is one of the storm's (its figures are kept). */
  const sendOne = async (r: FuzzRequest, count: boolean): Promise<string[]> => {
    const started = performance.now();
    let response: FuzzResponse;
    try {
      response = await withDeadline(target.send(r), caseTimeoutMs, `${r.method} ${r.url}`);
    } catch (err) {
      return [(err as Error).message];
    }
    if (count) {
      times.push(performance.now() - started);
      bump(byStatus, String(response.status));
      if (response.status === 200 && /^text\/event-stream/.test(String(response.headers['content-type'] ?? '')))
        streamed++;
      const route = `${r.server} ${r.url}`;
      byRoute[route] ??= {};
      bump(byRoute[route] as Record<string, number>, String(response.status));
      for (const m of (r.mutation || 'valid').split(' ')) bump(byMutation, m);
    }
    return violations(response, r, invariantOptions);
  };

  // The storm: each run hands its request to the pool and returns once it is sent.
  const pool = new Pool(concurrency);
  const inFlight = new Map<number, { request: FuzzRequest; beside: Set<number> }>();
  const sent: Promise<void>[] = [];
  let runs = 0;
  let broken: Broken | null = null;
  /** Each run's request, in a few words (what was in flight beside a failure). */
  const summaries: string[] = [];
  const storm = fc.asyncProperty(drawn(), async (r) => {
    const run = runs++;
    if (broken !== null) return;
    await pool.acquire();
    if (broken !== null) {
      pool.release();
      return;
    }
    summaries[run] = summary(r);
    const beside = new Set(inFlight.keys());
    for (const other of inFlight.values()) other.beside.add(run);
    inFlight.set(run, { request: r, beside });
    sent.push(
      sendOne(r, true).then((problems) => {
        if (problems.length > 0 && (broken === null || run < broken.run))
          broken = { run, request: r, problems, with: beside };
        inFlight.delete(run);
        pool.release();
      }),
    );
  });
  const warnings: string[] = [];
  const onWarning = (w: Error): void => {
    warnings.push(`${w.name}: ${w.message}`);
  };
  process.on('warning', onWarning);
  const t0 = performance.now();
  let stormResult: fc.RunDetails<[FuzzRequest]>;
  try {
    stormResult = await fc.check(storm, { numRuns: options.cases, seed: options.seed });
    await Promise.all(sent);
    // Node emits a warning on the tick after its cause.
    await new Promise((resolve) => setImmediate(resolve));
  } finally {
    process.off('warning', onWarning);
  }
  const ms = performance.now() - t0;

  let failure: FuzzReport['failure'] = null;
  const found = broken as Broken | null;
  if (stormResult.failed) {
    failure = {
      request: reported(request('generation', 'POST', '')),
      problems: [String(stormResult.errorInstance)],
      run: -1,
      alone: false,
      with: [],
    };
  } else if (found !== null) {
    // Replayed alone, then shrunk, each candidate on its own; within the budget.
    await target.settled(10_000);
    const budget = options.shrinkBudgetMs ?? 60_000;
    const startedShrink = performance.now();
    const replay = fc.asyncProperty(drawn(), async (r) => {
      if (performance.now() - startedShrink > budget) return;
      const problems = await sendOne(r, false);
      if (problems.length > 0) throw new RuleBroken(r, problems);
    });
    const result = await fc.check(replay, { numRuns: 1, seed: options.seed, path: String(found.run) });
    const cause = result.failed ? result.errorInstance : null;
    const alone = cause instanceof RuleBroken;
    failure = {
      request: reported(alone ? cause.request : found.request),
      problems: alone ? cause.problems : found.problems,
      run: found.run,
      alone,
      with: [...found.with].sort((a, b) => a - b).map((i) => summaries[i] ?? String(i)),
    };
  }
  const shrinkMs = failure === null ? 0 : performance.now() - t0 - ms;

  await target.settled(10_000);
  const health = await target.send(request('generation', 'GET', '/health'));
  const valid = await target.send(
    request('generation', 'POST', '/v1/chat/completions', {
      messages: [{ role: 'user', content: 'still there?' }],
      max_tokens: 4,
    }),
  );
  let embeddings: FuzzReport['after']['embeddings'];
  if (target.servers.includes('embeddings')) {
    const h = await target.send(request('embeddings', 'GET', '/health'));
    const v = await target.send(request('embeddings', 'POST', '/v1/embeddings', { input: ['still', 'there?'] }));
    embeddings = { healthStatus: h.status, validStatus: v.status };
  }
  await target.settled(10_000);
  const sorted = [...times].sort((a, b) => a - b);
  return {
    cases: times.length,
    seed: options.seed,
    concurrency,
    ms,
    shrinkMs,
    byStatus,
    streamed,
    byRoute,
    byMutation,
    slowestMs: sorted.at(-1) ?? 0,
    p99Ms: sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * 0.99))] ?? 0,
    warnings,
    failure,
    after: {
      healthStatus: health.status,
      validStatus: valid.status,
      slots: target.slotStates(),
      ...(embeddings !== undefined ? { embeddings } : {}),
    },
  };
}

/** The report's verdict: every rule held and the server came through whole. */
export function fuzzPassed(r: FuzzReport): boolean {
  const idle = (states: string[]) => states.every((s) => s === 'idle');
  return (
    r.failure === null &&
    r.warnings.length === 0 &&
    r.after.healthStatus === 200 &&
    r.after.validStatus === 200 &&
    (r.after.embeddings === undefined ||
      (r.after.embeddings.healthStatus === 200 && r.after.embeddings.validStatus === 200)) &&
    idle(r.after.slots.scheduler) &&
    idle(r.after.slots.decoder)
  );
}

function statusList(counts: Record<string, number>): string {
  return Object.entries(counts)
    .sort(([a], [b]) => Number(a) - Number(b))
    .map(([s, n]) => `${s}: ${n}`)
    .join(', ');
}

export function formatFuzzReport(r: FuzzReport): string {
  const mutations = Object.entries(r.byMutation)
    .sort(([, a], [, b]) => b - a)
    .map(([m, n]) => `${m} ${n}`)
    .join(', ');
  const routes = Object.entries(r.byRoute)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([route, counts]) => `  ${route}: ${statusList(counts)}`);
  const e = r.after.embeddings;
  const lines = [
    `=== fuzz: ${r.cases} requests, ${r.concurrency} at a time, seed ${r.seed} ===`,
    `time ${(r.ms / 1000).toFixed(1)} s (${(r.ms / Math.max(1, r.cases)).toFixed(1)} ms per request), slowest ${r.slowestMs.toFixed(0)} ms, p99 ${r.p99Ms.toFixed(0)} ms${r.shrinkMs > 0 ? `; then ${(r.shrinkMs / 1000).toFixed(1)} s replaying and shrinking` : ''}`,
    `statuses: ${statusList(r.byStatus)} (${r.streamed} of the 200s streamed)`,
    'by route:',
    ...routes,
    `mutations: ${mutations}`,
    `after the storm: /health ${r.after.healthStatus}, a valid request ${r.after.validStatus}, slots (scheduler) ${r.after.slots.scheduler.join(' ')}, slots (decoder) ${r.after.slots.decoder.join(' ')}${e === undefined ? '' : `; embedding server: /health ${e.healthStatus}, a valid request ${e.validStatus}`}`,
  ];
  if (r.warnings.length > 0) lines.push(`process warnings during the storm: ${r.warnings.join('; ')}`);
  if (r.failure !== null) {
    const f = r.failure;
    lines.push(
      `FAILED (run ${f.run}, ${f.alone ? 'again when sent alone, shrunk to' : 'not when sent alone; as it came'}): ${f.request.server === 'embeddings' ? '[embeddings] ' : ''}${f.request.method} ${f.request.url} (${f.request.mutation || 'valid'}): ${f.problems.join('; ')}`,
      `  body: ${f.request.payload.slice(0, 500)}`,
    );
    if (f.with.length > 0)
      lines.push(
        `  in flight beside the original (${f.with.length}): ${f.with.slice(0, 12).join(', ')}${f.with.length > 12 ? ', ...' : ''}`,
      );
  }
  lines.push(
    fuzzPassed(r)
      ? "verdict: PASS (no 5xx, errors in their route's shape, every 200 as its route promises, the servers whole afterwards)"
      : 'verdict: FAIL',
  );
  return `${lines.join('\n')}\n`;
}
