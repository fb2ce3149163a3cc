// From `npm start`'s flags to what the engine and the scheduler are built with: the KV pool's layout, the decoder's
// options and the scheduler's. Pure, so a test can build exactly what a user's flags give (test/server/harness.ts).

import type { ChatTemplateOptions, DecoderOptions, Model } from '../engine/index.ts';
import type { SchedulerOptions } from '../scheduler/types.ts';
import type { ServeConfig } from './config/index.ts';

export interface PoolLayout {
  /** KV cells each slot is given (-c / -np, as llama-server's n_ctx_seq without a unified pool). */
  share: number;
  /** The most one request may use (prompt + output). */
  ctxPerSlot: number;
  /** Cells in the pool, over all slots. */
  kvCells: number;
}

/**
 * Unified (the default, as llama-server's): one pool of share * slots cells, from which any slot may take up to the
 * whole pool (or --ctx-per-slot), as llama-server's n_ctx_seq. --no-kv-unified: each slot has its share.
 */
export function poolLayout(
  config: Pick<ServeConfig, 'kvUnified' | 'parallel' | 'ctxPerSlotMax'>,
  share: number,
): PoolLayout {
  const pool = share * config.parallel;
  const unified = config.kvUnified !== false;
  return { share, ctxPerSlot: unified ? Math.min(pool, config.ctxPerSlotMax ?? pool) : share, kvCells: pool };
}

/** With speculative types on: the decoder's speculative options, over the loaded draft model (draft-simple). */
export function speculativeOptionsOf(
  config: ServeConfig,
  draftModel?: Model,
): NonNullable<DecoderOptions['speculative']> | undefined {
  if (config.specTypes.length === 0) return undefined;
  const ngram = (sizeN: number, sizeM: number, minHits: number) => ({ sizeN, sizeM, minHits });
  return {
    types: config.specTypes,
    ...(draftModel !== undefined ? { draftModel } : {}),
    draftKvType: config.draftKvTypeK,
    draftKvTypeV: config.draftKvTypeV,
    nMax: config.draftMax,
    nMin: config.draftMin,
    pMin: config.draftPMin,
    pSplit: config.draftPSplit,
    ngramSimple: ngram(config.ngramSimpleSizeN, config.ngramSimpleSizeM, config.ngramSimpleMinHits),
    ngramMapK: ngram(config.ngramMapKSizeN, config.ngramMapKSizeM, config.ngramMapKMinHits),
    ngramMapK4v: ngram(config.ngramMapK4vSizeN, config.ngramMapK4vSizeM, config.ngramMapK4vMinHits),
    ngramModMatch: config.ngramModMatch,
    ngramModMin: config.ngramModMin,
    ngramModMax: config.ngramModMax,
    ...(config.lookupCacheStatic !== undefined ? { lookupCacheStatic: config.lookupCacheStatic } : {}),
    ...(config.lookupCacheDynamic !== undefined ? { lookupCacheDynamic: config.lookupCacheDynamic } : {}),
    ...(config.specSynthLen !== undefined ? { synthLen: config.specSynthLen } : {}),
    ...(config.specSynthRates !== undefined ? { synthRates: config.specSynthRates } : {}),
  };
}

/** The decoder's options; `draftModel` is the loaded -md model when draft-simple runs. */
export function decoderOptionsOf(config: ServeConfig, pool: PoolLayout, draftModel?: Model): DecoderOptions {
  const unified = config.kvUnified !== false;
  const speculative = speculativeOptionsOf(config, draftModel);
  return {
    slots: config.parallel,
    ctxPerSlot: pool.share,
    kvUnified: unified,
    ...(unified ? { slotCtxMax: pool.ctxPerSlot } : {}),
    batchSize: config.batchSize,
    ubatchSize: config.ubatchSize,
    threads: config.threads,
    ...(config.threadsBatch !== undefined ? { threadsBatch: config.threadsBatch } : {}),
    flashAttn: config.flashAttn,
    kvType: config.kvTypeK,
    kvTypeV: config.kvTypeV,
    offloadKv: config.offloadKv,
    swaFull: config.swaFull,
    ctxCheckpoints: config.ctxCheckpoints,
    checkpointMinStep: config.checkpointMinStep,
    ...(speculative !== undefined ? { speculative } : {}),
  };
}

/**
 * The chat layer's options. As llama-server: preserve_reasoning is on unless --no-reasoning-preserve, and a
 * preserve_reasoning given in --chat-template-kwargs wins.
 */
export function chatOptionsOf(config: ServeConfig, chatTemplate: string | undefined): ChatTemplateOptions {
  const kwargs = config.chatTemplateKwargs !== undefined ? (JSON.parse(config.chatTemplateKwargs) as object) : {};
  return {
    ...(chatTemplate !== undefined ? { template: chatTemplate } : {}),
    jinja: config.jinja,
    reasoningFormat: config.reasoningFormat,
    thinking: config.reasoning,
    prefillAssistant: config.prefillAssistant,
    defaultKwargs: { preserve_reasoning: config.reasoningPreserve, ...kwargs },
  };
}

export function schedulerOptionsOf(config: ServeConfig): SchedulerOptions {
  return {
    promptCacheBytes: config.cacheRamMiB < 0 ? Number.POSITIVE_INFINITY : config.cacheRamMiB * 1024 * 1024,
    maxQueuedRequests: config.maxQueue,
    draftPolicy: config.specPolicy,
    ...(config.prefillChunk !== undefined ? { stepTokenBudget: config.prefillChunk } : {}),
    ...(config.maxQueueTokens ? { maxQueuedTokens: config.maxQueueTokens } : {}),
  };
}
