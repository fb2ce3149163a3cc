// What no single flag can check: the defaults that follow from other flags (the unified KV pool, the ubatch) and
// the combinations llama-server refuses or this server cannot serve. Each refusal is a FlagError naming the flags.
import { FlagError } from '../../flags/parse.ts';
import { parseObjectivePriorities } from '../../server/client-key.ts';
import type { ServeConfig } from './serve-config.ts';
import { SIDECAR_SPEC_TYPES, SPEC_TYPES } from './speculative-flags.ts';

/** Settles the defaults that depend on other flags and refuses what does not go together; `config` is changed. */
export function checkServeConfig(config: ServeConfig): ServeConfig {
  const explicit = config.explicit;
  // As llama-server: one KV pool shared by the slots unless -np is given (then each slot has -c/-np), and
  // --kv-unified / --no-kv-unified decide when given.
  if (config.kvUnified === undefined) config.kvUnified = !explicit.has('parallel');
  if (!explicit.has('ubatchSize') || config.ubatchSize > config.batchSize)
    config.ubatchSize = Math.min(config.ubatchSize, config.batchSize);
  if (config.batchSize < config.parallel)
    throw new FlagError(`--batch-size (${config.batchSize}) must be at least --parallel (${config.parallel})`);
  // llama.cpp quantizes V only inside flash attention.
  if (quantized(config.kvTypeV) && config.flashAttn === 'off')
    throw new FlagError(`a quantized V cache (-ctv ${config.kvTypeV}) needs flash attention (--flash-attn auto or on)`);
  checkSpeculative(config);
  if ((config.sslKeyFile === undefined) !== (config.sslCertFile === undefined))
    throw new FlagError('HTTPS needs both --ssl-key-file and --ssl-cert-file');
  if (config.headersTimeoutSeconds > config.bodyTimeoutSeconds)
    throw new FlagError(
      `--headers-timeout (${config.headersTimeoutSeconds}) must be at most --body-timeout (${config.bodyTimeoutSeconds}): the headers are part of the request`,
    );
  if (config.grammar !== undefined && (config.jsonSchema !== undefined || config.jsonSchemaFile !== undefined))
    throw new FlagError('--grammar and --json-schema cannot be used together');
  if ((config.pooling as string | undefined) === 'rank')
    throw new FlagError('--pooling rank is for reranking, which is not offered: use none, mean, cls or last');
  if (config.pooling !== undefined && !config.embeddings)
    config.warnings = [...config.warnings, '--pooling applies to --embeddings only; it changes nothing here'];
  try {
    parseObjectivePriorities(config.objectivePriorities);
  } catch (err) {
    throw new FlagError(`--objective-priority: ${(err as Error).message}`);
  }
  return config;
}

function quantized(type: ServeConfig['kvTypeV']): boolean {
  return type !== 'f16' && type !== 'f32' && type !== 'bf16';
}

/** The settings that do something only with one speculative type ('any': with speculative decoding at all). */
const SPEC_SETTINGS: readonly [keyof ServeConfig, string, string][] = [
  ['draftMax', '--spec-draft-n-max', 'any'],
  ['draftMin', '--spec-draft-n-min', 'any'],
  ['specSynthLen', '--spec-synth-len', 'any'],
  ['specSynthRates', '--spec-synth-rates', 'any'],
  ['specPolicy', '--spec-policy', 'any'],
  ['draftPMin', '--spec-draft-p-min', 'draft-simple'],
  ['draftPSplit', '--spec-draft-p-split', 'draft-simple'],
  ['draftGpuLayers', '-ngld', 'draft-simple'],
  ['draftKvTypeK', '-ctkd', 'draft-simple'],
  ['draftKvTypeV', '-ctvd', 'draft-simple'],
  ...(['simple', 'map-k', 'map-k4v'] as const).flatMap((type): [keyof ServeConfig, string, string][] => {
    const key = type === 'simple' ? 'ngramSimple' : type === 'map-k' ? 'ngramMapK' : 'ngramMapK4v';
    return [
      [`${key}SizeN` as keyof ServeConfig, `--spec-ngram-${type}-size-n`, `ngram-${type}`],
      [`${key}SizeM` as keyof ServeConfig, `--spec-ngram-${type}-size-m`, `ngram-${type}`],
      [`${key}MinHits` as keyof ServeConfig, `--spec-ngram-${type}-min-hits`, `ngram-${type}`],
    ];
  }),
  ['ngramModMin', '--spec-ngram-mod-n-min', 'ngram-mod'],
  ['ngramModMax', '--spec-ngram-mod-n-max', 'ngram-mod'],
  ['ngramModMatch', '--spec-ngram-mod-n-match', 'ngram-mod'],
  ['lookupCacheStatic', '-lcs', 'ngram-cache'],
  ['lookupCacheDynamic', '-lcd', 'ngram-cache'],
];

/**
 * Settles config.specTypes to the types that run and refuses what llama.cpp could not run here. Unlike llama-server,
 * -md alone means draft-simple: there a draft model without --spec-type is loaded and never used, a flag silently
 * ignored.
 */
function checkSpeculative(config: ServeConfig): void {
  for (const name of config.specTypes) {
    const sidecar = SIDECAR_SPEC_TYPES[name];
    if (sidecar !== undefined)
      throw new FlagError(
        `--spec-type ${name} needs ${sidecar}, which this server does not load: it runs draft-simple (with -md) and the n-gram types`,
      );
    if (!(SPEC_TYPES as readonly string[]).includes(name))
      throw new FlagError(`--spec-type: unknown type '${name}' (use ${SPEC_TYPES.join(', ')})`);
  }
  const types = config.explicit.has('specTypes')
    ? [...new Set(config.specTypes.filter((name) => name !== 'none'))]
    : config.draftModel !== undefined
      ? ['draft-simple']
      : [];
  config.specTypes = types;
  const drafts = types.includes('draft-simple');
  if (drafts && config.draftModel === undefined)
    throw new FlagError('--spec-type draft-simple needs a draft model (-md/--spec-draft-model FILE)');
  if (!drafts && config.draftModel !== undefined)
    throw new FlagError(
      `-md/--spec-draft-model is given but --spec-type ${types.join(',') || 'none'} does not use a draft model: add draft-simple, or drop -md`,
    );
  if (types.includes('ngram-cache') && config.lookupCacheStatic === undefined)
    throw new FlagError('--spec-type ngram-cache needs a static lookup cache (-lcs/--lookup-cache-static FILE)');
  if (types.length > 0 && config.embeddings)
    throw new FlagError('speculative decoding (--spec-type, -md) does not apply to --embeddings');
  if (config.specSynthLen !== undefined && config.specSynthRates !== undefined)
    throw new FlagError('--spec-synth-len and --spec-synth-rates cannot be used together');
  if (drafts && quantized(config.draftKvTypeV) && config.flashAttn === 'off')
    throw new FlagError(
      `a quantized draft V cache (-ctvd ${config.draftKvTypeV}) needs flash attention (--flash-attn auto or on)`,
    );
  const unused = SPEC_SETTINGS.filter(
    ([key, , needs]) => config.explicit.has(key) && (needs === 'any' ? types.length === 0 : !types.includes(needs)),
  );
  if (unused.length > 0)
    config.warnings = [
      ...config.warnings,
      ...unused.map(([, flag, needs]) =>
        needs === 'any'
          ? `${flag} has no effect here: speculative decoding is off (no --spec-type or -md)`
          : `${flag} has no effect here: it applies to --spec-type ${needs}, which is not on`,
      ),
    ];
}
