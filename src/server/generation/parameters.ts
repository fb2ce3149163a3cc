// The generation parameters, stated once: for each, the request fields that set it (llama-server's and OpenAI's
// names), the serve flag and LLAMA_ARG_* variable that set the server's default, that default (llama-server's), what
// a request may give, what it means, and the sampler field it goes to. The request schema (schemas.ts), the server's
// defaults (options.ts), /props and each request's generation_settings, the decoder options (params.ts) and the serve
// flags' bounds (flagBounds) are built from it. Tests hold to it what is not built from it yet: the rest of the serve
// flags (test/server/generation/parameters.test.ts) and the addon's range checks (test/engine/sampling-bounds.test.ts).
// Plain data, no TypeBox: the flag layer reads it too.
import type { SamplingOptions } from '../../scheduler/decoder.ts';

/** The decoder counts tokens in 24 bits (as many as a context holds): every token count's bound. */
export const TOKEN_COUNT_MAX = 1 << 24;
/** Candidate counts (top_k, min_keep): the sampler's int32, well short of its end. */
export const CANDIDATE_COUNT_MAX = 1 << 30;
/** A float32 sampler setting with no natural bound stays this side of it, so the sampler's sums stay finite. */
export const FLOAT_BOUND = 1e6;
/** The smallest normal float32: a setting the sampler wants above 0 must not round to 0 there. */
export const POSITIVE_FLOAT32 = 1.1754943508222875e-38;
/** The sampler's bound on the penalties (native/core/limits.h): presence and frequency +-this, repeat up to it. */
export const PENALTY_BOUND = 100;

export interface GenerationParameter {
  /** The request fields that set it, in the order the request schema declares them. */
  readonly api: readonly [string, ...string[]];
  /** 'shape': a value with a structure of its own (a list, a map), whose schema is schemas.ts' (REQUEST_SHAPES). */
  readonly kind: 'int' | 'float' | 'bool' | 'shape';
  /** What a request that leaves it out gets: llama-server's default, which the flag changes. null: none stated. */
  readonly default: number | boolean | null;
  /** What a request may give, inclusive; absent: no bound. Always within what the addon takes. */
  readonly min?: number;
  readonly max?: number;
  /**
   * The serve flag that sets the server's default (it then has one: GenerationDefaults), its environment variable,
   * and the flag's own bounds, which the flag parser reads (flagBounds). They are llama-server's where its flag's
   * value works here, so they may be wider than a request's (OpenAI's), but never wider than what the sampler takes:
   * a default the sampler refuses would fail every request that leaves the field out, so the flag refuses it at
   * startup. `key`: its ServeConfig field where that is not this parameter's name.
   */
  readonly flag?: {
    readonly names: readonly string[];
    readonly env?: string;
    readonly min?: number;
    readonly max?: number;
    readonly key?: string;
  };
  /** The decoder's sampling field it goes to as it is (params.ts maps the others itself). */
  readonly sampler?: keyof SamplingOptions;
  readonly meaning: string;
}

/**
 * Every generation parameter, keyed by its name in the server's defaults, in the order the request schema declares
 * them (a validator names the first bad field in that order).
 */
export const GENERATION_PARAMETERS = {
  nPredict: {
    api: ['max_tokens', 'n_predict'],
    kind: 'int',
    default: -1,
    min: -1,
    flag: { names: ['-n', '--predict', '--n-predict'], env: 'LLAMA_ARG_N_PREDICT', min: -2, max: TOKEN_COUNT_MAX },
    meaning: 'most tokens to generate; -1: until end of generation or a full slot (at most TOKEN_COUNT_MAX)',
  },
  temperature: {
    api: ['temperature'],
    kind: 'float',
    default: 0.8,
    min: 0,
    max: 2,
    flag: { names: ['--temp', '--temperature'], min: 0, max: FLOAT_BOUND },
    sampler: 'temperature',
    meaning: 'divides the logits; 0: greedy',
  },
  dynatempRange: {
    api: ['dynatemp_range'],
    kind: 'float',
    default: 0,
    min: 0,
    max: FLOAT_BOUND,
    flag: { names: ['--dynatemp-range'], min: 0, max: FLOAT_BOUND },
    sampler: 'dynatempRange',
    meaning: 'dynamic temperature: temperature ± this by the entropy; 0: off',
  },
  dynatempExponent: {
    api: ['dynatemp_exponent'],
    kind: 'float',
    default: 1,
    min: 0,
    max: FLOAT_BOUND,
    flag: { names: ['--dynatemp-exp'], min: 0, max: FLOAT_BOUND },
    sampler: 'dynatempExponent',
    meaning: 'dynamic temperature: the exponent of its entropy mapping',
  },
  topP: {
    api: ['top_p'],
    kind: 'float',
    default: 0.95,
    min: 0,
    max: 1,
    flag: { names: ['--top-p'], min: 0, max: 1 },
    sampler: 'topP',
    meaning: 'nucleus: the most likely tokens whose probabilities add up to this; 1: off, 0: greedy',
  },
  topK: {
    api: ['top_k'],
    kind: 'int',
    default: 40,
    min: 0,
    max: CANDIDATE_COUNT_MAX,
    flag: { names: ['--top-k'], env: 'LLAMA_ARG_TOP_K', min: 0, max: CANDIDATE_COUNT_MAX },
    sampler: 'topK',
    meaning: 'only the k most likely tokens; 0: off',
  },
  minP: {
    api: ['min_p'],
    kind: 'float',
    default: 0.05,
    min: 0,
    max: 1,
    flag: { names: ['--min-p'], min: 0, max: 1 },
    sampler: 'minP',
    meaning: "tokens at least this fraction of the most likely one's probability; 0: off",
  },
  typicalP: {
    api: ['typical_p'],
    kind: 'float',
    default: 1,
    min: POSITIVE_FLOAT32,
    max: 1,
    flag: { names: ['--typical', '--typical-p'], min: POSITIVE_FLOAT32, max: 1 },
    sampler: 'typicalP',
    meaning: 'locally typical sampling; 1: off',
  },
  topNSigma: {
    api: ['top_n_sigma'],
    kind: 'float',
    default: -1,
    min: -FLOAT_BOUND,
    max: FLOAT_BOUND,
    flag: { names: ['--top-nsigma', '--top-n-sigma'], min: -FLOAT_BOUND, max: FLOAT_BOUND },
    sampler: 'topNSigma',
    meaning: 'tokens within n standard deviations of the top logit; <= 0: off',
  },
  xtcProbability: {
    api: ['xtc_probability'],
    kind: 'float',
    default: 0,
    min: 0,
    max: 1,
    flag: { names: ['--xtc-probability'], min: 0, max: 1 },
    sampler: 'xtcProbability',
    meaning: 'exclude top choices: how often; 0: off',
  },
  xtcThreshold: {
    api: ['xtc_threshold'],
    kind: 'float',
    default: 0.1,
    min: 0,
    max: 1,
    flag: { names: ['--xtc-threshold'], min: 0, max: 1 },
    sampler: 'xtcThreshold',
    meaning: 'exclude top choices: the probability above which a token counts as one',
  },
  minKeep: {
    api: ['min_keep'],
    kind: 'int',
    default: 0,
    min: 0,
    max: CANDIDATE_COUNT_MAX,
    sampler: 'minKeep',
    meaning: 'each truncating sampler keeps at least this many tokens',
  },
  seed: {
    api: ['seed'],
    kind: 'int',
    default: -1,
    flag: { names: ['-s', '--seed'], min: -1, max: 0xffffffff },
    meaning: "the sampler's random seed (32 bits); -1: random",
  },
  stop: {
    api: ['stop'],
    kind: 'shape',
    default: null,
    meaning: "strings that end the output (how many and how long: the server's limits, limits.ts)",
  },
  presencePenalty: {
    api: ['presence_penalty'],
    kind: 'float',
    default: 0,
    min: -2,
    max: 2,
    flag: { names: ['--presence-penalty'], min: -PENALTY_BOUND, max: PENALTY_BOUND },
    sampler: 'presencePenalty',
    meaning: 'subtracted from the logit of every token already present; 0: off',
  },
  frequencyPenalty: {
    api: ['frequency_penalty'],
    kind: 'float',
    default: 0,
    min: -2,
    max: 2,
    flag: { names: ['--frequency-penalty'], min: -PENALTY_BOUND, max: PENALTY_BOUND },
    sampler: 'frequencyPenalty',
    meaning: "subtracted from a token's logit once for each time it is present; 0: off",
  },
  repeatPenalty: {
    api: ['repeat_penalty'],
    kind: 'float',
    default: 1,
    min: POSITIVE_FLOAT32,
    max: 10,
    flag: { names: ['--repeat-penalty'], min: POSITIVE_FLOAT32, max: PENALTY_BOUND },
    sampler: 'repeatPenalty',
    meaning: "divides a present token's positive logit (multiplies a negative one); 1: off",
  },
  repeatLastN: {
    api: ['repeat_last_n'],
    kind: 'int',
    default: 64,
    min: -1,
    max: TOKEN_COUNT_MAX,
    flag: { names: ['--repeat-last-n'], min: -1, max: TOKEN_COUNT_MAX },
    sampler: 'penaltyLastN',
    meaning: 'tokens the penalties look back on; 0: off, -1: the context',
  },
  dryMultiplier: {
    api: ['dry_multiplier'],
    kind: 'float',
    default: 0,
    min: 0,
    max: FLOAT_BOUND,
    flag: { names: ['--dry-multiplier'], min: 0, max: FLOAT_BOUND },
    sampler: 'dryMultiplier',
    meaning: "DRY (don't repeat yourself): the penalty's scale; 0: off",
  },
  dryBase: {
    api: ['dry_base'],
    kind: 'float',
    default: 1.75,
    min: 1,
    max: FLOAT_BOUND,
    flag: { names: ['--dry-base'], min: 1, max: FLOAT_BOUND },
    sampler: 'dryBase',
    meaning: "DRY: the penalty grows as this to the power of the repeat's length",
  },
  dryAllowedLength: {
    api: ['dry_allowed_length'],
    kind: 'int',
    default: 2,
    min: 0,
    max: TOKEN_COUNT_MAX,
    flag: { names: ['--dry-allowed-length'], min: 0, max: TOKEN_COUNT_MAX },
    sampler: 'dryAllowedLength',
    meaning: 'DRY: repeats up to this long go unpenalised',
  },
  dryPenaltyLastN: {
    api: ['dry_penalty_last_n'],
    kind: 'int',
    default: -1,
    min: -1,
    max: TOKEN_COUNT_MAX,
    flag: { names: ['--dry-penalty-last-n'], min: -1, max: TOKEN_COUNT_MAX },
    sampler: 'dryPenaltyLastN',
    meaning: 'DRY: tokens it looks back on; 0: off, -1: the context',
  },
  drySequenceBreakers: {
    api: ['dry_sequence_breakers'],
    kind: 'shape',
    default: null,
    flag: { names: ['--dry-sequence-breaker'] },
    sampler: 'drySequenceBreakers',
    meaning: 'DRY: strings that end a repeat (not empty); none given: \\n : " *',
  },
  mirostat: {
    api: ['mirostat'],
    kind: 'int',
    default: 0,
    min: 0,
    max: 2,
    flag: { names: ['--mirostat'], min: 0, max: 2 },
    sampler: 'mirostat',
    meaning: 'Mirostat version 1 or 2, which replaces the other samplers; 0: off',
  },
  mirostatTau: {
    api: ['mirostat_tau'],
    kind: 'float',
    default: 5,
    min: 0,
    max: FLOAT_BOUND,
    flag: { names: ['--mirostat-ent'], min: 0, max: FLOAT_BOUND },
    sampler: 'mirostatTau',
    meaning: 'Mirostat: the target entropy',
  },
  mirostatEta: {
    api: ['mirostat_eta'],
    kind: 'float',
    default: 0.1,
    min: 0,
    max: FLOAT_BOUND,
    flag: { names: ['--mirostat-lr'], min: 0, max: FLOAT_BOUND },
    sampler: 'mirostatEta',
    meaning: 'Mirostat: the learning rate',
  },
  samplers: {
    api: ['samplers'],
    kind: 'shape',
    default: null,
    flag: { names: ['--samplers', '--sampler-seq', '--sampling-seq'] },
    meaning: "the sampler chain in order: names, or their letters; none given: llama.cpp's order",
  },
  ignoreEos: {
    api: ['ignore_eos'],
    kind: 'bool',
    default: false,
    flag: { names: ['--ignore-eos'] },
    sampler: 'ignoreEos',
    meaning: 'never stop at end of generation (its tokens are banned)',
  },
  logitBias: {
    api: ['logit_bias'],
    kind: 'shape',
    default: null,
    flag: { names: ['-l', '--logit-bias'] },
    meaning:
      "added to tokens' logits (token id or text -> bias; -100 or false bans); the flag's apply to every request",
  },
  nProbs: {
    api: ['n_probs'],
    kind: 'int',
    default: 0,
    min: 0,
    max: 100,
    meaning: 'report the probabilities of this many most likely tokens at each position',
  },
  postSamplingProbs: {
    api: ['post_sampling_probs'],
    kind: 'bool',
    default: false,
    meaning: "with n_probs: probabilities after the sampler chain, not the model's",
  },
  nKeep: {
    api: ['n_keep'],
    kind: 'int',
    default: 0,
    min: -1,
    max: TOKEN_COUNT_MAX,
    flag: { names: ['--keep'], min: -1, max: TOKEN_COUNT_MAX, key: 'keep' },
    meaning: 'prompt tokens a context shift keeps; -1: all',
  },
  cachePrompt: {
    api: ['cache_prompt'],
    kind: 'bool',
    default: true,
    flag: { names: ['--cache-prompt', '--no-cache-prompt'], env: 'LLAMA_ARG_CACHE_PROMPT' },
    meaning: "reuse the slot's cached prefix of the prompt; false: prefill it all",
  },
} as const satisfies Record<string, GenerationParameter>;

export type GenerationParameters = typeof GENERATION_PARAMETERS;
export type ParameterName = keyof GenerationParameters;

type Scalar<P> = P extends { kind: 'bool' } ? boolean : number;
/** The parameters a serve flag sets and whose default is a number or a boolean. */
type FlagScalar = {
  [K in ParameterName]: GenerationParameters[K] extends { flag: object; kind: 'int' | 'float' | 'bool' } ? K : never;
}[ParameterName];

/** The server's defaults of the scalar parameters a flag sets: llama-server's, from the table. */
export type ScalarDefaults = { [K in FlagScalar]: Scalar<GenerationParameters[K]> };

export const PARAMETER_NAMES = Object.keys(GENERATION_PARAMETERS) as ParameterName[];

/** A parameter's flag bounds, for the flag parser (FlagSpec's min and max; absent: none). */
export function flagBounds(name: ParameterName): { min?: number; max?: number } {
  const p: GenerationParameter = GENERATION_PARAMETERS[name];
  const { min, max } = p.flag ?? {};
  return { ...(min !== undefined ? { min } : {}), ...(max !== undefined ? { max } : {}) };
}

export function scalarDefaults(): ScalarDefaults {
  const out: Record<string, unknown> = {};
  for (const name of PARAMETER_NAMES) {
    const p: GenerationParameter = GENERATION_PARAMETERS[name];
    if (p.flag !== undefined && p.kind !== 'shape') out[name] = p.default;
  }
  return out as ScalarDefaults;
}

const PARAMETER_OF_FIELD: ReadonlyMap<string, ParameterName> = new Map(
  PARAMETER_NAMES.flatMap((name) =>
    GENERATION_PARAMETERS[name].api.map((field): [string, ParameterName] => [field, name]),
  ),
);

/** The parameter a request field sets (max_tokens and n_predict both set nPredict). */
export function parameterOfField(field: string): ParameterName | undefined {
  return PARAMETER_OF_FIELD.get(field);
}

/** llama-server's generation_settings, the fields each response reports (its order): parameters' and a few others. */
export const GENERATION_SETTINGS = [
  'n_ctx',
  'seed',
  'temperature',
  'dynatemp_range',
  'dynatemp_exponent',
  'top_k',
  'top_p',
  'min_p',
  'top_n_sigma',
  'xtc_probability',
  'xtc_threshold',
  'typical_p',
  'repeat_last_n',
  'repeat_penalty',
  'presence_penalty',
  'frequency_penalty',
  'dry_multiplier',
  'dry_base',
  'dry_allowed_length',
  'dry_penalty_last_n',
  'dry_sequence_breakers',
  'mirostat',
  'mirostat_tau',
  'mirostat_eta',
  'adaptive_target',
  'adaptive_decay',
  'max_tokens',
  'n_predict',
  'n_keep',
  'ignore_eos',
  'stream',
  'n_probs',
  'min_keep',
  'samplers',
  'post_sampling_probs',
  'cache_prompt',
] as const;

/** The server's defaults /props reports (default_generation_settings.params), in its order. */
export const PROPS_SETTINGS = [
  'seed',
  'temperature',
  'top_k',
  'top_p',
  'min_p',
  'typical_p',
  'repeat_last_n',
  'repeat_penalty',
  'presence_penalty',
  'frequency_penalty',
  'dry_multiplier',
  'mirostat',
  'n_predict',
  'max_tokens',
  'ignore_eos',
  'samplers',
] as const;

/**
 * A settings report: each field in order, the value of `extra` where it names it, else of the parameter the field
 * sets. A field that is neither is a mistake in the lists above.
 */
export function settingsReport(
  fields: readonly string[],
  value: (name: ParameterName) => unknown,
  extra: Readonly<Record<string, unknown>> = {},
): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const field of fields) {
    if (Object.hasOwn(extra, field)) {
      out[field] = extra[field];
      continue;
    }
    const name = parameterOfField(field);
    if (name === undefined) throw new Error(`'${field}' is not a generation parameter's field`);
    out[field] = value(name);
  }
  return out;
}
