// What the HTTP layer needs to know: the served model's name and limits, keys, timeouts, sampling defaults.
// The CLI (src/config.ts) builds this from flags; tests build it by hand.
import { createHash } from 'node:crypto';
import { basename } from 'node:path';
import type { ModelInfo } from '../engine/index.ts';
import type { GenerationHandlers, GenerationRequest, RequestHandle } from '../scheduler/types.ts';

export interface ServerConfig {
  /** Id reported by /v1/models and in every response (llama-server's --alias). Default: the model file name. */
  modelId?: string;
  /** Bearer keys accepted on every route but /health. Empty or absent: no authentication. */
  apiKeys?: readonly string[];
  /** Largest request body; larger ones get 413. Default 1 MiB. */
  bodyLimitBytes?: number;
  /** Prompt + generated tokens one slot holds (the decoder's ctxPerSlot). */
  ctxPerSlot: number;
  /** Number of slots (parallel sequences). */
  slots: number;
  /** Deadline per request, from submission; past it the request ends with HTTP 504 (or an error event). */
  requestTimeoutMs?: number;
  /** How long a stream may stay undrained (client not reading) before its request is cancelled. Default 30 s. */
  streamDrainTimeoutMs?: number;
  /** Temperature when a request gives none. Default 1 (OpenAI's default); 0 is greedy. */
  defaultTemperature?: number;
  /** system_fingerprint in responses. Default: derived from the model and the slot context. */
  systemFingerprint?: string;
  /** `created` of the model in /v1/models, in seconds. Default: when the app was built. */
  modelCreated?: number;
  /** `owned_by` in /v1/models. Default 'llamacpp' (as llama-server). */
  ownedBy?: string;
}

/** ServerConfig with every default filled in. */
export interface ResolvedServerConfig {
  modelId: string;
  apiKeys: readonly string[];
  bodyLimitBytes: number;
  ctxPerSlot: number;
  slots: number;
  requestTimeoutMs: number | undefined;
  streamDrainTimeoutMs: number;
  defaultTemperature: number;
  systemFingerprint: string;
  modelCreated: number;
  ownedBy: string;
}

/** The part of the engine's Model the HTTP layer uses. */
export interface ServedModel {
  readonly info: Pick<ModelInfo, 'path' | 'name' | 'nParams' | 'sizeBytes' | 'nCtxTrain' | 'nVocab' | 'bos'>;
  tokenize(text: string, options?: { addSpecial?: boolean; parseSpecial?: boolean }): ArrayLike<number>;
}

/** The part of the Scheduler the HTTP layer uses. */
export interface ServedScheduler {
  /** Throws RejectedError (QUEUE_FULL, SHUTTING_DOWN) or ContextExceededError synchronously. */
  submit(request: GenerationRequest, handlers: GenerationHandlers): RequestHandle;
  /** Served as-is by GET /slots. */
  snapshot(): unknown;
}

export const DEFAULT_BODY_LIMIT_BYTES = 1024 * 1024;
export const DEFAULT_STREAM_DRAIN_TIMEOUT_MS = 30_000;
export const DEFAULT_TEMPERATURE = 1;

export function resolveServerConfig(config: ServerConfig, model: ServedModel): ResolvedServerConfig {
  for (const [name, value] of [
    ['ctxPerSlot', config.ctxPerSlot],
    ['slots', config.slots],
  ] as const) {
    if (!Number.isInteger(value) || value < 1) throw new RangeError(`${name} must be an integer >= 1, got ${value}`);
  }
  const modelId = config.modelId ?? basename(model.info.path);
  const fingerprint = createHash('sha256')
    .update(`${model.info.name}|${model.info.sizeBytes}|${model.info.nParams}|${config.ctxPerSlot}`)
    .digest('hex');
  return {
    modelId,
    apiKeys: (config.apiKeys ?? []).filter((k) => k !== ''),
    bodyLimitBytes: config.bodyLimitBytes ?? DEFAULT_BODY_LIMIT_BYTES,
    ctxPerSlot: config.ctxPerSlot,
    slots: config.slots,
    requestTimeoutMs: config.requestTimeoutMs,
    streamDrainTimeoutMs: config.streamDrainTimeoutMs ?? DEFAULT_STREAM_DRAIN_TIMEOUT_MS,
    defaultTemperature: config.defaultTemperature ?? DEFAULT_TEMPERATURE,
    systemFingerprint: config.systemFingerprint ?? `fp_${fingerprint.slice(0, 10)}`,
    modelCreated: config.modelCreated ?? Math.floor(Date.now() / 1000),
    ownedBy: config.ownedBy ?? 'llamacpp',
  };
}
