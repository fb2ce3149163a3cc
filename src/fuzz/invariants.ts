// What every answer must be, whatever was sent: never a 5xx; an error in its route's shape (OpenAI's, Anthropic's
// on /v1/messages) with a JSON content type; an X-Request-Id on every response; and a 200 what its route promises
// (body-rules.ts): its shape, usage that adds up, legal finish reasons, n choices, the token limit kept, one
// terminal event per stream. Pure: a response (and what was sent) in, the broken rules out.
import {
  anthropicErrorProblem,
  bodyViolations,
  errorShapeProblem,
  isRecord,
  type RouteContext,
  routeOf,
} from './body-rules.ts';

export { anthropicErrorProblem, errorShapeProblem } from './body-rules.ts';

export interface FuzzResponse {
  status: number;
  headers: Record<string, string | string[] | number | undefined>;
  body: string;
}

/** What the response answered: the request as sent, for the rules that depend on it (n, max_tokens, stream). */
export interface SentRequest {
  method: string;
  url: string;
  /** Which server: the generation one (default) or the embedding one. */
  server?: 'generation' | 'embeddings';
  payload?: Buffer | string;
}

export interface InvariantOptions {
  /** Tokens per slot (prompt and completion together): no answer may hold more. */
  ctxPerSlot?: number;
}

function header(r: FuzzResponse, name: string): string {
  const v = r.headers[name];
  return Array.isArray(v) ? v.join(', ') : v === undefined ? '' : String(v);
}

/** Anthropic's routes answer in Anthropic's shape. */
export function anthropicRoute(url: string): boolean {
  return /^\/v1\/messages(\/|$|\?)/.test(url);
}

/** The request body as the server read it (a BOM skipped), or undefined when it is not a JSON object. */
export function sentBody(payload: Buffer | string | undefined): Record<string, unknown> | undefined {
  if (payload === undefined) return undefined;
  const text = (typeof payload === 'string' ? payload : payload.toString('utf8')).replace(/^\uFEFF/, '');
  try {
    const value: unknown = JSON.parse(text);
    return isRecord(value) ? value : undefined;
  } catch {
    return undefined;
  }
}

export function violations(r: FuzzResponse, sent?: SentRequest, options: InvariantOptions = {}): string[] {
  const out: string[] = [];
  if (r.status >= 500) out.push(`status ${r.status}`);
  const id = header(r, 'x-request-id');
  if (!/^[\x21-\x7e]{1,128}$/.test(id)) out.push(`x-request-id '${id.slice(0, 40)}' missing or not sane`);
  const type = header(r, 'content-type');
  const anthropic = sent !== undefined && anthropicRoute(sent.url);
  if (r.status >= 400) {
    if (!/^application\/json/.test(type)) out.push(`error with content-type '${type}'`);
    let json: unknown;
    try {
      json = JSON.parse(r.body);
    } catch {
      out.push(`error body is not JSON: ${r.body.slice(0, 80)}`);
      return out;
    }
    const problem = anthropic ? anthropicErrorProblem(json) : errorShapeProblem(json);
    if (problem !== null)
      out.push(
        `error body not in ${anthropic ? "Anthropic's" : "OpenAI's"} shape (${problem}): ${r.body.slice(0, 120)}`,
      );
    return out;
  }
  const context: RouteContext = {
    route: sent === undefined ? 'other' : routeOf(sent.url),
    server: sent?.server ?? 'generation',
    body: sentBody(sent?.payload),
    ctxPerSlot: options.ctxPerSlot ?? null,
  };
  if (sent !== undefined && sent.method !== 'POST' && sent.method !== 'GET')
    out.push(`${sent.method} ${sent.url} answered ${r.status}`);
  out.push(...bodyViolations(r.status, type, r.body, context));
  return out;
}
