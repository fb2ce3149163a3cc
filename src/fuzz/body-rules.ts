// The rules a successful answer keeps, route by route. A body: the shape of its route's response (response-schemas.ts);
// usage that adds up (total = prompt + completion, cached <= prompt, the tokens streamed = the completion tokens
// where they can be counted); finish reasons legal for the route, and only where they apply; n choices when n was
// asked; the token limit kept (the request's, and the slot's room). A stream: well-formed SSE whose every event has
// its route's shape, with exactly one terminal event, last ([DONE] for OpenAI's chat and completions, message_stop for
// Anthropic's, response.completed/incomplete/failed for the Responses API), and an error event, if any, only where the
// route puts one. Each function returns the broken rules, as sentences.
import {
  ANTHROPIC_ERROR,
  APPLY_TEMPLATE,
  CHAT_COMPLETION,
  CHAT_COMPLETION_CHUNK,
  DETOKENIZE,
  EMBEDDING_LIST,
  INPUT_TOKENS,
  MESSAGE,
  MESSAGE_EVENTS,
  NATIVE_CHUNK,
  NATIVE_COMPLETION,
  NATIVE_EMBEDDINGS,
  RESPONSE,
  RESPONSE_EVENTS,
  shapeProblem,
  TEXT_COMPLETION,
  TEXT_COMPLETION_CHUNK,
  TOKENIZE,
} from './response-schemas.ts';

type Json = Record<string, unknown>;

export function isRecord(v: unknown): v is Json {
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

/** Anthropic's error shape: {type: 'error', error: {type, message}}. */
export function anthropicErrorProblem(value: unknown): string | null {
  return shapeProblem(ANTHROPIC_ERROR, value);
}

export type Route =
  | 'chat'
  | 'completions'
  | 'native'
  | 'responses'
  | 'messages'
  | 'count_tokens'
  | 'input_tokens'
  | 'embeddings'
  | 'native_embeddings'
  | 'tokenize'
  | 'detokenize'
  | 'apply_template'
  | 'other';

const ROUTES: Readonly<Record<string, Route>> = {
  '/v1/chat/completions': 'chat',
  '/chat/completions': 'chat',
  '/v1/completions': 'completions',
  '/completion': 'native',
  '/completions': 'native',
  '/v1/responses': 'responses',
  '/responses': 'responses',
  '/v1/messages': 'messages',
  '/v1/messages/count_tokens': 'count_tokens',
  '/v1/chat/completions/input_tokens': 'input_tokens',
  '/chat/completions/input_tokens': 'input_tokens',
  '/v1/responses/input_tokens': 'input_tokens',
  '/responses/input_tokens': 'input_tokens',
  '/v1/embeddings': 'embeddings',
  '/embeddings': 'native_embeddings',
  '/embedding': 'native_embeddings',
  '/tokenize': 'tokenize',
  '/detokenize': 'detokenize',
  '/apply-template': 'apply_template',
};

export function routeOf(url: string): Route {
  return ROUTES[url.split('?')[0] ?? url] ?? 'other';
}

const GENERATION: ReadonlySet<Route> = new Set(['chat', 'completions', 'native', 'responses', 'messages']);

export interface RouteContext {
  route: Route;
  server: 'generation' | 'embeddings';
  /** The request body as sent, when it was a JSON object. */
  body: Json | undefined;
  ctxPerSlot: number | null;
}

/** One SSE event: its `event:` name, if any, and its data (the `data:` lines joined). */
interface SseEvent {
  event: string | undefined;
  data: string;
}

export function sseEvents(body: string): SseEvent[] {
  const events: SseEvent[] = [];
  for (const block of body.split(/\r?\n\r?\n/)) {
    let event: string | undefined;
    const data: string[] = [];
    for (const line of block.split(/\r?\n/)) {
      if (line.startsWith('event:')) event = line.slice(6).trim();
      else if (line.startsWith('data:')) data.push(line.slice(5).replace(/^ /, ''));
    }
    if (data.length > 0) events.push({ event, data: data.join('\n') });
  }
  return events;
}

// What the request asked, read as the server reads it.

function int(v: unknown): number | null {
  return typeof v === 'number' && Number.isInteger(v) ? v : null;
}

/**
 * The request's token limit: the first of `fields` that is set (not null) decides; a positive integer is a limit,
 * -1 (or anything else) none. As the routes read them: chat max_completion_tokens, max_tokens, then n_predict.
 */
export function tokenLimit(body: Json | undefined, fields: readonly string[]): number | null {
  if (body === undefined) return null;
  for (const f of fields) {
    const v = body[f];
    if (v === undefined || v === null) continue;
    const n = int(v);
    return n !== null && n > 0 ? n : null;
  }
  return null;
}

const LIMIT_FIELDS: Readonly<Partial<Record<Route, readonly string[]>>> = {
  chat: ['max_completion_tokens', 'max_tokens', 'n_predict'],
  completions: ['max_tokens', 'n_predict'],
  // llama-server: max_tokens is n_predict's alias there, n_predict first.
  native: ['n_predict', 'max_tokens'],
  responses: ['max_output_tokens', 'n_predict'],
  messages: ['max_tokens'],
};

/** The generation could stop early for time (t_max_predict_ms): a 'length' finish then says nothing of the limit. */
function timeLimited(body: Json | undefined): boolean {
  return body?.t_max_predict_ms !== undefined && body.t_max_predict_ms !== null;
}

/** The request set stop strings (then tokens that completed one are counted but not sent). */
function hasStops(body: Json | undefined, field = 'stop'): boolean {
  const s = body?.[field];
  return typeof s === 'string' || (Array.isArray(s) && s.length > 0);
}

/** How many prompts a completion request holds (generation/prompt.ts: an array of prompts, or one). */
function promptCount(prompt: unknown): number {
  if (!Array.isArray(prompt) || prompt.length === 0) return 1;
  const piece = (v: unknown) => typeof v === 'string' || typeof v === 'number';
  if (!prompt.every(piece)) return prompt.length;
  return prompt.length > 1 && prompt.every((v) => typeof v === 'string') ? prompt.length : 1;
}

function nOf(body: Json | undefined): number {
  const n = int(body?.n);
  return n !== null && n >= 1 ? n : 1;
}

class Problems {
  readonly list: string[] = [];
  add(problem: string): void {
    if (!this.list.includes(problem)) this.list.push(problem);
  }
  check(ok: boolean, problem: string | (() => string)): void {
    if (!ok) this.add(typeof problem === 'string' ? problem : problem());
  }
  shape(what: string, schema: Record<string, unknown>, value: unknown): boolean {
    const problem = shapeProblem(schema, value);
    if (problem !== null) this.add(`${what} is not in its shape: ${problem}`);
    return problem === null;
  }
}

/** What a generation reports, in one vocabulary for every route. */
interface Counted {
  prompt: number;
  completion: number;
  /** How many choices share these counts (completion summed over them). */
  choices: number;
}

/**
 * The token limits: the completion within the request's limit and the slot's room (per choice); when the answer
 * says it was cut at its limit (`atLimit`), a single choice stopped exactly there.
 */
function checkLimits(p: Problems, c: Counted, limit: number | null, ctx: RouteContext, atLimit: boolean): void {
  if (limit !== null)
    p.check(
      c.completion <= limit * c.choices,
      `${c.completion} completion tokens over ${c.choices} choice(s), past the request's limit of ${limit}`,
    );
  const room = ctx.ctxPerSlot === null ? null : ctx.ctxPerSlot - c.prompt;
  if (room !== null) {
    p.check(room > 0, `a prompt of ${c.prompt} tokens was run in a slot of ${ctx.ctxPerSlot}`);
    p.check(
      c.completion <= room * c.choices,
      `${c.completion} completion tokens over ${c.choices} choice(s), past the slot's room of ${room}`,
    );
  }
  if (atLimit && c.choices === 1 && !timeLimited(ctx.body)) {
    const expected = Math.min(limit ?? Number.POSITIVE_INFINITY, room ?? Number.POSITIVE_INFINITY);
    if (Number.isFinite(expected))
      p.check(
        c.completion === expected,
        `cut at the token limit after ${c.completion} tokens, the limit being ${expected} (request ${limit ?? 'none'}, room ${room})`,
      );
  }
}

interface OpenAIUsage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
  prompt_tokens_details?: { cached_tokens: number };
}

function checkOpenAIUsage(p: Problems, u: OpenAIUsage): void {
  p.check(
    u.total_tokens === u.prompt_tokens + u.completion_tokens,
    `usage.total_tokens ${u.total_tokens} != prompt ${u.prompt_tokens} + completion ${u.completion_tokens}`,
  );
  p.check(u.prompt_tokens >= 1, 'usage.prompt_tokens is 0');
  const cached = u.prompt_tokens_details?.cached_tokens;
  if (cached !== undefined)
    p.check(cached <= u.prompt_tokens, `cached_tokens ${cached} > prompt_tokens ${u.prompt_tokens}`);
}

/** llama-server's timings, where an answer of one choice carries them, count what its usage counts. */
function checkTimings(p: Problems, timings: unknown, u: OpenAIUsage): void {
  if (!isRecord(timings)) return;
  const { predicted_n: predicted, prompt_n: prompt, cache_n: cache } = timings;
  if (typeof predicted === 'number')
    p.check(
      predicted === u.completion_tokens,
      `timings.predicted_n ${predicted}, usage.completion_tokens ${u.completion_tokens}`,
    );
  if (typeof prompt === 'number' && typeof cache === 'number') {
    p.check(
      prompt + cache === u.prompt_tokens,
      `timings.prompt_n ${prompt} + cache_n ${cache}, usage.prompt_tokens ${u.prompt_tokens}`,
    );
    const cached = u.prompt_tokens_details?.cached_tokens;
    if (cached !== undefined) p.check(cache === cached, `timings.cache_n ${cache}, usage cached_tokens ${cached}`);
  }
}

/** Choice indexes: each of 0..n-1 exactly once. */
function checkIndexes(p: Problems, indexes: readonly number[], n: number | null, what: string): void {
  const sorted = [...indexes].sort((a, b) => a - b);
  const expected = Array.from({ length: n ?? sorted.length }, (_, i) => i);
  p.check(
    sorted.length === expected.length && sorted.every((v, i) => v === expected[i]),
    `${what}: choice indexes [${sorted.join(',')}], expected [${expected.join(',')}]`,
  );
}

// OpenAI's chat completions.

interface ChatChoice {
  index: number;
  finish_reason: string;
  logprobs: { content: unknown[] | null } | null;
  message: { content: string | null; tool_calls?: unknown[] };
}

function chatFinishRule(p: Problems, finish: string, calledTools: boolean, index: number): void {
  p.check(
    ['stop', 'length', 'tool_calls'].includes(finish),
    `choice ${index}: finish_reason '${finish}' is not one this server gives`,
  );
  if (finish === 'tool_calls') p.check(calledTools, `choice ${index}: finish_reason tool_calls without a tool call`);
  if (calledTools)
    p.check(finish !== 'stop', `choice ${index}: tool calls with finish_reason 'stop' (not 'tool_calls')`);
}

/** Streamed (or reported) tokens against the completion count: equal unless a stop string ate some. */
function checkCounted(p: Problems, counted: number, completion: number, exact: boolean, what: string): void {
  if (exact) p.check(counted === completion, `${counted} ${what}, but completion_tokens ${completion}`);
  else p.check(counted <= completion, `${counted} ${what}, more than completion_tokens ${completion}`);
}

function chatCompletion(p: Problems, json: unknown, ctx: RouteContext): void {
  if (!p.shape('chat.completion', CHAT_COMPLETION, json)) return;
  const body = json as { choices: ChatChoice[]; usage?: OpenAIUsage };
  const n = nOf(ctx.body);
  checkIndexes(
    p,
    body.choices.map((c) => c.index),
    n,
    'chat.completion',
  );
  const logprobs = ctx.body?.logprobs === true;
  let counted = 0;
  for (const c of body.choices) {
    chatFinishRule(p, c.finish_reason, (c.message.tool_calls?.length ?? 0) > 0, c.index);
    if (logprobs) {
      p.check(Array.isArray(c.logprobs?.content), `choice ${c.index}: logprobs asked, none given`);
      counted += c.logprobs?.content?.length ?? 0;
    } else p.check(c.logprobs === null, `choice ${c.index}: logprobs not asked, given`);
  }
  p.check(body.usage !== undefined, 'chat.completion without usage');
  if (body.usage === undefined) return;
  checkOpenAIUsage(p, body.usage);
  const only = body.choices.length === 1 ? body.choices[0] : undefined;
  if (only !== undefined) checkTimings(p, (json as { timings?: unknown }).timings, body.usage);
  checkLimits(
    p,
    { prompt: body.usage.prompt_tokens, completion: body.usage.completion_tokens, choices: body.choices.length },
    tokenLimit(ctx.body, LIMIT_FIELDS.chat ?? []),
    ctx,
    only?.finish_reason === 'length',
  );
  if (logprobs) checkCounted(p, counted, body.usage.completion_tokens, !hasStops(ctx.body), 'logprobs entries');
}

interface StreamState {
  problems: Problems;
  /** Events in order, parsed ('[DONE]' as the string). */
  parsed: unknown[];
}

/** Parses an OpenAI stream's events: JSON each, errors in OpenAI's shape and not server errors, [DONE] once, last. */
function openAIStream(p: Problems, events: readonly SseEvent[], doneEvent: boolean): StreamState & { error: boolean } {
  const parsed: unknown[] = [];
  let error = false;
  events.forEach((e, i) => {
    if (e.data === '[DONE]') {
      p.check(doneEvent, "[DONE] on a route that doesn't send it");
      p.check(i === events.length - 1, '[DONE] is not the last event');
      parsed.push('[DONE]');
      return;
    }
    let json: unknown;
    try {
      json = JSON.parse(e.data);
    } catch {
      p.add(`stream event is not JSON: ${e.data.slice(0, 80)}`);
      return;
    }
    if (isRecord(json) && 'error' in json) {
      error = true;
      const problem = errorShapeProblem(json);
      if (problem !== null) p.add(`stream error not in OpenAI's shape (${problem})`);
      else if ((json.error as { type?: unknown }).type === 'server_error') p.add('stream error is a server_error');
      const rest = events.slice(i + 1).map((x) => x.data);
      p.check(
        rest.length === (doneEvent ? 1 : 0) && (!doneEvent || rest[0] === '[DONE]'),
        'events after a stream error',
      );
      return;
    }
    parsed.push(json);
  });
  if (doneEvent) p.check(events.at(-1)?.data === '[DONE]', 'stream does not end with [DONE]');
  return { problems: p, parsed, error };
}

interface ChunkChoice {
  index: number;
  finish_reason: string | null;
  delta?: { tool_calls?: unknown[] };
  logprobs?: { content: unknown[] | null } | null;
  text?: string;
}

interface Chunk {
  id: string;
  choices: ChunkChoice[];
  usage?: OpenAIUsage | null;
}

/** Chat and text completion streams: one finish per choice, the usage chunk where include_usage puts it. */
function openAIChunks(p: Problems, events: readonly SseEvent[], ctx: RouteContext, kind: 'chat' | 'completions'): void {
  const { parsed, error } = openAIStream(p, events, true);
  const chunks = parsed.filter((x): x is Chunk => x !== '[DONE]') as Chunk[];
  const schema = kind === 'chat' ? CHAT_COMPLETION_CHUNK : TEXT_COMPLETION_CHUNK;
  for (const c of chunks)
    if (!p.shape(kind === 'chat' ? 'chat.completion.chunk' : 'text_completion chunk', schema, c)) return;
  const ids = new Set(chunks.map((c) => c.id));
  p.check(ids.size <= 1, `chunks of one stream carry ${ids.size} ids`);
  const finishes = new Map<number, string>();
  const tools = new Set<number>();
  let counted = 0;
  const logprobs = kind === 'chat' ? ctx.body?.logprobs === true : int(ctx.body?.logprobs) !== null;
  chunks.forEach((c) => {
    for (const choice of c.choices) {
      p.check(!finishes.has(choice.index), `choice ${choice.index}: a chunk after its finish_reason`);
      if ((choice.delta?.tool_calls?.length ?? 0) > 0) tools.add(choice.index);
      if (choice.finish_reason !== null) finishes.set(choice.index, choice.finish_reason);
      const lp = choice.logprobs as { content?: unknown[] | null; tokens?: unknown[] } | null | undefined;
      counted += (kind === 'chat' ? lp?.content?.length : lp?.tokens?.length) ?? 0;
    }
  });
  if (error) return;
  const n = kind === 'chat' ? nOf(ctx.body) : int(ctx.body?.n) !== null ? nOf(ctx.body) : null;
  checkIndexes(p, [...finishes.keys()], n, 'stream finish_reason');
  for (const [index, finish] of finishes) {
    if (kind === 'chat') chatFinishRule(p, finish, tools.has(index), index);
    else p.check(finish === 'stop' || finish === 'length', `choice ${index}: finish_reason '${finish}'`);
  }
  const includeUsage = isRecord(ctx.body?.stream_options) && ctx.body.stream_options.include_usage === true;
  const usages = chunks.filter((c) => c.usage !== undefined && c.usage !== null);
  if (!includeUsage) {
    p.check(usages.length === 0, 'usage streamed without stream_options.include_usage');
    return;
  }
  p.check(usages.length === 1, `${usages.length} usage chunks with include_usage (one expected)`);
  const last = chunks.at(-1);
  p.check(
    last !== undefined && last.usage !== undefined && last.usage !== null && last.choices.length === 0,
    'the usage chunk is not the last, or has choices',
  );
  p.check(
    chunks.slice(0, -1).every((c) => c.usage === null || (c.choices.length === 0 && c.usage === undefined)),
    'chunks before the usage chunk without usage: null',
  );
  const usage = last?.usage;
  if (usage === undefined || usage === null) return;
  checkOpenAIUsage(p, usage);
  const choices = Math.max(1, finishes.size);
  if (choices === 1) checkTimings(p, (last as { timings?: unknown }).timings, usage);
  checkLimits(
    p,
    { prompt: usage.prompt_tokens, completion: usage.completion_tokens, choices },
    tokenLimit(ctx.body, LIMIT_FIELDS[kind] ?? []),
    ctx,
    choices === 1 && [...finishes.values()][0] === 'length',
  );
  if (logprobs) checkCounted(p, counted, usage.completion_tokens, !hasStops(ctx.body), 'logprobs entries streamed');
}

// OpenAI's text completions.

function textCompletion(p: Problems, json: unknown, ctx: RouteContext): void {
  if (!p.shape('text_completion', TEXT_COMPLETION, json)) return;
  const body = json as { choices: (ChunkChoice & { logprobs: { tokens?: unknown[] } | null })[]; usage?: OpenAIUsage };
  // Several prompts: one choice each (n choices of one prompt otherwise).
  const prompts = ctx.body === undefined ? null : promptCount(ctx.body.prompt);
  checkIndexes(
    p,
    body.choices.map((c) => c.index),
    prompts === null ? null : prompts * nOf(ctx.body),
    'text_completion',
  );
  for (const c of body.choices)
    p.check(c.finish_reason === 'stop' || c.finish_reason === 'length', `choice ${c.index}: '${c.finish_reason}'`);
  p.check(body.usage !== undefined, 'text_completion without usage');
  if (body.usage === undefined) return;
  checkOpenAIUsage(p, body.usage);
  const only = body.choices.length === 1 ? body.choices[0] : undefined;
  if (only !== undefined) checkTimings(p, (json as { timings?: unknown }).timings, body.usage);
  checkLimits(
    p,
    { prompt: body.usage.prompt_tokens, completion: body.usage.completion_tokens, choices: body.choices.length },
    tokenLimit(ctx.body, LIMIT_FIELDS.completions ?? []),
    // Several prompts: prompt_tokens is their sum, each one's room unknown here.
    { ...ctx, ctxPerSlot: prompts === 1 ? ctx.ctxPerSlot : null },
    only?.finish_reason === 'length',
  );
  if (int(ctx.body?.logprobs) !== null) {
    const counted = body.choices.reduce((k, c) => k + (c.logprobs?.tokens?.length ?? 0), 0);
    checkCounted(p, counted, body.usage.completion_tokens, !hasStops(ctx.body), 'logprobs tokens');
  }
}

// llama-server's /completion.

interface NativeResult {
  content: string;
  tokens?: number[];
  tokens_predicted: number;
  tokens_evaluated: number;
  stop_type: string;
  stopping_word?: string;
  truncated?: boolean;
  completion_probabilities?: unknown[];
  timings?: unknown;
}

function nativeResult(p: Problems, r: NativeResult, ctx: RouteContext, streamedTokens: number | null): void {
  const limit = tokenLimit(ctx.body, LIMIT_FIELDS.native ?? []);
  checkTimings(p, r.timings, {
    prompt_tokens: r.tokens_evaluated,
    completion_tokens: r.tokens_predicted,
    total_tokens: r.tokens_evaluated + r.tokens_predicted,
  });
  checkLimits(
    p,
    { prompt: r.tokens_evaluated, completion: r.tokens_predicted, choices: 1 },
    limit,
    ctx,
    r.stop_type === 'limit',
  );
  if (r.stop_type === 'word')
    p.check(typeof r.stopping_word === 'string' && r.stopping_word !== '', "stop_type 'word' without stopping_word");
  const exact = r.stop_type !== 'word';
  if (streamedTokens !== null) checkCounted(p, streamedTokens, r.tokens_predicted, exact, 'token ids streamed');
  else if (ctx.body?.return_tokens === true)
    checkCounted(p, r.tokens?.length ?? 0, r.tokens_predicted, exact, 'token ids returned');
}

function nativeCompletion(p: Problems, json: unknown, ctx: RouteContext): void {
  const fields = ctx.body?.response_fields;
  if (Array.isArray(fields) && fields.length > 0) return; // only the fields asked for
  const results = Array.isArray(json) ? json : [json];
  p.check(results.length > 0, 'no results');
  for (const r of results)
    if (p.shape('/completion result', NATIVE_COMPLETION, r)) nativeResult(p, r as NativeResult, ctx, null);
}

function nativeStream(p: Problems, events: readonly SseEvent[], ctx: RouteContext): void {
  const { parsed, error } = openAIStream(p, events, false);
  if (error) return;
  const last = parsed.at(-1);
  let streamed = 0;
  for (const chunk of parsed.slice(0, -1)) {
    if (!p.shape('/completion chunk', NATIVE_CHUNK, chunk)) return;
    streamed += (chunk as { tokens?: unknown[] }).tokens?.length ?? 0;
  }
  const fields = ctx.body?.response_fields;
  if (Array.isArray(fields) && fields.length > 0) return;
  if (p.shape('/completion last chunk', NATIVE_COMPLETION, last)) nativeResult(p, last as NativeResult, ctx, streamed);
}

// OpenAI's Responses API.

interface ResponseObject {
  status: string;
  incomplete_details: { reason?: string } | null;
  error: unknown;
  output: { type: string; id?: string }[];
  usage: {
    input_tokens: number;
    input_tokens_details: { cached_tokens: number };
    output_tokens: number;
    output_tokens_details: { reasoning_tokens: number };
    total_tokens: number;
  } | null;
}

function finalResponse(p: Problems, r: ResponseObject, ctx: RouteContext): void {
  p.check(r.status === 'completed' || r.status === 'incomplete', `final response with status '${r.status}'`);
  if (r.status === 'incomplete')
    p.check(r.incomplete_details?.reason === 'max_output_tokens', 'incomplete without incomplete_details.reason');
  else p.check(r.incomplete_details === null, `status ${r.status} with incomplete_details`);
  p.check(r.error === null, 'a finished response with an error');
  p.check(r.output.length > 0, 'a finished response without output');
  const tools = ctx.body?.tools;
  if (!Array.isArray(tools) || tools.length === 0)
    p.check(
      r.output.every((o) => o.type !== 'function_call'),
      'a function_call without tools',
    );
  const u = r.usage;
  p.check(u !== null, 'a finished response without usage');
  if (u === null) return;
  p.check(
    u.total_tokens === u.input_tokens + u.output_tokens,
    `usage.total_tokens ${u.total_tokens} != input ${u.input_tokens} + output ${u.output_tokens}`,
  );
  p.check(u.input_tokens >= 1, 'usage.input_tokens is 0');
  p.check(u.input_tokens_details.cached_tokens <= u.input_tokens, 'cached_tokens > input_tokens');
  p.check(u.output_tokens_details.reasoning_tokens <= u.output_tokens, 'reasoning_tokens > output_tokens');
  checkLimits(
    p,
    { prompt: u.input_tokens, completion: u.output_tokens, choices: 1 },
    tokenLimit(ctx.body, LIMIT_FIELDS.responses ?? []),
    ctx,
    r.status === 'incomplete',
  );
}

function responseBody(p: Problems, json: unknown, ctx: RouteContext): void {
  if (p.shape('response', RESPONSE, json)) finalResponse(p, json as ResponseObject, ctx);
}

const RESPONSE_TERMINAL = new Set(['response.completed', 'response.incomplete', 'response.failed']);

function responsesStream(p: Problems, events: readonly SseEvent[], ctx: RouteContext): void {
  const parsed: Json[] = [];
  for (const e of events) {
    let json: unknown;
    try {
      json = JSON.parse(e.data);
    } catch {
      p.add(`stream event is not JSON: ${e.data.slice(0, 80)}`);
      return;
    }
    if (!isRecord(json) || typeof json.type !== 'string') {
      p.add(`stream event without a type: ${e.data.slice(0, 80)}`);
      return;
    }
    p.check(e.event === json.type, `event '${e.event}' carries data of type '${json.type}'`);
    const schema = RESPONSE_EVENTS[json.type];
    if (schema === undefined) p.add(`unknown event type '${json.type}'`);
    else if (!p.shape(`event ${json.type}`, schema, json)) return;
    parsed.push(json);
  }
  const types = parsed.map((e) => e.type as string);
  p.check(types[0] === 'response.created', `the stream starts with '${types[0]}', not response.created`);
  p.check(
    parsed.every((e, i) => e.sequence_number === i),
    'sequence_number is not 0, 1, 2...',
  );
  const terminal = types.filter((t) => RESPONSE_TERMINAL.has(t));
  p.check(
    terminal.length === 1 && RESPONSE_TERMINAL.has(types.at(-1) ?? ''),
    `terminal events: ${terminal.join(', ') || 'none'}${terminal.length === 1 ? ', not last' : ''}`,
  );
  types.forEach((t, i) => {
    if (t === 'error') p.check(types[i + 1] === 'response.failed', 'an error event not followed by response.failed');
  });
  const last = parsed.at(-1);
  if (last === undefined || !RESPONSE_TERMINAL.has(last.type as string)) return;
  const response = last.response as ResponseObject & { error: { code?: string } | null };
  p.check(
    `response.${response.status}` === last.type,
    `${String(last.type)} carries a response of status '${response.status}'`,
  );
  if (last.type === 'response.failed') {
    const code = response.error?.code;
    p.check(code !== 'server_error' && code !== 'generation_failed', `response.failed with code '${code}'`);
    return;
  }
  finalResponse(p, response, ctx);
  // Items: each added once, then done once, in order; the final output is the items done; text = its deltas.
  const added: string[] = [];
  const done: string[] = [];
  const deltas = new Map<string, string>();
  for (const e of parsed) {
    const item = e.item as { id?: string; call_id?: string } | undefined;
    const key = item?.id ?? item?.call_id ?? '';
    if (e.type === 'response.output_item.added') {
      p.check(e.output_index === added.length, `output_item.added at ${String(e.output_index)}, not ${added.length}`);
      p.check(added.length === done.length, 'an item opened before the previous one closed');
      added.push(key);
    }
    if (e.type === 'response.output_item.done') {
      p.check(added.at(-1) === key && done.length === added.length - 1, 'output_item.done for an item not open');
      done.push(key);
    }
    if (e.type === 'response.output_text.delta' || e.type === 'response.reasoning_text.delta')
      deltas.set(e.item_id as string, (deltas.get(e.item_id as string) ?? '') + (e.delta as string));
    if (e.type === 'response.output_text.done' || e.type === 'response.reasoning_text.done')
      p.check(
        (deltas.get(e.item_id as string) ?? '') === e.text,
        `${String(e.type)}: the text is not its deltas joined`,
      );
  }
  p.check(added.length === done.length, 'an item added but never done');
  p.check(
    response.output.length === done.length && response.output.every((o, i) => (o.id ?? '') === done[i]),
    'the final output is not the items streamed',
  );
}

// Anthropic's Messages API.

interface MessageUsage {
  input_tokens: number | null;
  output_tokens: number;
  cache_creation_input_tokens?: number | null;
  cache_read_input_tokens?: number | null;
}

/** Anthropic counts input_tokens without the cache reads (and writes): the prompt is all three. */
function promptOf(u: MessageUsage): number {
  return (u.input_tokens ?? 0) + (u.cache_read_input_tokens ?? 0) + (u.cache_creation_input_tokens ?? 0);
}

function finalMessage(
  p: Problems,
  stop: { stop_reason: string | null; stop_sequence: string | null },
  blocks: readonly string[],
  usage: MessageUsage,
  ctx: RouteContext,
): void {
  const legal = ['end_turn', 'max_tokens', 'stop_sequence', 'tool_use', 'model_context_window_exceeded'];
  p.check(legal.includes(stop.stop_reason ?? ''), `stop_reason '${stop.stop_reason}'`);
  if (stop.stop_reason === 'stop_sequence') {
    const asked = ctx.body?.stop_sequences;
    p.check(
      Array.isArray(asked) && stop.stop_sequence !== null && asked.includes(stop.stop_sequence),
      `stop_sequence '${stop.stop_sequence}' is not one of the request's`,
    );
  } else p.check(stop.stop_sequence === null, `stop_sequence with stop_reason '${stop.stop_reason}'`);
  const calledTools = blocks.includes('tool_use');
  if (stop.stop_reason === 'tool_use') p.check(calledTools, "stop_reason 'tool_use' without a tool_use block");
  if (calledTools)
    p.check(
      ['tool_use', 'max_tokens', 'model_context_window_exceeded'].includes(stop.stop_reason ?? ''),
      `a tool_use block with stop_reason '${stop.stop_reason}'`,
    );
  const prompt = promptOf(usage);
  p.check(prompt >= 1, 'no input tokens');
  const limit = tokenLimit(ctx.body, LIMIT_FIELDS.messages ?? []);
  const c = { prompt, completion: usage.output_tokens, choices: 1 };
  checkLimits(p, c, limit, ctx, false);
  if (timeLimited(ctx.body)) return;
  if (stop.stop_reason === 'max_tokens')
    p.check(
      usage.output_tokens === limit,
      `stop_reason max_tokens after ${usage.output_tokens} tokens, max_tokens ${limit}`,
    );
  if (stop.stop_reason === 'model_context_window_exceeded' && ctx.ctxPerSlot !== null)
    p.check(
      prompt + usage.output_tokens === ctx.ctxPerSlot,
      `model_context_window_exceeded at ${prompt} + ${usage.output_tokens} tokens, the window being ${ctx.ctxPerSlot}`,
    );
}

function messageBody(p: Problems, json: unknown, ctx: RouteContext): void {
  if (!p.shape('message', MESSAGE, json)) return;
  const m = json as {
    stop_reason: string | null;
    stop_sequence: string | null;
    content: { type: string }[];
    usage: MessageUsage;
  };
  finalMessage(
    p,
    m,
    m.content.map((b) => b.type),
    m.usage,
    ctx,
  );
}

const DELTA_OF: Readonly<Record<string, string>> = {
  text: 'text_delta',
  thinking: 'thinking_delta',
  tool_use: 'input_json_delta',
};

function messagesStream(p: Problems, events: readonly SseEvent[], ctx: RouteContext): void {
  const parsed: Json[] = [];
  for (const e of events) {
    let json: unknown;
    try {
      json = JSON.parse(e.data);
    } catch {
      p.add(`stream event is not JSON: ${e.data.slice(0, 80)}`);
      return;
    }
    if (!isRecord(json) || typeof json.type !== 'string') {
      p.add(`stream event without a type: ${e.data.slice(0, 80)}`);
      return;
    }
    p.check(e.event === json.type, `event '${e.event}' carries data of type '${json.type}'`);
    const schema = MESSAGE_EVENTS[json.type];
    if (schema === undefined) p.add(`unknown event type '${json.type}'`);
    else if (!p.shape(`event ${json.type}`, schema, json)) return;
    parsed.push(json);
  }
  const types = parsed.map((e) => e.type as string);
  p.check(types[0] === 'message_start', `the stream starts with '${types[0]}', not message_start`);
  const terminal = types.filter((t) => t === 'message_stop' || t === 'error');
  p.check(
    terminal.length === 1 && (types.at(-1) === 'message_stop' || types.at(-1) === 'error'),
    `terminal events: ${terminal.join(', ') || 'none'}${terminal.length === 1 ? ', not last' : ''}`,
  );
  const last = parsed.at(-1);
  if (last?.type === 'error') {
    const type = (last.error as { type?: string }).type;
    p.check(type !== 'api_error', "a stream error of type 'api_error' (a server error)");
    return;
  }
  if (last?.type !== 'message_stop') return;
  const deltas = parsed.filter((e) => e.type === 'message_delta');
  p.check(deltas.length === 1 && types.at(-2) === 'message_delta', 'message_delta is not once, before message_stop');
  // Blocks: started 0, 1, 2..., each delta for the open block and of its kind, each stopped before the next.
  const blocks: string[] = [];
  let open: string | null = null;
  for (const e of parsed) {
    if (e.type === 'content_block_start') {
      p.check(open === null, 'a block started before the previous one stopped');
      p.check(e.index === blocks.length, `content_block_start at ${String(e.index)}, not ${blocks.length}`);
      open = (e.content_block as { type: string }).type;
      blocks.push(open);
    } else if (e.type === 'content_block_delta') {
      p.check(open !== null && e.index === blocks.length - 1, 'a delta for a block not open');
      const kind = (e.delta as { type: string }).type;
      p.check(open === null || DELTA_OF[open] === kind, `a ${kind} in a ${open} block`);
    } else if (e.type === 'content_block_stop') {
      p.check(open !== null && e.index === blocks.length - 1, 'content_block_stop for a block not open');
      open = null;
    } else if (e.type === 'message_delta') p.check(open === null, 'message_delta with a block still open');
  }
  const start = (parsed[0]?.message as { usage?: MessageUsage } | undefined)?.usage;
  const delta = deltas[0];
  if (delta === undefined || start === undefined) return;
  const usage = delta.usage as MessageUsage;
  if (usage.input_tokens !== null && usage.input_tokens !== undefined)
    p.check(
      promptOf(usage) === promptOf(start),
      `message_start counts ${promptOf(start)} input tokens, message_delta ${promptOf(usage)}`,
    );
  finalMessage(
    p,
    delta.delta as { stop_reason: string | null; stop_sequence: string | null },
    blocks,
    { ...start, ...usage },
    ctx,
  );
}

// Embeddings.

/** How many inputs a request's `input` holds (OpenAI's four forms). */
function inputCount(input: unknown): number | null {
  if (typeof input === 'string') return 1;
  if (!Array.isArray(input) || input.length === 0) return null;
  return input.every((x) => typeof x === 'number') ? 1 : input.length;
}

function embeddingList(p: Problems, json: unknown, ctx: RouteContext): void {
  if (!p.shape('embeddings list', EMBEDDING_LIST, json)) return;
  const body = json as {
    data: { index: number; embedding: number[] | string }[];
    usage: { prompt_tokens: number; total_tokens: number };
  };
  const expected = inputCount(ctx.body?.input);
  if (expected !== null)
    p.check(body.data.length === expected, `${body.data.length} embeddings for ${expected} inputs`);
  p.check(
    body.data.every((d, i) => d.index === i),
    'embedding indexes are not 0, 1, 2...',
  );
  const base64 = ctx.body?.encoding_format === 'base64';
  const vectors = body.data.map((d) => {
    if (typeof d.embedding !== 'string') return d.embedding;
    const bytes = Buffer.from(d.embedding, 'base64');
    p.check(bytes.length % 4 === 0, 'a base64 embedding that is not float32s');
    return Array.from(new Float32Array(bytes.buffer, bytes.byteOffset, Math.floor(bytes.length / 4)));
  });
  p.check(
    body.data.every((d) => (typeof d.embedding === 'string') === base64),
    `embeddings not in the encoding asked (${base64 ? 'base64' : 'float'})`,
  );
  p.check(new Set(vectors.map((v) => v.length)).size === 1, 'embeddings of different lengths');
  for (const v of vectors) {
    const norm = Math.sqrt(v.reduce((s, x) => s + x * x, 0));
    p.check(
      v.every(Number.isFinite) && (Math.abs(norm - 1) < 1e-3 || norm === 0),
      `an embedding of norm ${norm} (not L2-normalised)`,
    );
  }
  p.check(body.usage.total_tokens === body.usage.prompt_tokens, 'usage.total_tokens != prompt_tokens');
  // Token ids are embedded as given: the usage counts them.
  const input = ctx.body?.input;
  if (Array.isArray(input) && input.length > 0 && input.every((x) => Array.isArray(x) || typeof x === 'number')) {
    const ids = input.reduce<number>((n, x) => n + (Array.isArray(x) ? x.length : 1), 0);
    p.check(body.usage.prompt_tokens === ids, `${body.usage.prompt_tokens} prompt tokens for ${ids} token ids given`);
  }
  p.check(
    body.usage.prompt_tokens >= body.data.length,
    `${body.usage.prompt_tokens} prompt tokens for ${body.data.length} inputs`,
  );
}

/** The rules of a 2xx answer. */
export function bodyViolations(status: number, contentType: string, text: string, ctx: RouteContext): string[] {
  const p = new Problems();
  if (status !== 200) return p.list;
  const { route } = ctx;
  if (ctx.server === 'generation' && (route === 'embeddings' || route === 'native_embeddings'))
    p.add('an embeddings route answered 200 on a generation server');
  if (ctx.server === 'embeddings' && GENERATION.has(route)) p.add(`${route} answered 200 on an embedding server`);
  if (/^text\/event-stream/.test(contentType)) {
    const events = sseEvents(text);
    p.check(events.length > 0, 'an empty stream');
    p.check(
      ctx.body === undefined || ctx.body.stream === true || route === 'other',
      'a stream answered a request that did not ask for one',
    );
    if (route === 'chat' || route === 'completions') openAIChunks(p, events, ctx, route);
    else if (route === 'native') nativeStream(p, events, ctx);
    else if (route === 'responses') responsesStream(p, events, ctx);
    else if (route === 'messages') messagesStream(p, events, ctx);
    else openAIStream(p, events, true);
    return p.list;
  }
  if (route === 'other') return p.list;
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    p.add(`a 200 body that is not JSON: ${text.slice(0, 80)}`);
    return p.list;
  }
  p.check(ctx.body?.stream !== true || !GENERATION.has(route), 'a stream asked for, a JSON body answered');
  switch (route) {
    case 'chat':
      chatCompletion(p, json, ctx);
      break;
    case 'completions':
      textCompletion(p, json, ctx);
      break;
    case 'native':
      nativeCompletion(p, json, ctx);
      break;
    case 'responses':
      responseBody(p, json, ctx);
      break;
    case 'messages':
      messageBody(p, json, ctx);
      break;
    case 'embeddings':
      embeddingList(p, json, ctx);
      break;
    case 'native_embeddings':
      p.shape('/embeddings result', NATIVE_EMBEDDINGS, json);
      break;
    case 'count_tokens':
    case 'input_tokens':
      p.shape('token count', INPUT_TOKENS, json);
      break;
    case 'tokenize':
      p.shape('/tokenize result', TOKENIZE, json);
      break;
    case 'detokenize':
      p.shape('/detokenize result', DETOKENIZE, json);
      break;
    case 'apply_template':
      p.shape('/apply-template result', APPLY_TEMPLATE, json);
      break;
  }
  return p.list;
}
