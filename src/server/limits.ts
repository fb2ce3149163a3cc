// How much one request may ask of the server. Each limit bounds work a single client could otherwise make the
// server do on its main thread (stop-string matching, schema checks, JSON walks) or on a worker (template
// rendering, schema and grammar conversion). Defaults are llama-server's where it has one, else generous; every
// one has a flag (src/entry/config/) and is listed with it in docs/RELIABILITY.md. A request over a limit gets a 400
// that names the field and the limit.
import { ApiError, invalidRequest } from './errors.ts';

export interface RequestLimits {
  /** Deepest nesting of arrays and objects in a JSON body. */
  maxJsonDepth: number;
  /** Entries of `messages`. */
  maxMessages: number;
  /** Entries of `stop`. */
  maxStopStrings: number;
  /** Characters of one stop string (matching costs grow with its square). */
  maxStopLength: number;
  /** Token ids `logit_bias` sets, after text keys are tokenized. */
  maxLogitBias: number;
  /** Entries of `tools`. */
  maxTools: number;
  /** Bytes of one JSON Schema (response_format, json_schema, a tool's parameters), as JSON. */
  maxSchemaBytes: number;
  /** Bytes of a GBNF grammar. */
  maxGrammarBytes: number;
}

/** OpenAI takes at most 128 tools; the rest are no one's limit but ours. */
export const REQUEST_LIMIT_KEYS = [
  'maxJsonDepth',
  'maxMessages',
  'maxStopStrings',
  'maxStopLength',
  'maxLogitBias',
  'maxTools',
  'maxSchemaBytes',
  'maxGrammarBytes',
] as const satisfies readonly (keyof RequestLimits)[];

export const DEFAULT_REQUEST_LIMITS: RequestLimits = {
  maxJsonDepth: 64,
  maxMessages: 2048,
  maxStopStrings: 16,
  maxStopLength: 256,
  maxLogitBias: 1024,
  maxTools: 128,
  maxSchemaBytes: 64 * 1024,
  maxGrammarBytes: 64 * 1024,
};

/** The socket-level limits, applied to the Node HTTP server. */
export interface ConnectionLimits {
  /** A client must send its request headers within this. */
  headersTimeoutMs: number;
  /** ... and the whole request, headers and body, within this (>= headersTimeoutMs). */
  requestReadTimeoutMs: number;
  /** An idle keep-alive connection is closed after this. */
  keepAliveTimeoutMs: number;
  /** Requests one keep-alive connection may carry before the server closes it (0: no limit). */
  maxRequestsPerSocket: number;
  /** Open connections; more are refused at accept (0: no limit). */
  maxConnections: number;
}

/** llama-server's (cpp-httplib's) keep-alive: 5 s idle, 100 requests per connection. */
export const DEFAULT_CONNECTION_LIMITS: ConnectionLimits = {
  headersTimeoutMs: 30_000,
  requestReadTimeoutMs: 60_000,
  keepAliveTimeoutMs: 5_000,
  maxRequestsPerSocket: 100,
  maxConnections: 1024,
};

export function checkConnectionLimits(limits: ConnectionLimits): ConnectionLimits {
  for (const [name, value] of Object.entries(limits)) {
    if (!Number.isInteger(value) || value < 0) throw new RangeError(`${name} must be an integer >= 0, got ${value}`);
  }
  if (limits.headersTimeoutMs < 1 || limits.requestReadTimeoutMs < 1 || limits.keepAliveTimeoutMs < 1)
    throw new RangeError('timeouts must be at least 1 ms');
  // Node's own rule: the headers are part of the request.
  if (limits.headersTimeoutMs > limits.requestReadTimeoutMs)
    throw new RangeError(
      `headersTimeoutMs (${limits.headersTimeoutMs}) must be <= requestReadTimeoutMs (${limits.requestReadTimeoutMs})`,
    );
  return limits;
}

/** How often Node checks the read timeouts: often enough that a timeout fires within a fraction of itself. */
export function timeoutCheckIntervalMs(limits: ConnectionLimits): number {
  return Math.max(10, Math.min(1000, Math.floor(limits.headersTimeoutMs / 4)));
}

function tooMany(param: string, what: string, count: number, limit: number, flag: string): ApiError {
  return invalidRequest(
    `'${param}' has ${count} ${what}; this server takes at most ${limit} (${flag}).`,
    param,
    'limit_exceeded',
  );
}

/** A body nested deeper than the limit: refused before anything walks it recursively. */
export function checkJsonDepth(value: unknown, limit: number): void {
  // Iterative, so the check itself cannot overflow the stack it protects.
  const stack: Array<[unknown, number]> = [[value, 1]];
  while (stack.length > 0) {
    const [v, depth] = stack.pop() as [unknown, number];
    if (typeof v !== 'object' || v === null) continue;
    if (depth > limit)
      throw new ApiError(
        400,
        'invalid_request_error',
        `The request body nests arrays and objects more than ${limit} deep (--max-json-depth).`,
        { code: 'limit_exceeded' },
      );
    for (const child of Array.isArray(v) ? v : Object.values(v)) {
      if (typeof child === 'object' && child !== null) stack.push([child, depth + 1]);
    }
  }
}

export function checkMessages(count: number, limits: RequestLimits): void {
  if (count > limits.maxMessages) throw tooMany('messages', 'messages', count, limits.maxMessages, '--max-messages');
}

export function checkTools(count: number, limits: RequestLimits): void {
  if (count > limits.maxTools) throw tooMany('tools', 'tools', count, limits.maxTools, '--max-tools');
}

export function checkStops(stops: readonly string[], limits: RequestLimits): void {
  if (stops.length > limits.maxStopStrings)
    throw tooMany('stop', 'stop strings', stops.length, limits.maxStopStrings, '--max-stop-strings');
  const long = stops.findIndex((s) => s.length > limits.maxStopLength);
  if (long >= 0)
    throw invalidRequest(
      `'stop' string ${long} has ${stops[long]?.length} characters; this server takes at most ${limits.maxStopLength} (--max-stop-length).`,
      'stop',
      'limit_exceeded',
    );
}

export function checkLogitBias(entries: number, limits: RequestLimits): void {
  if (entries > limits.maxLogitBias)
    throw tooMany('logit_bias', 'token biases', entries, limits.maxLogitBias, '--max-logit-bias');
}

/** A schema's size as JSON, checked before it is validated or converted. */
export function checkSchemaSize(schema: unknown, param: string, limits: RequestLimits): void {
  const bytes = Buffer.byteLength(JSON.stringify(schema) ?? '');
  if (bytes > limits.maxSchemaBytes)
    throw invalidRequest(
      `'${param}' is a schema of ${bytes} bytes; this server takes at most ${limits.maxSchemaBytes} (--max-schema-bytes).`,
      param,
      'limit_exceeded',
    );
}

export function checkGrammarSize(grammar: string, limits: RequestLimits): void {
  const bytes = Buffer.byteLength(grammar);
  if (bytes > limits.maxGrammarBytes)
    throw invalidRequest(
      `'grammar' has ${bytes} bytes; this server takes at most ${limits.maxGrammarBytes} (--max-grammar-bytes).`,
      'grammar',
      'limit_exceeded',
    );
}
