// What no single flag can check: the defaults that follow from other flags (the unified KV pool, the ubatch) and
// the combinations llama-server refuses or this server cannot serve. Each refusal is a FlagError naming the flags.
import { FlagError } from '../../flags/parse.ts';
import { parseObjectivePriorities } from '../../server/client-key.ts';
import type { ServeConfig } from './serve-config.ts';

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
  const quantizedV = config.kvTypeV !== 'f16' && config.kvTypeV !== 'f32' && config.kvTypeV !== 'bf16';
  // llama.cpp quantizes V only inside flash attention.
  if (quantizedV && config.flashAttn === 'off')
    throw new FlagError(`a quantized V cache (-ctv ${config.kvTypeV}) needs flash attention (--flash-attn auto or on)`);
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
