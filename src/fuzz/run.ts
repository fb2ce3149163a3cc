// The storm as a property (fast-check): every generated request (requests.ts) gets an answer that keeps the
// rules (invariants.ts) within a deadline; afterwards the server answers /health and a valid request, and every
// slot is idle, in the scheduler's view and the decoder's. A broken rule fails the property, which fast-check
// then shrinks to a smallest request that still breaks it.
import fc from 'fast-check';
import { type FuzzResponse, violations } from './invariants.ts';
import { type FuzzRequest, fuzzRequest } from './requests.ts';

export interface FuzzTarget {
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
  /** A request without an answer by then is a hang. Default 20 s. */
  caseTimeoutMs?: number;
}

export interface FuzzReport {
  cases: number;
  seed: number;
  ms: number;
  byStatus: Record<string, number>;
  /** How often each kind of mutation was sent. */
  byMutation: Record<string, number>;
  slowestMs: number;
  p99Ms: number;
  /** The smallest failing request fast-check found, with what it broke; null when every rule held. */
  failure: { request: Omit<FuzzRequest, 'payload'> & { payload: string }; problems: string[] } | null;
  after: { healthStatus: number; validStatus: number; slots: { scheduler: string[]; decoder: string[] } };
}

class RuleBroken extends Error {
  constructor(
    readonly request: FuzzRequest,
    readonly problems: string[],
  ) {
    super(`${request.method} ${request.url} (${request.mutation || 'valid'}): ${problems.join('; ')}`);
  }
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

export async function runFuzz(target: FuzzTarget, options: FuzzOptions): Promise<FuzzReport> {
  const caseTimeoutMs = options.caseTimeoutMs ?? 20_000;
  const byStatus: Record<string, number> = {};
  const byMutation: Record<string, number> = {};
  const times: number[] = [];
  let failure: FuzzReport['failure'] = null;
  const t0 = performance.now();
  const property = fc.asyncProperty(fuzzRequest({ bodyLimitBytes: options.bodyLimitBytes }), async (request) => {
    const started = performance.now();
    let response: FuzzResponse;
    try {
      response = await withDeadline(target.send(request), caseTimeoutMs, `${request.method} ${request.url}`);
    } catch (err) {
      throw new RuleBroken(request, [(err as Error).message]);
    }
    times.push(performance.now() - started);
    byStatus[response.status] = (byStatus[response.status] ?? 0) + 1;
    for (const m of (request.mutation || 'valid').split(' ')) byMutation[m] = (byMutation[m] ?? 0) + 1;
    const problems = violations(response, request.url !== '/completion');
    if (problems.length > 0) throw new RuleBroken(request, problems);
  });
  const result = await fc.check(property, { numRuns: options.cases, seed: options.seed });
  if (result.failed) {
    const cause = result.errorInstance;
    if (cause instanceof RuleBroken) {
      const { payload, ...rest } = cause.request;
      failure = { request: { ...rest, payload: payload.toString('utf8').slice(0, 2000) }, problems: cause.problems };
    } else
      failure = {
        request: { method: 'POST', url: '', headers: {}, payload: '', mutation: '' },
        problems: [String(cause)],
      };
  }
  const ms = performance.now() - t0;

  await target.settled(10_000);
  const health = await target.send({
    method: 'GET',
    url: '/health',
    headers: {},
    payload: Buffer.alloc(0),
    mutation: '',
  });
  const valid = await target.send({
    method: 'POST',
    url: '/v1/chat/completions',
    headers: { 'content-type': 'application/json' },
    payload: json({ messages: [{ role: 'user', content: 'still there?' }], max_tokens: 4 }),
    mutation: '',
  });
  await target.settled(10_000);
  const sorted = [...times].sort((a, b) => a - b);
  return {
    cases: times.length,
    seed: options.seed,
    ms,
    byStatus,
    byMutation,
    slowestMs: sorted.at(-1) ?? 0,
    p99Ms: sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * 0.99))] ?? 0,
    failure,
    after: { healthStatus: health.status, validStatus: valid.status, slots: target.slotStates() },
  };
}

/** The report's verdict: every rule held and the server came through whole. */
export function fuzzPassed(r: FuzzReport): boolean {
  const idle = (states: string[]) => states.every((s) => s === 'idle');
  return (
    r.failure === null &&
    r.after.healthStatus === 200 &&
    r.after.validStatus === 200 &&
    idle(r.after.slots.scheduler) &&
    idle(r.after.slots.decoder)
  );
}

export function formatFuzzReport(r: FuzzReport): string {
  const statuses = Object.entries(r.byStatus)
    .sort(([a], [b]) => Number(a) - Number(b))
    .map(([s, n]) => `${s}: ${n}`)
    .join(', ');
  const mutations = Object.entries(r.byMutation)
    .sort(([, a], [, b]) => b - a)
    .map(([m, n]) => `${m} ${n}`)
    .join(', ');
  const lines = [
    `=== fuzz: ${r.cases} requests, seed ${r.seed} ===`,
    `time ${(r.ms / 1000).toFixed(1)} s (${(r.ms / Math.max(1, r.cases)).toFixed(1)} ms per request), slowest ${r.slowestMs.toFixed(0)} ms, p99 ${r.p99Ms.toFixed(0)} ms`,
    `statuses: ${statuses}`,
    `mutations: ${mutations}`,
    `after the storm: /health ${r.after.healthStatus}, a valid request ${r.after.validStatus}, slots (scheduler) ${r.after.slots.scheduler.join(' ')}, slots (decoder) ${r.after.slots.decoder.join(' ')}`,
  ];
  if (r.failure !== null)
    lines.push(
      `FAILED: ${r.failure.request.method} ${r.failure.request.url} (${r.failure.request.mutation || 'valid'}): ${r.failure.problems.join('; ')}`,
      `  body: ${r.failure.request.payload.slice(0, 500)}`,
    );
  lines.push(
    fuzzPassed(r)
      ? "verdict: PASS (no 5xx, every error in OpenAI's shape, the server whole afterwards)"
      : 'verdict: FAIL',
  );
  return `${lines.join('\n')}\n`;
}
