// llama-server's speculative params (vendor/llama.cpp/common/arg.cpp, "speculative parameters", and -lcs/-lcd): the
// draft model and its context, the --spec-type list, the draft limits, the n-gram drafters' sizes, synthetic
// acceptance for benchmarks. Flags for what this server cannot do with a draft model (downloads, devices, tensor
// overrides, its own threads) are refused; those llama.cpp removed are refused with its advice.
import type { FlagSpec } from '../../flags/parse.ts';
import { KV_CACHE_TYPES } from '../../gguf/types.ts';
import { COMMON, SERVER, SPECULATIVE } from './groups.ts';
import type { ServeFlagKey } from './serve-config.ts';

/** The --spec-type names this server runs ('none' is accepted and means nothing). */
export const SPEC_TYPES = [
  'none',
  'draft-simple',
  'ngram-simple',
  'ngram-map-k',
  'ngram-map-k4v',
  'ngram-mod',
  'ngram-cache',
] as const;
export type SpecType = (typeof SPEC_TYPES)[number];

/** llama.cpp's types that need more than a draft GGUF: what each would need loaded. */
export const SIDECAR_SPEC_TYPES: Readonly<Record<string, string>> = {
  'draft-eagle3': 'an EAGLE3 sidecar',
  'draft-mtp': "the model's MTP layers",
  'draft-dflash': 'a DFlash sidecar',
  'draft-dspark': 'a DSpark sidecar',
};

/** -ngld: 'auto' and 'all' are -1 (every layer, as -ngl's default); else the layer count. */
function draftLayers(value: unknown): number {
  const text = String(value).trim();
  if (text === 'auto' || text === 'all') return -1;
  const n = Number(text);
  if (!/^-?\d+$/.test(text) || n < -1) throw new Error(`must be auto, all or a layer count, got '${text}'`);
  return n;
}

/** An n-gram drafter's size flags (--spec-ngram-TYPE-size-n, -size-m, -min-hits), as arg.cpp bounds them. */
function ngramFlags(
  type: 'simple' | 'map-k' | 'map-k4v',
  keys: readonly [ServeFlagKey, ServeFlagKey, ServeFlagKey],
): FlagSpec<ServeFlagKey>[] {
  const [sizeN, sizeM, minHits] = keys;
  return [
    {
      names: [`--spec-ngram-${type}-size-n`],
      kind: 'int',
      key: sizeN,
      min: 1,
      max: 1024,
      group: SPECULATIVE,
      help: `ngram-${type}: length of the lookup n-gram (default 12)`,
    },
    {
      names: [`--spec-ngram-${type}-size-m`],
      kind: 'int',
      key: sizeM,
      min: 1,
      max: 1024,
      group: SPECULATIVE,
      help: `ngram-${type}: length of the drafted m-gram (default 48)`,
    },
    {
      names: [`--spec-ngram-${type}-min-hits`],
      kind: 'int',
      key: minHits,
      min: 1,
      max: 65535,
      group: SPECULATIVE,
      help: `ngram-${type}: hits an n-gram needs before its m-gram is drafted (default 1)`,
    },
  ];
}

const NO_DRAFT_THREADS = "the draft model runs on the target's threads (-t, -tb)";

export const SPECULATIVE_FLAGS: readonly FlagSpec<ServeFlagKey>[] = [
  {
    names: ['-md', '--model-draft', '--spec-draft-model'],
    env: 'LLAMA_ARG_SPEC_DRAFT_MODEL',
    kind: 'string',
    key: 'draftModel',
    value: 'FNAME',
    group: SPECULATIVE,
    help: 'draft model for speculative decoding, of the same vocabulary (without --spec-type: draft-simple)',
  },
  {
    names: ['--spec-type'],
    env: 'LLAMA_ARG_SPEC_TYPE',
    kind: 'list',
    key: 'specTypes',
    value: SPEC_TYPES.join(','),
    group: SPECULATIVE,
    help: 'comma-separated speculative decoding types (default none; draft-simple with -md)',
  },
  {
    names: ['--spec-draft-n-max'],
    env: 'LLAMA_ARG_SPEC_DRAFT_N_MAX',
    kind: 'int',
    key: 'draftMax',
    min: 0,
    group: SPECULATIVE,
    help: 'most tokens drafted per slot and step (default 3)',
  },
  {
    names: ['--spec-draft-n-min'],
    env: 'LLAMA_ARG_SPEC_DRAFT_N_MIN',
    kind: 'int',
    key: 'draftMin',
    min: 0,
    group: SPECULATIVE,
    help: 'fewest draft tokens worth verifying (default 0)',
  },
  {
    names: ['--spec-draft-p-split', '--draft-p-split'],
    env: 'LLAMA_ARG_SPEC_DRAFT_P_SPLIT',
    kind: 'float',
    key: 'draftPSplit',
    min: 0,
    max: 1,
    group: SPECULATIVE,
    help: 'speculative decoding split probability (default 0.10)',
  },
  {
    names: ['--spec-draft-p-min', '--draft-p-min'],
    env: 'LLAMA_ARG_SPEC_DRAFT_P_MIN',
    kind: 'float',
    key: 'draftPMin',
    min: 0,
    max: 1,
    group: SPECULATIVE,
    help: 'the draft stops at a token the draft model gives less than this probability (default 0.00)',
  },
  {
    names: ['-ngld', '--spec-draft-ngl', '--gpu-layers-draft', '--n-gpu-layers-draft'],
    env: 'LLAMA_ARG_N_GPU_LAYERS_DRAFT',
    kind: 'string',
    key: 'draftGpuLayers',
    value: 'N',
    parse: draftLayers,
    group: SPECULATIVE,
    help: "draft model layers on the GPU: a number, 'auto' or 'all' (default auto: all, as -ngl)",
  },
  {
    names: ['-ctkd', '--spec-draft-type-k', '--cache-type-k-draft'],
    env: 'LLAMA_ARG_SPEC_DRAFT_CACHE_TYPE_K',
    kind: 'enum',
    key: 'draftKvTypeK',
    choices: KV_CACHE_TYPES,
    group: COMMON,
    help: 'KV cache type for K of the draft model (default f16)',
  },
  {
    names: ['-ctvd', '--spec-draft-type-v', '--cache-type-v-draft'],
    env: 'LLAMA_ARG_SPEC_DRAFT_CACHE_TYPE_V',
    kind: 'enum',
    key: 'draftKvTypeV',
    choices: KV_CACHE_TYPES,
    group: COMMON,
    help: 'KV cache type for V of the draft model (default f16)',
  },
  {
    names: ['--spec-draft-backend-sampling'],
    negated: ['--no-spec-draft-backend-sampling'],
    env: 'LLAMA_ARG_SPEC_DRAFT_BACKEND_SAMPLING',
    kind: 'bool',
    group: SPECULATIVE,
    help: 'draft sampling on the backend',
    ignored: "draft tokens are sampled by llama.cpp's CPU sampler here",
  },
  {
    names: ['--spec-synth-len'],
    env: 'LLAMA_ARG_SPEC_SYNTH_LEN',
    kind: 'float',
    key: 'specSynthLen',
    value: 'L',
    min: 1,
    group: SPECULATIVE,
    help: 'benchmarking only: drafts accepted at random for this mean accepted length, the target token included',
  },
  {
    names: ['--spec-synth-rates'],
    env: 'LLAMA_ARG_SPEC_SYNTH_RATES',
    kind: 'list',
    items: 'float',
    key: 'specSynthRates',
    value: 'P0,P1,...',
    min: 0,
    max: 1,
    group: SPECULATIVE,
    help: 'benchmarking only: drafts accepted at random with these per-position probabilities',
  },
  ...ngramFlags('simple', ['ngramSimpleSizeN', 'ngramSimpleSizeM', 'ngramSimpleMinHits']),
  ...ngramFlags('map-k', ['ngramMapKSizeN', 'ngramMapKSizeM', 'ngramMapKMinHits']),
  ...ngramFlags('map-k4v', ['ngramMapK4vSizeN', 'ngramMapK4vSizeM', 'ngramMapK4vMinHits']),
  {
    names: ['--spec-ngram-mod-n-min'],
    kind: 'int',
    key: 'ngramModMin',
    min: 0,
    max: 1024,
    group: SPECULATIVE,
    help: 'ngram-mod: fewest tokens it drafts (default 48)',
  },
  {
    names: ['--spec-ngram-mod-n-max'],
    kind: 'int',
    key: 'ngramModMax',
    min: 0,
    max: 1024,
    group: SPECULATIVE,
    help: 'ngram-mod: most tokens it drafts (default 64)',
  },
  {
    names: ['--spec-ngram-mod-n-match'],
    kind: 'int',
    key: 'ngramModMatch',
    min: 1,
    max: 1024,
    group: SPECULATIVE,
    help: 'ngram-mod: lookup length (default 24)',
  },
  {
    names: ['-lcs', '--lookup-cache-static'],
    kind: 'string',
    key: 'lookupCacheStatic',
    value: 'FNAME',
    group: SERVER,
    help: 'ngram-cache: static lookup cache (llama-lookup-create; not updated by generation)',
  },
  {
    names: ['-lcd', '--lookup-cache-dynamic'],
    kind: 'string',
    key: 'lookupCacheDynamic',
    value: 'FNAME',
    group: SERVER,
    help: 'ngram-cache: dynamic lookup cache (updated by generation)',
  },
  ...[
    [
      ['-hfd', '-hfrd', '--spec-draft-hf', '--hf-repo-draft'],
      'LLAMA_ARG_SPEC_DRAFT_HF_REPO',
      'it never downloads models: pass -md FILE',
    ],
    [['-devd', '--spec-draft-device', '--device-draft'], undefined, 'device selection is not offered'],
    [
      ['-otd', '--spec-draft-override-tensor', '--override-tensor-draft'],
      undefined,
      'tensor overrides are not offered',
    ],
    [
      ['-ncmoed', '--spec-draft-n-cpu-moe', '--spec-draft-ncmoe', '--n-cpu-moe-draft'],
      'LLAMA_ARG_SPEC_DRAFT_N_CPU_MOE',
      'MoE placement is not offered',
    ],
    [['-td', '--spec-draft-threads', '--threads-draft'], undefined, NO_DRAFT_THREADS],
    [['-tbd', '--spec-draft-threads-batch', '--threads-batch-draft'], undefined, NO_DRAFT_THREADS],
    [['-Cd', '--spec-draft-cpu-mask', '--cpu-mask-draft'], undefined, NO_DRAFT_THREADS],
    [['-Crd', '--spec-draft-cpu-range', '--cpu-range-draft'], undefined, NO_DRAFT_THREADS],
    [['--spec-draft-cpu-strict', '--cpu-strict-draft'], undefined, NO_DRAFT_THREADS],
    [['--spec-draft-prio', '--prio-draft'], undefined, NO_DRAFT_THREADS],
    [['--spec-draft-poll', '--poll-draft'], undefined, NO_DRAFT_THREADS],
    [['-Cbd', '--spec-draft-cpu-mask-batch', '--cpu-mask-batch-draft'], undefined, NO_DRAFT_THREADS],
    [['--spec-draft-cpu-strict-batch', '--cpu-strict-batch-draft'], undefined, NO_DRAFT_THREADS],
    [['--spec-draft-prio-batch', '--prio-batch-draft'], undefined, NO_DRAFT_THREADS],
    [['--spec-draft-poll-batch', '--poll-batch-draft'], undefined, NO_DRAFT_THREADS],
  ].map(
    ([names, env, why]): FlagSpec<ServeFlagKey> => ({
      names: names as string[],
      ...(env !== undefined ? { env: env as string } : {}),
      kind: 'string',
      group: SPECULATIVE,
      help: 'draft model placement',
      refused: why as string,
    }),
  ),
  {
    names: ['-cmoed', '--spec-draft-cpu-moe', '--cpu-moe-draft'],
    env: 'LLAMA_ARG_SPEC_DRAFT_CPU_MOE',
    kind: 'bool',
    group: SPECULATIVE,
    help: 'draft model MoE weights on the CPU',
    refused: 'MoE placement is not offered',
  },
  // Removed in llama.cpp (arg_removed): llama-server refuses them with this advice, and so does this server.
  ...[
    [['--draft', '--draft-n', '--draft-max'], 'LLAMA_ARG_DRAFT_MAX', '--spec-draft-n-max or --spec-ngram-mod-n-max'],
    [['--draft-min', '--draft-n-min'], 'LLAMA_ARG_DRAFT_MIN', '--spec-draft-n-min or --spec-ngram-mod-n-min'],
    [['--spec-ngram-size-n'], undefined, 'the respective --spec-ngram-*-size-n or --spec-ngram-mod-n-match'],
    [['--spec-ngram-size-m'], undefined, 'the respective --spec-ngram-*-size-m'],
    [['--spec-ngram-min-hits'], undefined, 'the respective --spec-ngram-*-min-hits'],
  ].map(
    ([names, env, instead]): FlagSpec<ServeFlagKey> => ({
      names: names as string[],
      ...(env !== undefined ? { env: env as string } : {}),
      kind: 'int',
      group: SPECULATIVE,
      help: 'removed from llama.cpp',
      refused: `llama.cpp removed it: use ${instead as string}`,
    }),
  ),
];
