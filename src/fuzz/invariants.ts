// What every answer must be, whatever was sent: never a 5xx; an error in OpenAI's shape with a JSON content
// type; a stream that is well-formed SSE, whose errors are in the same shape and which ends with [DONE]; and
// an X-Request-Id on every response. Pure: a response in, the broken rules out.

export interface FuzzResponse {
  status: number;
  headers: Record<string, string | string[] | number | undefined>;
  body: string;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** OpenAI's error shape: {error: {message, type, param, code}} with string message and type. */
export function errorShapeProblem(value: unknown): string | null {
  if (!isRecord(value) || !isRecord(value.error)) return 'no error object';
  const e = value.error;
  if (typeof e.message !== 'string' || e.message === '') return 'error.message is not a non-empty string';
  if (typeof e.type !== 'string' || e.type === '') return 'error.type is not a non-empty string';
  if (!('param' in e) || (e.param !== null && typeof e.param !== 'string'))
    return 'error.param is not a string or null';
  if (!('code' in e) || (e.code !== null && typeof e.code !== 'string')) return 'error.code is not a string or null';
  return null;
}

function header(r: FuzzResponse, name: string): string {
  const v = r.headers[name];
  return Array.isArray(v) ? v.join(', ') : v === undefined ? '' : String(v);
}

/** The SSE data payloads of a stream (each `data:` field). */
function sseData(body: string): string[] {
  return body
    .split(/\r?\n/)
    .filter((line) => line.startsWith('data:'))
    .map((line) => line.slice(5).trimStart());
}

/** `doneEvent`: the route's streams end with `data: [DONE]` (OpenAI's do; llama-server's /completion does not). */
export function violations(r: FuzzResponse, doneEvent = true): string[] {
  const out: string[] = [];
  if (r.status >= 500) out.push(`status ${r.status}`);
  const id = header(r, 'x-request-id');
  if (!/^[\x21-\x7e]{1,128}$/.test(id)) out.push(`x-request-id '${id.slice(0, 40)}' missing or not sane`);
  const type = header(r, 'content-type');
  if (r.status >= 400) {
    if (!/^application\/json/.test(type)) out.push(`error with content-type '${type}'`);
    let json: unknown;
    try {
      json = JSON.parse(r.body);
    } catch {
      out.push(`error body is not JSON: ${r.body.slice(0, 80)}`);
      return out;
    }
    const problem = errorShapeProblem(json);
    if (problem !== null) out.push(`error body not in OpenAI's shape (${problem}): ${r.body.slice(0, 120)}`);
    return out;
  }
  if (/^text\/event-stream/.test(type)) {
    const events = sseData(r.body);
    if (doneEvent && events.at(-1) !== '[DONE]') out.push('stream does not end with [DONE]');
    for (const data of events) {
      if (data === '[DONE]') continue;
      let json: unknown;
      try {
        json = JSON.parse(data);
      } catch {
        out.push(`stream event is not JSON: ${data.slice(0, 80)}`);
        continue;
      }
      if (isRecord(json) && 'error' in json) {
        const problem = errorShapeProblem(json);
        if (problem !== null) out.push(`stream error not in OpenAI's shape (${problem})`);
        else if ((json.error as { type?: unknown }).type === 'server_error') out.push('stream error is a server_error');
      }
    }
  }
  return out;
}
