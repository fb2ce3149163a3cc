// Who a request is queued for (the fairness key) and how urgent it is (the scheduler's priority), from what
// the router in front and the client sent. The header names are the Gateway API Inference Extension's, now
// llm-d's router's (pkg/epp/metadata/consts.go there: the x-llm-d-* names, with the x-gateway-* names as
// deprecated aliases); docs/SCALING.md has the whole mapping. Like the fairness key, these headers are
// trusted: a router that serves untrusted clients sets or strips them.
import type { FastifyRequest } from 'fastify';
import { invalidRequest } from './errors.ts';

/** The tenant the router sends: the current name first, then the deprecated alias. */
export const FAIRNESS_HEADERS = ['x-llm-d-inference-fairness-id', 'x-gateway-inference-fairness-id'] as const;
/** The InferenceObjective the request is for; its priority comes from --objective-priority. */
export const OBJECTIVE_HEADERS = ['x-llm-d-inference-objective', 'x-gateway-inference-objective'] as const;
/** A priority given directly: an integer, higher first (InferenceObjective's scale). */
export const PRIORITY_HEADER = 'x-priority';

/** InferenceObjective priorities are int32. */
const PRIORITY_MIN = -(2 ** 31);
const PRIORITY_MAX = 2 ** 31 - 1;

function header(request: FastifyRequest, names: readonly string[]): string | null {
  for (const name of names) {
    const value = request.headers[name];
    // Node joins repeated custom headers with ', '; a list is taken as it came.
    const text = Array.isArray(value) ? value.join(', ') : value;
    if (typeof text === 'string' && text.trim() !== '') return text.trim();
  }
  return null;
}

/**
 * The fairness key: the router's tenant header, else the API key (hashed, as /slots shows it), else the
 * body's `user`, else the remote address.
 */
export function clientKey(request: FastifyRequest, user: string | null | undefined): string {
  const tenant = header(request, FAIRNESS_HEADERS);
  if (tenant !== null) return `tenant:${tenant}`;
  if (request.apiKeyClient !== null) return request.apiKeyClient;
  if (typeof user === 'string' && user !== '') return `user:${user}`;
  return `ip:${request.ip}`;
}

/**
 * The scheduler priority: x-priority when given, else the objective's priority from `objectives`, else 0
 * (as the Endpoint Picker treats a request without a known objective). A bad x-priority is a 400 naming it.
 */
export function requestPriority(request: FastifyRequest, objectives: ReadonlyMap<string, number>): number {
  const given = header(request, [PRIORITY_HEADER]);
  if (given !== null) {
    const n = /^[-+]?\d+$/.test(given) ? Number(given) : Number.NaN;
    if (!Number.isInteger(n) || n < PRIORITY_MIN || n > PRIORITY_MAX) {
      throw invalidRequest(
        `Invalid '${PRIORITY_HEADER}' header: '${given}' is not an integer between ${PRIORITY_MIN} and ${PRIORITY_MAX} (higher is served first).`,
        null,
        'invalid_priority',
      );
    }
    return n;
  }
  const objective = header(request, OBJECTIVE_HEADERS);
  return objective === null ? 0 : (objectives.get(objective) ?? 0);
}

/** `NAME=PRIORITY` entries (--objective-priority) as a map; throws an Error naming the bad entry. */
export function parseObjectivePriorities(entries: readonly string[]): Map<string, number> {
  const out = new Map<string, number>();
  for (const entry of entries) {
    const m = /^([^=\s]+)=([-+]?\d+)$/.exec(entry.trim());
    const n = m?.[2] === undefined ? Number.NaN : Number(m[2]);
    if (m?.[1] === undefined || !Number.isInteger(n) || n < PRIORITY_MIN || n > PRIORITY_MAX) {
      throw new Error(`'${entry}' is not NAME=PRIORITY with an integer priority (e.g. critical=10)`);
    }
    out.set(m[1], n);
  }
  return out;
}
