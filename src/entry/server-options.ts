// From `npm start`'s flags to what the HTTP layer is given (src/server/options.ts): names, keys, limits, the
// generation defaults requests fall back on and which optional endpoints are on. Pure, so tests can check that
// every flag reaches the server.

import { parseObjectivePriorities } from '../server/client-key.ts';
import { REQUEST_LIMIT_KEYS } from '../server/limits.ts';
import { type GenerationDefaults, SAMPLING_DEFAULT_KEYS, type ServerOptions } from '../server/options.ts';
import { pick } from '../util/pick.ts';
import type { ServeConfig } from './config/index.ts';
import type { ServeInputs } from './inputs.ts';

export function generationDefaults(config: ServeConfig, grammar: string | undefined): GenerationDefaults {
  return {
    ...pick(config, SAMPLING_DEFAULT_KEYS),
    nPredict: config.nPredict,
    grammar,
    cachePrompt: config.cachePrompt,
    contextShift: config.contextShift,
    nKeep: config.keep,
    renderSpecial: config.renderSpecial,
  };
}

export interface ServedFacts {
  ctxPerSlot: number;
  buildInfo: string;
}

export function serverOptionsOf(config: ServeConfig, inputs: ServeInputs, facts: ServedFacts): ServerOptions {
  const out: ServerOptions = {
    aliases: config.aliases,
    tags: config.tags,
    apiKeys: inputs.apiKeys,
    bodyLimitBytes: config.bodyLimitBytes,
    limits: pick(config, REQUEST_LIMIT_KEYS),
    connections: {
      headersTimeoutMs: config.headersTimeoutSeconds * 1000,
      requestReadTimeoutMs: config.bodyTimeoutSeconds * 1000,
      keepAliveTimeoutMs: config.keepAliveTimeoutSeconds * 1000,
      maxRequestsPerSocket: config.keepAliveMaxRequests,
      maxConnections: config.maxConnections,
    },
    ctxPerSlot: facts.ctxPerSlot,
    slots: config.parallel,
    speculative: config.specTypes.length > 0,
    requestTimeoutMs: config.timeoutSeconds * 1000,
    defaults: generationDefaults(config, inputs.grammar),
    endpoints: { metrics: config.metrics, props: config.props, slots: config.slots },
    corsOrigins: config.corsOrigins,
    verbose: config.verbose,
    objectivePriorities: parseObjectivePriorities(config.objectivePriorities),
    trustedProxies: config.trustProxy,
    buildInfo: facts.buildInfo,
    embeddings: config.embeddings,
  };
  if (config.slotSavePath !== undefined) out.slotSavePath = config.slotSavePath;
  if (config.ssePingSeconds !== undefined && config.ssePingSeconds > 0) out.ssePingMs = config.ssePingSeconds * 1000;
  return out;
}
