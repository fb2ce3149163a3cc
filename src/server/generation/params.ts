// Request fields -> one generation: llama-server's field names (accepted on every route, as llama-server copies
// them into its task parameters) and OpenAI's, with the server's defaults (its flags) for what a request leaves
// out. Refuses, with a 400 naming the field, values the server can't honour.
import type { FastifyRequest } from 'fastify';
import type { Grammar, SamplingOptions } from '../../scheduler/decoder.ts';
import { clientKey, requestPriority } from '../client-key.ts';
import type { ServerDeps } from '../deps.ts';
import { contextExceeded, invalidRequest } from '../errors.ts';
import { checkLogitBias, checkStops, type RequestLimits } from '../limits.ts';
import type { ResolvedServerOptions, ServedModel } from '../options.ts';
import { DEFAULT_SAMPLERS, samplersFromLetters } from '../samplers.ts';
import type { GenerationParamsBody } from '../schemas.ts';
import {
  GENERATION_PARAMETERS,
  GENERATION_SETTINGS,
  type GenerationParameter,
  PARAMETER_NAMES,
  type ParameterName,
  settingsReport,
  TOKEN_COUNT_MAX,
} from './parameters.ts';
import type { PreparedGeneration } from './types.ts';

/** Prompt tokens as llama-server makes them: special tokens added (BOS) and parsed in the text. */
export function tokenizePrompt(model: ServedModel, text: string): number[] {
  const tokens = Array.from(model.tokenize(text, { addSpecial: true, parseSpecial: true }));
  // A template that writes its own BOS would otherwise give two.
  const bos = model.info.bos;
  if (bos >= 0 && tokens.length >= 2 && tokens[0] === bos && tokens[1] === bos) tokens.shift();
  return tokens;
}

/**
 * Where each of the delimiters (text that opens a message, as the chat layer gives them) starts in `tokens`, as
 * llama-server finds its message spans: each delimiter tokenized alone, matched token for token, ascending.
 */
export function messageStarts(model: ServedModel, tokens: readonly number[], delimiters: readonly string[]): number[] {
  const patterns = delimiters
    .map((d) => Array.from(model.tokenize(d, { addSpecial: false, parseSpecial: true })))
    .filter((p) => p.length > 0);
  const starts: number[] = [];
  for (let i = 0; i < tokens.length; i++) {
    if (patterns.some((p) => i + p.length <= tokens.length && p.every((t, k) => tokens[i + k] === t))) starts.push(i);
  }
  return starts;
}

/** What a route adds to the request's own fields: the chat layer's grammar, tokens and stop strings. */
export interface GenerationExtras {
  grammar?: Grammar | null;
  /** llama.cpp's reasoning budget over the template's thinking tags (chat routes). */
  reasoningBudget?: SamplingOptions['reasoningBudget'];
  preservedTokens?: ArrayLike<number>;
  /** Where the prompt's user messages start (token counts). */
  userStarts?: readonly number[];
  stop?: readonly string[];
  /** The token limit the route read (max_tokens, max_completion_tokens, n_predict). */
  maxTokens?: number | null | undefined;
  /** Its name in the request, for errors. Default 'max_tokens'. */
  maxTokensField?: string;
  /** OpenAI logprobs: the number of most likely tokens per position (0: only the chosen one's). */
  topLogprobs?: number | null;
}

function samplersOf(value: string | readonly string[]): string[] {
  if (typeof value !== 'string') return [...value];
  try {
    return samplersFromLetters(value);
  } catch (err) {
    throw invalidRequest(`Invalid 'samplers': ${(err as Error).message}.`, 'samplers', 'invalid_value');
  }
}

/**
 * llama-server's logit_bias forms: {"15043": 1.5}, [[15043, 1.5]], [["Hello", -1]] (every token of the text),
 * and false for a ban; OpenAI's -100 also bans.
 */
export function logitBias(
  value: NonNullable<GenerationParamsBody['logit_bias']>,
  model: ServedModel,
  limits: RequestLimits,
): [number, number][] {
  const nVocab = model.info.nVocab;
  const entries: [string | number, number | boolean][] = Array.isArray(value)
    ? value.map((pair) => [pair[0], pair[1]])
    : Object.entries(value);
  // Before any text key is tokenized, and again for the token ids the texts gave.
  checkLogitBias(entries.length, limits);
  const out: [number, number][] = [];
  for (const [key, raw] of entries) {
    if (typeof raw === 'boolean' && raw) continue; // true: no change, as llama-server
    const bias = raw === false || (typeof raw === 'number' && raw <= -100) ? Number.NEGATIVE_INFINITY : (raw as number);
    let ids: number[];
    if (typeof key === 'number' || /^\d+$/.test(key)) ids = [Number(key)];
    else ids = Array.from(model.tokenize(key, { addSpecial: false, parseSpecial: false }));
    for (const id of ids) {
      if (!Number.isSafeInteger(id) || id < 0 || id >= nVocab) {
        throw invalidRequest(
          `Invalid key in 'logit_bias': '${key}' is not a token id (0..${nVocab - 1}) or text.`,
          'logit_bias',
          'invalid_value',
        );
      }
      out.push([id, bias]);
    }
    checkLogitBias(out.length, limits);
  }
  return out;
}

/**
 * Each scalar parameter's value for this request: the request's field (null is absent), else the server's default
 * (its flag), else the table's. The shaped ones (lists, maps) are read by prepareGeneration itself.
 */
function scalarValues(body: GenerationParamsBody, d: ResolvedServerOptions['defaults']): Map<ParameterName, unknown> {
  const values = new Map<ParameterName, unknown>();
  for (const name of PARAMETER_NAMES) {
    const p: GenerationParameter = GENERATION_PARAMETERS[name];
    if (p.kind === 'shape') continue;
    const own = body[p.api[0] as keyof GenerationParamsBody];
    values.set(name, own ?? (Object.hasOwn(d, name) ? d[name as keyof typeof d] : p.default));
  }
  return values;
}

/**
 * Decoder options from the request and the server's defaults. The token limit: the request's, else -n; -1
 * generates until end of generation or a full slot (as llama-server). Never more than the slot has room for.
 */
export function prepareGeneration(
  deps: ServerDeps,
  request: FastifyRequest,
  body: GenerationParamsBody,
  tokens: number[],
  extras: GenerationExtras = {},
): PreparedGeneration {
  const { config, model } = deps;
  const d = config.defaults;
  if (tokens.length === 0) throw invalidRequest('The prompt is empty after tokenization.', null, 'empty_prompt');
  if (tokens.length >= config.ctxPerSlot) throw contextExceeded(tokens.length, config.ctxPerSlot);
  const room = config.ctxPerSlot - tokens.length;
  // The request's limit wins over the server's (-n), as in llama-server; -1 is "no limit".
  const own = extras.maxTokens ?? body.n_predict;
  const field =
    extras.maxTokens !== undefined && extras.maxTokens !== null ? (extras.maxTokensField ?? 'max_tokens') : 'n_predict';
  const asked = own === undefined || own === null || own === -1 ? d.nPredict : own;
  const contextShift = d.contextShift;
  // -1: until the end; with context shift, generation may run past the slot (llama-server's behaviour).
  // The decoder counts at most TOKEN_COUNT_MAX tokens (as many as a context holds).
  const limit = asked < 0 ? (contextShift ? TOKEN_COUNT_MAX : room) : Math.min(asked, TOKEN_COUNT_MAX);
  if (limit === 0) throw invalidRequest(`'${field}' must be >= 1, or -1 for no limit.`, field, 'invalid_value');
  const maxTokens = contextShift ? limit : Math.min(limit, room);
  // Reaching maxTokens then fills the slot: the answer is cut by the context, not by the request.
  const fillsSlot = !contextShift && limit >= room;

  const values = scalarValues(body, d);
  // top_p 0 keeps only the most likely token: greedy (the sampler itself wants top_p > 0, as a float32). The
  // request's or, when it gives none, the server's (--top-p 0, which llama-server takes).
  if (Math.fround(values.get('topP') as number) === 0) {
    values.set('temperature', 0);
    values.set('topP', 1);
  }
  // The table's sampling parameters go to the sampler as they are.
  const sampling: SamplingOptions = {};
  for (const name of PARAMETER_NAMES) {
    const p: GenerationParameter = GENERATION_PARAMETERS[name];
    if (p.sampler !== undefined && p.kind !== 'shape')
      (sampling as Record<string, unknown>)[p.sampler] = values.get(name);
  }
  // The sampler's seed is 32-bit; -1 wraps to LLAMA_DEFAULT_SEED, which llama.cpp takes as "random".
  sampling.seed = (values.get('seed') as number) >>> 0;
  const options: PreparedGeneration['options'] = {
    maxTokens,
    sampling,
    reusePrefix: values.get('cachePrompt') as boolean,
    renderSpecial: d.renderSpecial,
    contextShift,
    nKeep: values.get('nKeep') as number,
  };
  const breakers = body.dry_sequence_breakers ?? d.drySequenceBreakers;
  if (breakers !== undefined && breakers !== null) {
    if (breakers.length === 0)
      throw invalidRequest("'dry_sequence_breakers' must not be empty.", 'dry_sequence_breakers', 'invalid_value');
    sampling.drySequenceBreakers = [...breakers];
  }
  const samplers = body.samplers ?? d.samplers;
  if (samplers !== undefined && samplers !== null) sampling.samplers = samplersOf(samplers);
  const bias = [...d.logitBias.map(([t, b]): [number, number] => [t, b])];
  if (body.logit_bias !== undefined && body.logit_bias !== null)
    bias.push(...logitBias(body.logit_bias, model, config.limits));
  if (bias.length > 0) sampling.logitBias = new Map(bias);
  const nProbs = extras.topLogprobs ?? (values.get('nProbs') as number);
  if (nProbs > 0 || extras.topLogprobs === 0) {
    options.nProbs = Math.max(1, nProbs);
    options.postSampling = body.post_sampling_probs === true;
  }
  const grammar = extras.grammar ?? defaultGrammar(config);
  if (grammar) sampling.grammar = grammar;
  if (extras.reasoningBudget) sampling.reasoningBudget = extras.reasoningBudget;
  // A grammar that has matched can only end: without end of generation the sampler has no token left to pick.
  if (grammar && sampling.ignoreEos)
    throw invalidRequest(
      `'ignore_eos' cannot be combined with a grammar, response_format or tools: a grammar that has matched can only end${body.ignore_eos === true ? '' : " (ignore_eos is this server's default, --ignore-eos)"}.`,
      'ignore_eos',
      'invalid_value',
    );
  if (extras.preservedTokens && extras.preservedTokens.length > 0)
    options.preservedTokens = Array.from(extras.preservedTokens);
  if (extras.userStarts && extras.userStarts.length > 0) options.userStarts = extras.userStarts;

  const stops =
    body.stop === undefined || body.stop === null ? [] : typeof body.stop === 'string' ? [body.stop] : body.stop;
  checkStops(stops, config.limits);
  const prepared: PreparedGeneration = {
    tokens,
    options,
    stop: [...stops, ...(extras.stop ?? [])],
    client: clientKey(request, body.user),
    priority: requestPriority(request, config.objectivePriorities),
    stream: body.stream === true,
    includeUsage: body.stream_options?.include_usage === true,
    nProbs: extras.topLogprobs === 0 ? 0 : (options.nProbs ?? 0),
    returnTokens: body.return_tokens === true,
    returnProgress: body.return_progress === true,
    timingsPerToken: body.timings_per_token === true,
    fillsSlot,
    tMaxPredictMs: body.t_max_predict_ms ?? undefined,
    verbose: config.verbose || body.verbose === true,
    settings: generationSettings(options, values, asked, body, config),
  };
  if (body.id_slot !== undefined && body.id_slot !== null && body.id_slot >= 0) {
    if (body.id_slot >= config.slots)
      throw invalidRequest(
        `Invalid 'id_slot': slot ${body.id_slot} does not exist (slots 0..${config.slots - 1}).`,
        'id_slot',
        'invalid_value',
      );
    prepared.slot = body.id_slot;
  }
  return prepared;
}

/** --grammar / --json-schema: a constraint for requests that give none. */
function defaultGrammar(config: ResolvedServerOptions): Grammar | null {
  const text = config.defaults.grammar;
  return text === undefined ? null : { text, kind: 0, lazy: false, triggers: [], generationPrompt: '' };
}

/** llama-server's generation_settings: what the request ran with. */
function generationSettings(
  o: PreparedGeneration['options'],
  values: ReadonlyMap<ParameterName, unknown>,
  nPredict: number,
  body: GenerationParamsBody,
  config: ResolvedServerOptions,
): Record<string, unknown> {
  return settingsReport(GENERATION_SETTINGS, (name) => values.get(name), {
    n_ctx: config.ctxPerSlot,
    // What the request asked for, before the sampler's 32-bit wrap.
    seed: body.seed ?? config.defaults.seed,
    dry_sequence_breakers: o.sampling.drySequenceBreakers ?? ['\n', ':', '"', '*'],
    adaptive_target: -1,
    adaptive_decay: 0.9,
    max_tokens: nPredict,
    n_predict: nPredict,
    stream: body.stream === true,
    n_probs: o.nProbs ?? 0,
    samplers: o.sampling.samplers ?? [...DEFAULT_SAMPLERS],
    post_sampling_probs: o.postSampling ?? false,
  });
}
