// The one place the server is wired: the HTTP app over late-bound engine parts, the metrics that observe the
// scheduler and the responses, the live view's source. `npm start` assembles it before the model loads (so
// /health answers 503 meanwhile) and attaches the engine once loaded; tests attach at once.
import { appendFileSync } from 'node:fs';
import { basename } from 'node:path';
import type { FastifyInstance } from 'fastify';
import type { ChatTemplates, Device, Embedder, Model } from '../engine/index.ts';
import { LiveStats } from '../metrics/live-stats.ts';
import { ServerMetrics } from '../metrics/server-metrics.ts';
import type { Decoder } from '../scheduler/decoder.ts';
import { Scheduler } from '../scheduler/scheduler.ts';
import type { SchedulerObserver, SchedulerOptions } from '../scheduler/types.ts';
import { type BuildAppOptions, buildApp } from '../server/app.ts';
import type { ServedModel, ServedScheduler, ServerOptions } from '../server/options.ts';
import { StatsSource } from '../server/stats-source.ts';
import { LateEngine } from './late-engine.ts';
import { IdleSleeper, type SleepActions } from './sleeper.ts';

export interface AssembleOptions {
  /** The model file (its name is the default model id until the model has loaded). */
  path: string;
  config: ServerOptions;
  app?: BuildAppOptions;
  scheduler?: SchedulerOptions;
  /** KV cells in the pool, for the metrics and the live view. */
  kvCellsTotal: number;
  devices?: () => readonly Device[];
  /** --step-trace: a JSON line per step and per prompt-cache event appended to this file, for profiling. */
  stepTrace?: string;
  /** --sleep-idle-seconds: routes that need the model wake it (enableSleep() starts the idle timer). */
  sleeps?: boolean;
  /** Wrap what the routes see of the scheduler or the model (tests inject faults this way). */
  wrapScheduler?: (real: ServedScheduler) => ServedScheduler;
  wrapModel?: (real: ServedModel) => ServedModel;
}

/** What attach() binds: a loaded model, its chat layer and a decoder over it. */
export interface EngineParts {
  model: Model;
  chat: ChatTemplates;
  decoder: Decoder;
  /** KV cells holding tokens (the decoder's own count); default: the sum of the slots' cached prefixes. */
  kvCellsUsed?: () => number;
  /** Host memory the slots' sliding-window checkpoints hold (default 0). */
  checkpointBytes?: () => number;
}

export interface AssembledServer {
  app: FastifyInstance;
  metrics: ServerMetrics;
  live: LiveStats;
  /** The engine parts, once attached. */
  readonly engine: LateEngine;
  /** With `sleeps`: starts counting idle time, once the model is loaded (the routes wake it through it). */
  enableSleep(actions: SleepActions): void;
  /** Binds the loaded engine and starts the scheduler; the app answers generation routes after markReady(). */
  attach(parts: EngineParts): Scheduler;
  /** With config.embeddings: binds the embedding model and its context instead (no scheduler, no chat layer). */
  attachEmbedder(parts: { model: Model; embedder: Embedder }): void;
}

export function assembleServer(o: AssembleOptions): AssembledServer {
  const late = new LateEngine(o.path);
  const live = new LiveStats();
  let kvCellsUsed: () => number = () => late.scheduler?.snapshot().reduce((n, s) => n + s.cachedTokens, 0) ?? 0;
  let checkpointBytes: () => number = () => 0;
  const metrics = new ServerMetrics(
    {
      busySlots: () => late.scheduler?.busySlots ?? 0,
      queueLength: () => late.scheduler?.queueLength ?? 0,
      kvCellsUsed: () => kvCellsUsed(),
      kvCellsRunning: () => late.scheduler?.runningKvTokens ?? 0,
      kvCellsTotal: () => o.kvCellsTotal,
      promptCache: () => late.scheduler?.promptCacheStats() ?? { bytes: 0, entries: 0 },
      checkpointBytes: () => checkpointBytes(),
    },
    { listener: live },
  );
  const sleeper = new IdleSleeper();
  const sleepControl = {
    get sleeping() {
      return sleeper.sleeping;
    },
    hold: () => sleeper.hold(),
  };
  const aliases = [...(o.config.aliases ?? [])].sort();
  const stats = new StatsSource({
    modelId: aliases[0] ?? basename(o.path),
    slots: o.config.slots,
    ctxPerSlot: o.config.ctxPerSlot,
    live,
    scheduler: () => late.scheduler,
    model: () => late.model?.info,
    kv: () => ({ cellsUsed: kvCellsUsed(), cellsTotal: o.kvCellsTotal }),
    devices: o.devices ?? (() => []),
  });
  const app = buildApp(
    {
      model: o.wrapModel ? o.wrapModel(late.servedModel) : late.servedModel,
      chat: late.servedChat,
      scheduler: o.wrapScheduler ? o.wrapScheduler(late.servedScheduler) : late.servedScheduler,
      embedder: late.servedEmbedder,
      config: o.config,
      metrics,
      stats,
      ...(o.sleeps === true ? { sleep: sleepControl } : {}),
    },
    o.app,
  );
  return {
    app,
    metrics,
    live,
    engine: late,
    enableSleep(actions) {
      sleeper.enable(actions);
    },
    attach(parts) {
      late.model = parts.model;
      late.chat = parts.chat;
      late.decoder = parts.decoder;
      if (parts.kvCellsUsed) kvCellsUsed = parts.kvCellsUsed;
      if (parts.checkpointBytes) checkpointBytes = parts.checkpointBytes;
      const observer = o.stepTrace ? tracing(metrics, o.stepTrace) : metrics;
      late.scheduler = new Scheduler(parts.decoder, o.scheduler ?? {}, observer);
      return late.scheduler;
    },
    attachEmbedder(parts) {
      late.model = parts.model;
      late.embedder = parts.embedder;
    },
  };
}

/**
 * The metrics' observer, also writing each step (its duration, llama_decode's share, the batch's make-up, busy slots)
 * and each prompt-cache event as a JSON line with a timestamp (ms, this process's clock). Synchronous appends: a few
 * per step, tiny against a step.
 */
function tracing(inner: SchedulerObserver, file: string): SchedulerObserver {
  const write = (record: object) => appendFileSync(file, `${JSON.stringify({ t: performance.now(), ...record })}\n`);
  return {
    onStep: (s) => {
      write({ step: s });
      inner.onStep?.(s);
    },
    onRequestEnd: (s) => {
      const { id, reason, promptTokens, cachedTokens, queuedAt, startedAt, firstTokenAt, endedAt, timeline } = s;
      write({ end: { id, reason, promptTokens, cachedTokens, queuedAt, startedAt, firstTokenAt, endedAt, timeline } });
      inner.onRequestEnd?.(s);
    },
    onRejected: (cause) => inner.onRejected?.(cause),
    onPreempted: (p) => {
      write({ preempted: p });
      inner.onPreempted?.(p);
    },
    onPromptCache: (e) => {
      write({ cache: e });
      inner.onPromptCache?.(e);
    },
  };
}
