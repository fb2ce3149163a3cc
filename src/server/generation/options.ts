// Request fields -> what the decoder and the scheduler get: sampling options, the token budget, stop strings,
// the fairness key. Refuses, with a 400 naming the field, what the server can't honour.
import type { FastifyRequest } from 'fastify';
import type { StartOptions } from '../../engine/index.ts';
import type { GrammarConstraint } from '../chat/layer.ts';
import { clientKey } from '../client-key.ts';
import type { ServedModel } from '../config.ts';
import type { ServerDeps } from '../deps.ts';
import { contextExceeded, invalidRequest } from '../errors.ts';
import type { SamplingBody } from '../schemas.ts';
import type { PreparedGeneration } from './types.ts';

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

/** What a route adds to the request's own fields: the chat layer's grammar, tokens and stop strings. */
export interface GenerationExtras {
  grammar?: GrammarConstraint | null;
  preservedTokens?: ArrayLike<number>;
  stop?: readonly string[];
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
  extras: GenerationExtras = {},
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
  if (extras.grammar) options.grammar = extras.grammar;
  if (extras.preservedTokens && extras.preservedTokens.length > 0)
    options.preservedTokens = Array.from(extras.preservedTokens);

  const own =
    body.stop === undefined || body.stop === null ? [] : typeof body.stop === 'string' ? [body.stop] : body.stop;
  return {
    tokens,
    options,
    stop: [...own, ...(extras.stop ?? [])],
    client: clientKey(request, body.user),
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
