// The speculative flags: llama-server's names, aliases and variables set the config; the types that run are settled
// (-md alone is draft-simple); what cannot run here is refused naming the flag; the engine options follow.
import t from 'tap';
import type { ModelInfo } from '../../src/engine/index.ts';
import { ConfigError, parseServeConfig } from '../../src/entry/config/index.ts';
import { SPECULATIVE_FLAGS } from '../../src/entry/config/speculative-flags.ts';
import {
  decoderOptionsOf,
  poolLayout,
  schedulerOptionsOf,
  speculativeOptionsOf,
} from '../../src/entry/engine-options.ts';
import { speculativeSummary } from '../../src/entry/summary.ts';

t.test("defaults: off, with llama-server's values ready", async (t) => {
  const c = parseServeConfig([], {});
  t.match(c, {
    draftModel: undefined,
    specTypes: [],
    draftMax: 3,
    draftMin: 0,
    draftPMin: 0,
    draftPSplit: 0.1,
    draftGpuLayers: -1,
    draftKvTypeK: 'f16',
    draftKvTypeV: 'f16',
    specSynthLen: undefined,
    specSynthRates: undefined,
    ngramSimpleSizeN: 12,
    ngramSimpleSizeM: 48,
    ngramSimpleMinHits: 1,
    ngramMapKSizeN: 12,
    ngramMapKSizeM: 48,
    ngramMapKMinHits: 1,
    ngramMapK4vSizeN: 12,
    ngramMapK4vSizeM: 48,
    ngramMapK4vMinHits: 1,
    ngramModMin: 48,
    ngramModMax: 64,
    ngramModMatch: 24,
    lookupCacheStatic: undefined,
    lookupCacheDynamic: undefined,
    specPolicy: 'adaptive',
  });
  t.same(c.warnings, []);
  t.equal(speculativeOptionsOf(c), undefined);
  t.notOk('speculative' in decoderOptionsOf(c, poolLayout(c, 1024)), 'no speculative options for the decoder');
  t.equal(schedulerOptionsOf(c).draftPolicy, 'adaptive');
});

/** Every spelling and variable of each flag, a value and what the config then holds. */
const CASES: { names: string[]; env?: string; key: string; value: string; gives: unknown }[] = [
  {
    names: ['-md', '--model-draft', '--spec-draft-model'],
    env: 'LLAMA_ARG_SPEC_DRAFT_MODEL',
    key: 'draftModel',
    value: 'd.gguf',
    gives: 'd.gguf',
  },
  {
    names: ['--spec-type'],
    env: 'LLAMA_ARG_SPEC_TYPE',
    key: 'specTypes',
    value: 'ngram-simple,ngram-mod',
    gives: ['ngram-simple', 'ngram-mod'],
  },
  { names: ['--spec-draft-n-max'], env: 'LLAMA_ARG_SPEC_DRAFT_N_MAX', key: 'draftMax', value: '8', gives: 8 },
  { names: ['--spec-draft-n-min'], env: 'LLAMA_ARG_SPEC_DRAFT_N_MIN', key: 'draftMin', value: '2', gives: 2 },
  {
    names: ['--spec-draft-p-split', '--draft-p-split'],
    env: 'LLAMA_ARG_SPEC_DRAFT_P_SPLIT',
    key: 'draftPSplit',
    value: '0.25',
    gives: 0.25,
  },
  {
    names: ['--spec-draft-p-min', '--draft-p-min'],
    env: 'LLAMA_ARG_SPEC_DRAFT_P_MIN',
    key: 'draftPMin',
    value: '0.75',
    gives: 0.75,
  },
  {
    names: ['-ngld', '--spec-draft-ngl', '--gpu-layers-draft', '--n-gpu-layers-draft'],
    env: 'LLAMA_ARG_N_GPU_LAYERS_DRAFT',
    key: 'draftGpuLayers',
    value: '7',
    gives: 7,
  },
  {
    names: ['-ctkd', '--spec-draft-type-k', '--cache-type-k-draft'],
    env: 'LLAMA_ARG_SPEC_DRAFT_CACHE_TYPE_K',
    key: 'draftKvTypeK',
    value: 'q8_0',
    gives: 'q8_0',
  },
  {
    names: ['-ctvd', '--spec-draft-type-v', '--cache-type-v-draft'],
    env: 'LLAMA_ARG_SPEC_DRAFT_CACHE_TYPE_V',
    key: 'draftKvTypeV',
    value: 'q4_0',
    gives: 'q4_0',
  },
  { names: ['--spec-synth-len'], env: 'LLAMA_ARG_SPEC_SYNTH_LEN', key: 'specSynthLen', value: '2.5', gives: 2.5 },
  {
    names: ['--spec-synth-rates'],
    env: 'LLAMA_ARG_SPEC_SYNTH_RATES',
    key: 'specSynthRates',
    value: '0.9,0.5',
    gives: [0.9, 0.5],
  },
  { names: ['--spec-ngram-simple-size-n'], key: 'ngramSimpleSizeN', value: '4', gives: 4 },
  { names: ['--spec-ngram-simple-size-m'], key: 'ngramSimpleSizeM', value: '16', gives: 16 },
  { names: ['--spec-ngram-simple-min-hits'], key: 'ngramSimpleMinHits', value: '2', gives: 2 },
  { names: ['--spec-ngram-map-k-size-n'], key: 'ngramMapKSizeN', value: '5', gives: 5 },
  { names: ['--spec-ngram-map-k-size-m'], key: 'ngramMapKSizeM', value: '17', gives: 17 },
  { names: ['--spec-ngram-map-k-min-hits'], key: 'ngramMapKMinHits', value: '3', gives: 3 },
  { names: ['--spec-ngram-map-k4v-size-n'], key: 'ngramMapK4vSizeN', value: '6', gives: 6 },
  { names: ['--spec-ngram-map-k4v-size-m'], key: 'ngramMapK4vSizeM', value: '18', gives: 18 },
  { names: ['--spec-ngram-map-k4v-min-hits'], key: 'ngramMapK4vMinHits', value: '4', gives: 4 },
  { names: ['--spec-ngram-mod-n-min'], key: 'ngramModMin', value: '8', gives: 8 },
  { names: ['--spec-ngram-mod-n-max'], key: 'ngramModMax', value: '32', gives: 32 },
  { names: ['--spec-ngram-mod-n-match'], key: 'ngramModMatch', value: '12', gives: 12 },
  { names: ['-lcs', '--lookup-cache-static'], key: 'lookupCacheStatic', value: 's.bin', gives: 's.bin' },
  { names: ['-lcd', '--lookup-cache-dynamic'], key: 'lookupCacheDynamic', value: 'd.bin', gives: 'd.bin' },
  { names: ['--spec-policy'], env: 'LLAMA_ARG_SPEC_POLICY', key: 'specPolicy', value: 'max', gives: 'max' },
];

t.test('every spelling and variable of each speculative flag sets its field', async (t) => {
  for (const c of CASES) {
    for (const name of c.names) {
      const config = parseServeConfig([name, c.value], {}) as unknown as Record<string, unknown>;
      t.strictSame(config[c.key], c.gives, `${name} ${c.value}`);
      if (name.startsWith('--'))
        t.strictSame(
          (parseServeConfig([`${name}=${c.value}`], {}) as unknown as Record<string, unknown>)[c.key],
          c.gives,
          `${name}=${c.value}`,
        );
    }
    if (c.env !== undefined)
      t.strictSame(
        (parseServeConfig([], { [c.env]: c.value }) as unknown as Record<string, unknown>)[c.key],
        c.gives,
        c.env,
      );
  }
  // The table above covers every flag that sets something, with exactly its spellings and variable.
  for (const spec of SPECULATIVE_FLAGS.filter((f) => f.key !== undefined)) {
    const c = CASES.find((x) => x.key === spec.key);
    t.same(c?.names, spec.names, `${spec.key}: its spellings`);
    t.equal(c?.env, spec.env, `${spec.key}: its variable`);
  }
});

t.test("-ngld takes llama-server's auto and all (every layer, as -ngl's default) or a count", async (t) => {
  for (const value of ['auto', 'all', '-1']) t.equal(parseServeConfig(['-ngld', value], {}).draftGpuLayers, -1, value);
  t.equal(parseServeConfig(['-ngld', '0'], {}).draftGpuLayers, 0);
  t.equal(parseServeConfig([], { LLAMA_ARG_N_GPU_LAYERS_DRAFT: 'all' }).draftGpuLayers, -1);
  t.throws(() => parseServeConfig(['-ngld', 'most'], {}), { message: /^-ngld: must be auto, all or a layer count/ });
  t.throws(() => parseServeConfig(['--spec-draft-ngl', '-2'], {}), { message: /^--spec-draft-ngl: must be auto, all/ });
});

t.test('the types that run: -md alone is draft-simple; none is nothing; repeats and lists add up', async (t) => {
  t.same(parseServeConfig(['-md', 'd.gguf'], {}).specTypes, ['draft-simple']);
  t.same(parseServeConfig(['-md', 'd.gguf', '--spec-type', 'ngram-mod,draft-simple'], {}).specTypes, [
    'ngram-mod',
    'draft-simple',
  ]);
  t.same(parseServeConfig(['--spec-type', 'none'], {}).specTypes, []);
  t.same(parseServeConfig(['--spec-type', 'ngram-mod,none', '--spec-type', 'ngram-mod,ngram-simple'], {}).specTypes, [
    'ngram-mod',
    'ngram-simple',
  ]);
  t.same(parseServeConfig([], { LLAMA_ARG_SPEC_TYPE: 'ngram-map-k' }).specTypes, ['ngram-map-k']);
});

t.test('values out of range name the flag', async (t) => {
  for (const [argv, message] of [
    [['--spec-draft-n-max', '-1'], /^--spec-draft-n-max must be at least 0, got -1/],
    [['--spec-draft-p-min', '1.5'], /^--spec-draft-p-min must be between 0 and 1, got 1.5/],
    [['--spec-ngram-simple-size-n', '0'], /^--spec-ngram-simple-size-n must be between 1 and 1024, got 0/],
    [['--spec-ngram-mod-n-match', '1025'], /^--spec-ngram-mod-n-match must be between 1 and 1024/],
    [['--spec-ngram-map-k-min-hits', '0'], /^--spec-ngram-map-k-min-hits must be between 1 and 65535/],
    [['--spec-synth-len', '0.5'], /^--spec-synth-len must be at least 1, got 0.5/],
    [['--spec-synth-rates', '0.9,1.5'], /^--spec-synth-rates must be between 0 and 1, got 1.5/],
    [['-ctkd', 'q3'], /^-ctkd must be one of f32, f16/],
    [['--spec-policy', 'greedy'], /^--spec-policy must be one of adaptive, max, got 'greedy'/],
  ] as const)
    t.throws(() => parseServeConfig(argv, {}), { name: 'FlagError', message }, argv.join(' '));
});

t.test('combinations that cannot run are refused, naming the flags', async (t) => {
  for (const [argv, message] of [
    [
      ['--spec-type', 'draft-eagle3'],
      /^--spec-type draft-eagle3 needs an EAGLE3 sidecar, which this server does not load: it runs draft-simple \(with -md\) and the n-gram types$/,
    ],
    [
      ['--spec-type', 'draft-mtp'],
      /^--spec-type draft-mtp needs the model's MTP layers, which this server does not load/,
    ],
    [['--spec-type', 'ngram-mod,draft-dflash'], /^--spec-type draft-dflash needs a DFlash sidecar/],
    [['--spec-type', 'draft-dspark'], /^--spec-type draft-dspark needs a DSpark sidecar/],
    [
      ['--spec-type', 'ngram'],
      /^--spec-type: unknown type 'ngram' \(use none, draft-simple, ngram-simple, ngram-map-k, ngram-map-k4v, ngram-mod, ngram-cache\)$/,
    ],
    [
      ['--spec-type', 'draft-simple'],
      /^--spec-type draft-simple needs a draft model \(-md\/--spec-draft-model FILE\)$/,
    ],
    [
      ['-md', 'd.gguf', '--spec-type', 'ngram-mod,ngram-simple'],
      /^-md\/--spec-draft-model is given but --spec-type ngram-mod,ngram-simple does not use a draft model: add draft-simple, or drop -md$/,
    ],
    [['-md', 'd.gguf', '--spec-type', 'none'], /^-md\/--spec-draft-model is given but --spec-type none does not use/],
    [
      ['--spec-type', 'ngram-cache'],
      /^--spec-type ngram-cache needs a static lookup cache \(-lcs\/--lookup-cache-static FILE\)$/,
    ],
    [
      ['--spec-type', 'ngram-mod', '--spec-synth-len', '2', '--spec-synth-rates', '0.5'],
      /^--spec-synth-len and --spec-synth-rates cannot be used together$/,
    ],
    [
      ['-md', 'd.gguf', '-ctvd', 'q8_0', '-fa', 'off'],
      /^a quantized draft V cache \(-ctvd q8_0\) needs flash attention/,
    ],
    [['-md', 'd.gguf', '--embeddings'], /^speculative decoding \(--spec-type, -md\) does not apply to --embeddings$/],
  ] as const)
    t.throws(() => parseServeConfig(argv, {}), { name: 'FlagError', message }, argv.join(' '));
  t.same(parseServeConfig(['--spec-type', 'ngram-cache', '-lcs', 's.bin'], {}).specTypes, ['ngram-cache']);
  t.equal(parseServeConfig(['-md', 'd.gguf', '-ctvd', 'q8_0'], {}).draftKvTypeV, 'q8_0', 'with -fa auto');
});

t.test('flags for what a draft model cannot do here are refused under the name given, with the reason', async (t) => {
  const refused = SPECULATIVE_FLAGS.filter((f) => f.refused !== undefined);
  for (const spec of refused)
    for (const name of spec.names)
      t.throws(() => parseServeConfig([name, '1'], {}), {
        message: new RegExp(`^${name} is not supported by this server: `),
      });
  for (const [argv, message] of [
    [['-hfd', 'org/draft'], /^-hfd is not supported by this server: it never downloads models: pass -md FILE$/],
    [['-td', '4'], /^-td is not supported by this server: the draft model runs on the target's threads \(-t, -tb\)$/],
    [['-tbd', '4'], /^-tbd is not supported by this server: the draft model runs on the target's threads/],
    [['-devd', 'CUDA0'], /^-devd is not supported by this server: device selection is not offered$/],
    [['-otd', 'x=CPU'], /^-otd is not supported by this server: tensor overrides are not offered$/],
    [['-cmoed'], /^-cmoed is not supported by this server: MoE placement is not offered$/],
    [['--spec-draft-prio', '2'], /^--spec-draft-prio is not supported by this server: the draft model runs on/],
    [
      ['--draft', '8'],
      /^--draft is not supported by this server: llama.cpp removed it: use --spec-draft-n-max or --spec-ngram-mod-n-max$/,
    ],
    [
      ['--draft-min', '1'],
      /^--draft-min is not supported by this server: llama.cpp removed it: use --spec-draft-n-min/,
    ],
    [['--spec-ngram-size-n', '3'], /^--spec-ngram-size-n is not supported by this server: llama.cpp removed it/],
    [['--spec-ngram-min-hits', '3'], /^--spec-ngram-min-hits is not supported by this server: llama.cpp removed it/],
  ] as const)
    t.throws(() => parseServeConfig(argv, {}), { name: 'FlagError', message }, argv.join(' '));
  for (const env of ['LLAMA_ARG_SPEC_DRAFT_HF_REPO', 'LLAMA_ARG_DRAFT_MAX', 'LLAMA_ARG_SPEC_DRAFT_CPU_MOE'])
    t.throws(() => parseServeConfig([], { [env]: '1' }), {
      message: new RegExp(`^${env} is not supported by this server`),
    });
});

t.test('draft backend sampling is accepted and has no effect; settings for types that do not run warn', async (t) => {
  for (const argv of [['--spec-draft-backend-sampling'], ['--no-spec-draft-backend-sampling']])
    t.match(parseServeConfig(argv, {}).warnings, [
      new RegExp(`^${argv[0]} has no effect here: draft tokens are sampled by llama.cpp's CPU sampler here$`),
    ]);
  t.match(parseServeConfig(['--spec-draft-n-max', '5', '--spec-policy', 'max'], {}).warnings, [
    /^--spec-draft-n-max has no effect here: speculative decoding is off \(no --spec-type or -md\)$/,
    /^--spec-policy has no effect here: speculative decoding is off/,
  ]);
  t.match(parseServeConfig(['--spec-type', 'ngram-mod', '-lcs', 's.bin', '-ngld', '0'], {}).warnings, [
    /^-ngld has no effect here: it applies to --spec-type draft-simple, which is not on$/,
    /^-lcs has no effect here: it applies to --spec-type ngram-cache, which is not on$/,
  ]);
  t.same(
    parseServeConfig(['-md', 'd.gguf', '-ctkd', 'q8_0', '-ngld', '3', '--spec-draft-n-max', '6'], {}).warnings,
    [],
    'nothing to warn about when they apply',
  );
});

t.test('the decoder and scheduler options the flags give', async (t) => {
  const c = parseServeConfig(
    [
      ...['--spec-type', 'ngram-mod,ngram-cache', '-lcs', 's.bin', '-lcd', 'd.bin', '--spec-draft-n-max', '6'],
      ...['--spec-draft-n-min', '1', '--spec-draft-p-min', '0.5', '--spec-ngram-mod-n-match', '16'],
      ...['--spec-ngram-simple-size-n', '3', '--spec-synth-rates', '0.8,0.4', '--spec-policy', 'max'],
    ],
    {},
  );
  const speculative = speculativeOptionsOf(c);
  t.same(speculative, {
    types: ['ngram-mod', 'ngram-cache'],
    draftKvType: 'f16',
    draftKvTypeV: 'f16',
    nMax: 6,
    nMin: 1,
    pMin: 0.5,
    pSplit: 0.1,
    ngramSimple: { sizeN: 3, sizeM: 48, minHits: 1 },
    ngramMapK: { sizeN: 12, sizeM: 48, minHits: 1 },
    ngramMapK4v: { sizeN: 12, sizeM: 48, minHits: 1 },
    ngramModMatch: 16,
    ngramModMin: 48,
    ngramModMax: 64,
    lookupCacheStatic: 's.bin',
    lookupCacheDynamic: 'd.bin',
    synthRates: [0.8, 0.4],
  });
  t.same(decoderOptionsOf(c, poolLayout(c, 1024)).speculative, speculative);
  t.equal(schedulerOptionsOf(c).draftPolicy, 'max');
  const synth = speculativeOptionsOf(parseServeConfig(['--spec-type', 'ngram-mod', '--spec-synth-len', '2'], {}));
  t.equal(synth?.synthLen, 2);
  t.notOk(synth && 'synthRates' in synth);
});

t.test('the startup summary names the draft model, the types, n-max and the policy', async (t) => {
  t.equal(speculativeSummary(parseServeConfig([], {}), undefined), 'off');
  const draft = { path: '/models/gemma3-draft.gguf', sizeBytes: 40 * 1024 * 1024 } as ModelInfo;
  t.same(speculativeSummary(parseServeConfig(['-md', 'x.gguf', '--spec-draft-n-max', '4'], {}), draft), {
    types: 'draft-simple',
    draftModel: 'gemma3-draft.gguf (40.00 MiB)',
    nMax: 4,
    policy: 'adaptive',
  });
  t.same(speculativeSummary(parseServeConfig(['--spec-type', 'ngram-mod', '--spec-policy', 'max'], {}), undefined), {
    types: 'ngram-mod',
    nMax: 3,
    policy: 'max',
  });
});

t.test('ConfigError is what the refusals throw', async (t) => {
  t.throws(() => parseServeConfig(['--spec-type', 'draft-mtp'], {}), ConfigError);
});
