// From `npm start`'s flags to what the engine and the scheduler are built with: the KV pool's layout, the decoder's
// options and the scheduler's. Pure, so a test can build exactly what a user's flags give (test/server/harness.ts).

import type { ChatTemplateOptions, DecoderOptions } from '../engine/index.ts';
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

export function decoderOptionsOf(config: ServeConfig, pool: PoolLayout): DecoderOptions {
  const unified = config.kvUnified !== false;
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
    ...(config.prefillChunk !== undefined ? { stepTokenBudget: config.prefillChunk } : {}),
    ...(config.maxQueueTokens ? { maxQueuedTokens: config.maxQueueTokens } : {}),
  };
}
