// Every error leaves the server in OpenAI's shape, {error: {message, type, param, code}}, with a status the
// OpenAI SDKs act on (429 and 5xx are retried, 4xx are not). One function maps anything thrown to it. The
// Anthropic routes write the same ApiError in their API's shape (messages-api/errors.ts); the typed errors of the
// layers below are src/errors.ts's.
import { STATUS_CODES } from 'node:http';
import { ContextExceededError, RejectedError } from '../errors.ts';

export interface OpenAIErrorBody {
  error: {
    message: string;
    type: string;
    param: string | null;
    code: string | null;
    [extra: string]: unknown;
  };
}

export class ApiError extends Error {
  readonly statusCode: number;
  readonly type: string;
  readonly param: string | null;
  readonly code: string | null;
  /** Extra fields inside `error` (llama-server's n_prompt_tokens and n_ctx). */
  readonly extra: Readonly<Record<string, unknown>>;
  readonly headers: Readonly<Record<string, string>>;

  constructor(
    statusCode: number,
    type: string,
    message: string,
    options: {
      param?: string | null;
      code?: string | null;
      extra?: Record<string, unknown>;
      headers?: Record<string, string>;
      cause?: unknown;
    } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'ApiError';
    this.statusCode = statusCode;
    this.type = type;
    this.param = options.param ?? null;
    this.code = options.code ?? null;
    this.extra = options.extra ?? {};
    this.headers = options.headers ?? {};
  }

  body(): OpenAIErrorBody {
    return { error: { message: this.message, type: this.type, param: this.param, code: this.code, ...this.extra } };
  }
}

export function invalidRequest(message: string, param: string | null = null, code: string | null = null): ApiError {
  return new ApiError(400, 'invalid_request_error', message, { param, code });
}

/** llama-server's answer to a prompt longer than a slot, with OpenAI's code for the same thing. */
export function contextExceeded(promptTokens: number, nCtx: number): ApiError {
  return new ApiError(
    400,
    'exceed_context_size_error',
    `the request exceeds the available context size: the prompt has ${promptTokens} tokens and a slot holds ${nCtx} (prompt and completion together)`,
    { code: 'context_length_exceeded', extra: { n_prompt_tokens: promptTokens, n_ctx: nCtx } },
  );
}

export function invalidApiKey(): ApiError {
  return new ApiError(
    401,
    'authentication_error',
    'Invalid API key: send a configured key as "Authorization: Bearer <key>"',
    {
      code: 'invalid_api_key',
    },
  );
}

export function notFound(method: string, url: string): ApiError {
  return new ApiError(404, 'not_found_error', `Unknown route: ${method} ${url.split('?')[0] ?? url}`, {
    code: 'not_found',
  });
}

/** llama-server's ERROR_TYPE_NOT_SUPPORTED: an optional endpoint that is off. */
export function notSupported(message: string): ApiError {
  return new ApiError(501, 'not_supported_error', message, { code: 'not_supported' });
}

/** A generation route on an --embeddings server. 400, as the request (not the server) is what is wrong for it. */
export function notAGenerationServer(): ApiError {
  return invalidRequest(
    'This server does not support completions: it serves an embedding model. Start it without `--embeddings`',
    null,
    'generation_not_enabled',
  );
}

/** An embeddings route on a generation server: llama-server's words (it answers 501; a 400 here, like the reverse). */
export function notAnEmbeddingServer(): ApiError {
  return invalidRequest(
    'This server does not support embeddings. Start it with `--embeddings`',
    null,
    'embeddings_not_enabled',
  );
}

export function modelLoading(): ApiError {
  return new ApiError(503, 'unavailable_error', 'Loading model', { code: 'model_loading' });
}

export function shuttingDown(): ApiError {
  return new ApiError(503, 'unavailable_error', 'The server is shutting down', { code: 'shutting_down' });
}

/** The request's deadline passed (ServerOptions.requestTimeoutMs). 504: the server gave up waiting on generation. */
export function requestTimeout(ms: number | undefined): ApiError {
  return new ApiError(
    504,
    'timeout_error',
    `The request did not finish within its deadline${ms === undefined ? '' : ` of ${ms} ms`}`,
    {
      code: 'request_timeout',
    },
  );
}

/** The decoder could not start the request (llama-server: 400 "Failed to initialize samplers: ..."). */
export function decoderRefused(reason: string): ApiError {
  return new ApiError(400, 'invalid_request_error', `Failed to initialize samplers: ${reason}`, {
    code: 'sampler_init_failed',
  });
}

export function generationFailed(): ApiError {
  return new ApiError(500, 'server_error', 'Generation failed; the server logged the cause', {
    code: 'generation_failed',
  });
}

export function internalError(): ApiError {
  return new ApiError(500, 'server_error', 'Internal server error', { code: null });
}

interface ValidationIssue {
  keyword: string;
  instancePath: string;
  message?: string;
  params: Record<string, unknown>;
}

interface FastifyLikeError {
  code?: unknown;
  statusCode?: unknown;
  message?: unknown;
  validation?: unknown;
  validationContext?: unknown;
}

/** Maps anything thrown while handling a request to the error the client sees. */
export function toApiError(err: unknown): ApiError {
  if (err instanceof ApiError) return err;
  if (err instanceof RejectedError) {
    if (err.code === 'QUEUE_FULL') {
      const seconds = Math.max(1, Math.ceil(err.retryAfterSeconds));
      return new ApiError(
        429,
        'rate_limit_exceeded',
        `The server is busy (request queue full); retry after ${seconds} s`,
        {
          code: 'queue_full',
          headers: { 'retry-after': String(seconds) },
        },
      );
    }
    return shuttingDown();
  }
  if (err instanceof ContextExceededError) {
    // The route checks prompt length before submitting, so this only happens if the scheduler is stricter.
    return new ApiError(400, 'exceed_context_size_error', err.message, { code: 'context_length_exceeded' });
  }
  if (typeof err !== 'object' || err === null) return internalError();
  const e = err as FastifyLikeError;
  if (Array.isArray(e.validation)) {
    return validationError(
      e.validation as ValidationIssue[],
      typeof e.validationContext === 'string' ? e.validationContext : 'body',
    );
  }
  switch (e.code) {
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
      return invalidRequest(`The request body is not valid JSON: ${String(e.message)}`, null, 'invalid_json');
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return invalidRequest('The request body is empty; expected a JSON object', null, 'invalid_json');
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new ApiError(413, 'invalid_request_error', 'The request body is larger than the server accepts', {
        code: 'request_too_large',
      });
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return new ApiError(415, 'invalid_request_error', 'Unsupported Content-Type; send application/json', {
        code: 'unsupported_media_type',
      });
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return invalidRequest('Content-Length does not match the body', null, 'invalid_content_length');
  }
  // JSON parse errors from other parsers, and Fastify's own 4xx errors: their messages are meant for clients.
  if (err instanceof SyntaxError)
    return invalidRequest(`The request body is not valid JSON: ${err.message}`, null, 'invalid_json');
  if (typeof e.statusCode === 'number' && e.statusCode >= 400 && e.statusCode < 500 && typeof e.message === 'string') {
    return new ApiError(e.statusCode, 'invalid_request_error', e.message);
  }
  return internalError();
}

/** "/messages/0/role" -> "messages[0].role" (OpenAI's way of naming a parameter). */
export function paramName(instancePath: string): string {
  let out = '';
  for (const raw of instancePath.split('/').slice(1)) {
    const seg = raw.replaceAll('~1', '/').replaceAll('~0', '~');
    out += /^\d+$/.test(seg) ? `[${seg}]` : out === '' ? seg : `.${seg}`;
  }
  return out;
}

function joinPath(base: string, child: string): string {
  return base === '' ? child : `${base}.${child}`;
}

/**
 * One clear message from a validator's issues. Unions report every branch's complaint; the most useful one is
 * the deepest that is not just "wrong type" (e.g. "must be <= 2" over "must be null"); when all are type
 * mismatches, they merge into "must be number or null".
 */
export function validationError(issues: readonly ValidationIssue[], context = 'body'): ApiError {
  const candidates = issues.filter((i) => i.keyword !== 'anyOf' && i.keyword !== 'oneOf');
  const pool = candidates.length > 0 ? candidates : issues;
  const depth = (i: ValidationIssue): number => (i.instancePath === '' ? 0 : i.instancePath.split('/').length - 1);
  const deepest = Math.max(...pool.map(depth));
  const atDeepest = pool.filter((i) => depth(i) === deepest);
  const best = atDeepest.find((i) => i.keyword !== 'type') ?? atDeepest[0];
  if (best === undefined) return invalidRequest(`Invalid request ${context}`);
  const where = paramName(best.instancePath);

  if (best.keyword === 'required') {
    const missing = best.params.requiredProperties ?? best.params.missingProperty;
    const first = Array.isArray(missing) ? String(missing[0]) : String(missing);
    const param = joinPath(where, first);
    return invalidRequest(`Missing required parameter: '${param}'.`, param, 'missing_required_parameter');
  }
  let detail: string;
  if (best.keyword === 'type') {
    const types = [...new Set(atDeepest.filter((i) => i.keyword === 'type').map((i) => String(i.params.type)))];
    detail = `must be ${types.join(' or ')}`;
  } else if (best.keyword === 'enum' && Array.isArray(best.params.allowedValues)) {
    detail = `must be one of ${best.params.allowedValues.map((v) => `'${String(v)}'`).join(', ')}`;
  } else if (best.keyword === 'const' && 'allowedValue' in best.params) {
    detail = `must be '${String(best.params.allowedValue)}'`;
  } else {
    detail = best.message ?? 'is invalid';
  }
  if (where === '') return invalidRequest(`Invalid request ${context}: ${detail}.`, null, 'invalid_type');
  return invalidRequest(`Invalid value for '${where}': ${detail}.`, where, 'invalid_value');
}

// What the server writes on a socket whose request never became one (Node's 'clientError'): a read timeout
// (slow client), headers too large, or bytes that are not HTTP. Raw HTTP/1.1, in OpenAI's error shape, then
// the connection closes.
function clientErrorOf(err: NodeJS.ErrnoException): ApiError {
  if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT')
    return new ApiError(
      408,
      'timeout_error',
      'The request was not received in time (--headers-timeout, --body-timeout)',
      {
        code: 'request_read_timeout',
      },
    );
  if (err.code === 'HPE_HEADER_OVERFLOW')
    return new ApiError(431, 'invalid_request_error', 'The request headers are larger than the server accepts', {
      code: 'headers_too_large',
    });
  return new ApiError(400, 'invalid_request_error', 'The request is not valid HTTP', { code: 'bad_request' });
}

export function clientErrorResponse(err: NodeJS.ErrnoException): string {
  const api = clientErrorOf(err);
  const body = JSON.stringify(api.body());
  return [
    `HTTP/1.1 ${api.statusCode} ${STATUS_CODES[api.statusCode] ?? ''}`,
    'Content-Type: application/json; charset=utf-8',
    `Content-Length: ${Buffer.byteLength(body)}`,
    'Connection: close',
    '',
    body,
  ].join('\r\n');
}
