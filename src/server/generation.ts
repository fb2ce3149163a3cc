// What the two generation routes share: request fields -> decoder options, one run through the scheduler with
// stop strings applied, and the answer as one JSON body or as an SSE stream. The routes only say what their
// OpenAI objects look like (a Presenter).
import { randomUUID } from 'node:crypto';
import type { FastifyBaseLogger, FastifyReply, FastifyRequest } from 'fastify';
import type { StartOptions } from '../engine/index.ts';
import { ContextExceededError } from '../errors.ts';
import type { RejectionCause, ResponseRecord } from '../metrics/server-metrics.ts';
import type { RequestSummary } from '../scheduler/types.ts';
import { clientKey, requestPriority } from './client-key.ts';
import type { ResolvedServerConfig, ServedModel, ServedScheduler } from './config.ts';
import {
  type ApiError,
  contextExceeded,
  generationFailed,
  invalidRequest,
  requestTimeout,
  shuttingDown,
} from './errors.ts';
import type { SamplingBody } from './schemas.ts';
import { SseStream, watchDisconnect } from './sse.ts';
import { StopMatcher } from './stop-strings.ts';

export interface ServerDeps {
  model: ServedModel;
  scheduler: ServedScheduler;
  config: ResolvedServerConfig;
  metrics?: GenerationMetrics;
}

/** Where finished responses are counted (src/metrics/server-metrics.ts implements it). */
export interface GenerationMetrics {
  responded(record: ResponseRecord): void;
  interTokenGap(seconds: number): void;
  rejected(cause: RejectionCause): void;
}

export type FinishReason = 'stop' | 'length';

export interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
  prompt_tokens_details: { cached_tokens: number };
}

/** The OpenAI objects of one route (chat or legacy completions). */
export interface Presenter {
  /** Sent when the stream opens (chat: the assistant role), or null. */
  firstChunk(): object | null;
  textChunk(text: string): object;
  finalChunk(finish: FinishReason): object;
  usageChunk(usage: Usage): object;
  completion(text: string, finish: FinishReason, usage: Usage): object;
}

/** A request ready for the scheduler. */
export interface PreparedGeneration {
  tokens: number[];
  options: StartOptions;
  stop: string[];
  client: string;
  priority: number;
  stream: boolean;
  includeUsage: boolean;
}

export function newCompletionId(prefix: 'chatcmpl' | 'cmpl'): string {
  return `${prefix}-${randomUUID().replaceAll('-', '')}`;
}

export function nowSeconds(): number {
  return Math.floor(Date.now() / 1000);
}

/** Refuses fields the server knows but cannot honour, naming them. */
export function refuseUnsupported(body: SamplingBody): void {
  if (body.n !== undefined && body.n !== null && body.n !== 1) {
    throw invalidRequest(
      `Invalid value for 'n': this server returns one choice per request, so n must be 1 (got ${body.n}).`,
      'n',
      'invalid_value',
    );
  }
  if (body.logprobs === true)
    throw invalidRequest("'logprobs' is not supported by this server.", 'logprobs', 'unsupported_parameter');
}

/** Prompt tokens as llama-server makes them: special tokens added (BOS) and parsed in the text. */
export function tokenizePrompt(model: ServedModel, text: string): number[] {
  const tokens = Array.from(model.tokenize(text, { addSpecial: true, parseSpecial: true }));
  // A template that writes its own BOS would otherwise give two.
  const bos = model.info.bos;
  if (bos >= 0 && tokens.length >= 2 && tokens[0] === bos && tokens[1] === bos) tokens.shift();
  return tokens;
}

/**
 * Decoder options from the request. max_tokens absent: generate until end of generation or a full slot (as
 * llama-server); present: capped by the room the slot has left after the prompt.
 */
export function prepareGeneration(
  deps: ServerDeps,
  request: FastifyRequest,
  body: SamplingBody,
  tokens: number[],
  maxTokensField: number | null | undefined,
): PreparedGeneration {
  const { config, model } = deps;
  if (tokens.length === 0) throw invalidRequest('The prompt is empty after tokenization.', null, 'empty_prompt');
  if (tokens.length >= config.ctxPerSlot) throw contextExceeded(tokens.length, config.ctxPerSlot);
  const room = config.ctxPerSlot - tokens.length;

  const options: StartOptions = { maxTokens: Math.min(maxTokensField ?? room, room) };
  let temperature = body.temperature ?? config.defaultTemperature;
  // top_p 0 keeps only the most likely token: greedy (the sampler itself wants top_p > 0).
  if (body.top_p === 0) temperature = 0;
  else if (body.top_p !== undefined && body.top_p !== null) options.topP = body.top_p;
  options.temperature = temperature;
  if (body.top_k !== undefined && body.top_k !== null) options.topK = body.top_k;
  if (body.min_p !== undefined && body.min_p !== null) options.minP = body.min_p;
  // The sampler's seed is 32-bit; -1 wraps to LLAMA_DEFAULT_SEED, which llama.cpp takes as "random" (as llama-server).
  if (body.seed !== undefined && body.seed !== null) options.seed = body.seed >>> 0;
  if (body.presence_penalty !== undefined && body.presence_penalty !== null)
    options.presencePenalty = body.presence_penalty;
  if (body.frequency_penalty !== undefined && body.frequency_penalty !== null)
    options.frequencyPenalty = body.frequency_penalty;
  if (body.repeat_penalty !== undefined && body.repeat_penalty !== null) options.repeatPenalty = body.repeat_penalty;
  if (body.logit_bias !== undefined && body.logit_bias !== null)
    options.logitBias = logitBias(body.logit_bias, model.info.nVocab);

  const stop =
    body.stop === undefined || body.stop === null ? [] : typeof body.stop === 'string' ? [body.stop] : body.stop;
  return {
    tokens,
    options,
    stop,
    client: clientKey(request, body.user),
    priority: requestPriority(request, config.objectivePriorities),
    stream: body.stream === true,
    includeUsage: body.stream_options?.include_usage === true,
  };
}

function logitBias(bias: Record<string, number>, nVocab: number): Map<number, number> {
  const out = new Map<number, number>();
  for (const [key, value] of Object.entries(bias)) {
    const id = /^\d+$/.test(key) ? Number(key) : Number.NaN;
    if (!Number.isSafeInteger(id) || id >= nVocab) {
      throw invalidRequest(
        `Invalid key in 'logit_bias': '${key}' is not a token id (0..${nVocab - 1}).`,
        'logit_bias',
        'invalid_value',
      );
    }
    // OpenAI: -100 bans the token. An additive -100 only makes it unlikely.
    out.set(id, value <= -100 ? Number.NEGATIVE_INFINITY : value);
  }
  return out;
}

type Outcome =
  | { kind: 'finished'; finish: FinishReason; usage: Usage }
  | { kind: 'failed'; error: ApiError }
  | { kind: 'gone' };

interface TextSink {
  onStart(): void;
  onText(text: string): void;
}

/**
 * One run through the scheduler. Text passes through the stop matcher; a matched stop string cancels the
 * request (its slot frees within one step) and ends it with finish_reason 'stop'. Rejects with what submit
 * throws (queue full, shutting down, context exceeded).
 */
function run(
  deps: ServerDeps,
  job: PreparedGeneration,
  sink: TextSink,
  abort: AbortController,
  isGone: () => boolean,
  log: FastifyBaseLogger,
): Promise<Outcome> {
  return generate(deps, job, sink, abort, isGone, log).catch((err: unknown) => {
    // The route checks the prompt against the slot first; should the scheduler disagree, answer the same way.
    throw err instanceof ContextExceededError ? contextExceeded(job.tokens.length, deps.config.ctxPerSlot) : err;
  });
}

function generate(
  deps: ServerDeps,
  job: PreparedGeneration,
  sink: TextSink,
  abort: AbortController,
  isGone: () => boolean,
  log: FastifyBaseLogger,
): Promise<Outcome> {
  const matcher = new StopMatcher(job.stop);
  let received = 0;
  let tokensAtStop = 0;
  let lastTokenAt: number | undefined;
  return new Promise<Outcome>((resolve) => {
    const timeoutMs = deps.config.requestTimeoutMs;
    deps.scheduler.submit(
      {
        client: job.client,
        priority: job.priority,
        tokens: job.tokens,
        options: job.options,
        signal: abort.signal,
        ...(timeoutMs !== undefined ? { timeoutMs } : {}),
      },
      {
        onStart: () => {
          if (!isGone()) sink.onStart();
        },
        onToken: (_token, piece) => {
          if (matcher.stopped !== null || isGone()) return;
          received++;
          const now = performance.now();
          if (lastTokenAt !== undefined) deps.metrics?.interTokenGap((now - lastTokenAt) / 1000);
          lastTokenAt = now;
          const r = matcher.push(piece);
          if (r.text !== '') sink.onText(r.text);
          if (r.stop !== null) {
            tokensAtStop = received;
            abort.abort();
          }
        },
        onEnd: (summary, tail) => {
          const settle = (outcome: Outcome): void => {
            record(deps.metrics, summary, outcome);
            resolve(outcome);
          };
          if (isGone()) return settle({ kind: 'gone' });
          if (matcher.stopped === null && tail !== '') {
            const r = matcher.push(tail);
            if (r.text !== '') sink.onText(r.text);
            if (r.stop !== null) tokensAtStop = received;
          }
          const usage = (completion: number): Usage => ({
            prompt_tokens: summary.promptTokens,
            completion_tokens: completion,
            total_tokens: summary.promptTokens + completion,
            prompt_tokens_details: { cached_tokens: summary.cachedTokens },
          });
          // A stop string counts the tokens up to the one that completed it; any decoded after it are not sent.
          if (matcher.stopped !== null) return settle({ kind: 'finished', finish: 'stop', usage: usage(tokensAtStop) });
          const finish = finishReason(summary);
          if (finish !== null) {
            const rest = matcher.flush();
            if (rest !== '') sink.onText(rest);
            return settle({ kind: 'finished', finish, usage: usage(summary.generatedTokens) });
          }
          switch (summary.reason) {
            case 'timeout':
              return settle({ kind: 'failed', error: requestTimeout(timeoutMs) });
            case 'shutdown':
              return settle({ kind: 'failed', error: shuttingDown() });
            case 'cancelled':
              // Nobody here asked for it (client gone and stop strings are handled above): nothing to send.
              return settle({ kind: 'gone' });
            default:
              log.error({ requestId: summary.id, reason: summary.reason, cause: summary.error }, 'generation failed');
              return settle({ kind: 'failed', error: generationFailed() });
          }
        },
      },
    );
  });
}

/** Counts a response as it was reported: usage totals in the metrics equal the sums over responses. */
function record(metrics: GenerationMetrics | undefined, s: RequestSummary, outcome: Outcome): void {
  if (!metrics) return;
  const seconds = (from: number | null, to: number | null): number | undefined =>
    from !== null && to !== null ? Math.max(0, to - from) / 1000 : undefined;
  const finished = outcome.kind === 'finished';
  const finishReason: ResponseRecord['finishReason'] = finished
    ? outcome.finish
    : outcome.kind === 'gone'
      ? 'cancelled'
      : s.reason === 'timeout'
        ? 'timeout'
        : 'error';
  const r: ResponseRecord = {
    finishReason,
    promptTokens: finished ? outcome.usage.prompt_tokens : 0,
    cachedTokens: finished ? outcome.usage.prompt_tokens_details.cached_tokens : 0,
    completionTokens: finished ? outcome.usage.completion_tokens : 0,
    e2eSeconds: (s.endedAt - s.queuedAt) / 1000,
  };
  const queue = seconds(s.queuedAt, s.startedAt);
  const prompt = seconds(s.startedAt, s.firstTokenAt);
  const generation = seconds(s.firstTokenAt, s.endedAt);
  const ttft = seconds(s.queuedAt, s.firstTokenAt);
  if (queue !== undefined) r.queueSeconds = queue;
  if (finished && prompt !== undefined) r.promptSeconds = prompt;
  if (finished && generation !== undefined) r.generationSeconds = generation;
  if (ttft !== undefined) r.ttftSeconds = ttft;
  metrics.responded(r);
}

function finishReason(summary: RequestSummary): FinishReason | null {
  switch (summary.reason) {
    case 'stop':
      return 'stop';
    case 'length':
    case 'context_full':
      return 'length';
    default:
      return null;
  }
}

/** Answers a prepared request: a JSON body, or an SSE stream when it asked for one. */
export async function respond(
  deps: ServerDeps,
  request: FastifyRequest,
  reply: FastifyReply,
  job: PreparedGeneration,
  presenter: Presenter,
): Promise<unknown> {
  const abort = new AbortController();
  let gone = false;
  const clientGone = (): void => {
    gone = true;
    abort.abort();
  };
  if (!job.stream) {
    let text = '';
    const unwatch = watchDisconnect(reply.raw, clientGone);
    let outcome: Outcome;
    try {
      outcome = await run(deps, job, { onStart: () => {}, onText: (t) => (text += t) }, abort, () => gone, request.log);
    } finally {
      unwatch();
    }
    if (outcome.kind === 'gone') return abandon(reply);
    if (outcome.kind === 'failed') throw outcome.error;
    return presenter.completion(text, outcome.finish, outcome.usage);
  }

  const sse = new SseStream(reply.raw, {
    drainTimeoutMs: deps.config.streamDrainTimeoutMs,
    onAbort: (cause) => {
      request.log.info({ cause }, 'stream aborted; cancelling its request');
      clientGone();
    },
  });
  // The stream opens when the request gets a slot: refusals and deadlines while queued still get a status code.
  const open = (): void => {
    if (sse.opened || sse.closed) return;
    reply.hijack();
    sse.open(reply.getHeaders() as Record<string, string | number | string[]>);
    const first = presenter.firstChunk();
    if (first !== null) sse.send(first);
  };
  const sink: TextSink = {
    onStart: open,
    onText: (text) => {
      open();
      sse.send(presenter.textChunk(text));
    },
  };
  const outcome = await run(deps, job, sink, abort, () => gone, request.log);
  if (outcome.kind === 'gone') return abandon(reply);
  if (outcome.kind === 'failed') {
    if (!sse.opened) throw outcome.error;
    sse.send(outcome.error.body());
    sse.end();
    return reply;
  }
  open();
  sse.send(presenter.finalChunk(outcome.finish));
  if (job.includeUsage) sse.send(presenter.usageChunk(outcome.usage));
  sse.end();
  return reply;
}

/** The client is gone: nothing to send, just make sure the connection is released. */
function abandon(reply: FastifyReply): FastifyReply {
  if (!reply.sent) reply.hijack();
  if (!reply.raw.destroyed) reply.raw.destroy();
  return reply;
}
