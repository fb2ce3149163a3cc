// A real app over the real engine and scheduler (tiny model, 2 slots), for app.inject() tests.

import type { FastifyInstance, LightMyRequestResponse } from 'fastify';
import type { Test } from 'tap';
import { BatchDecoder, type ChatTemplateOptions, ChatTemplates, Model } from '../../src/engine/index.ts';
import { assembleServer } from '../../src/entry/assemble.ts';
import { parseServeConfig, slotContext } from '../../src/entry/config/index.ts';
import { chatOptionsOf, decoderOptionsOf, poolLayout, schedulerOptionsOf } from '../../src/entry/engine-options.ts';
import { readServeInputs } from '../../src/entry/inputs.ts';
import { serverOptionsOf } from '../../src/entry/server-options.ts';
import type { Scheduler } from '../../src/scheduler/scheduler.ts';
import type { RequestSummary, SchedulerOptions } from '../../src/scheduler/types.ts';
import type { BuildAppOptions } from '../../src/server/app.ts';
import type { ServedModel, ServedScheduler, ServerOptions } from '../../src/server/options.ts';
import { StepLog } from '../helpers/step-log.ts';

export { sseEvents } from './sse-events.ts';

export interface Harness {
  app: FastifyInstance;
  scheduler: Scheduler;
  decoder: BatchDecoder;
  /** The decoder's steps as the scheduler ran them, and its own slot states (test/helpers/step-log.ts). */
  steps: StepLog;
  /** Every request's summary, in the order they ended (the real scheduler's `done`, recorded). */
  ended: RequestSummary[];
  /** Resolves with the next summaries once `n` requests in total have ended. */
  endedCount(n: number): Promise<RequestSummary[]>;
  /** Resolves once `n` requests in total have got a slot, with the slots they got in order. */
  startedCount(n: number): Promise<number[]>;
}

export interface HarnessOptions {
  /**
   * Build everything from these `npm start` flags (the model's -m is added), exactly as serve() does: the KV pool's
   * layout, the decoder's and the scheduler's options (src/entry/engine-options.ts) and the server config. Then
   * slots, ctxPerSlot, config and scheduler below are not used.
   */
  flags?: string[];
  config?: Partial<ServerOptions>;
  app?: BuildAppOptions;
  scheduler?: SchedulerOptions;
  slots?: number;
  ctxPerSlot?: number;
  /** Wraps the scheduler the app sees (e.g. to inject a fault); the real one stays underneath. */
  wrap?: (real: ServedScheduler) => ServedScheduler;
  /** The chat layer's options (template, jinja, reasoning). */
  chat?: ChatTemplateOptions;
  /** Wraps the model the app sees (the decoder keeps the real one). */
  wrapModel?: (real: ServedModel) => ServedModel;
  /** Runs on the app before it is used (hooks can be added only until the first request). */
  setup?: (app: FastifyInstance) => void;
}

export async function makeHarness(t: Test, model: Model, options: HarnessOptions = {}): Promise<Harness> {
  const built = options.flags ? await fromFlags(model, options.flags) : null;
  const slots = options.slots ?? 2;
  const ctxPerSlot = options.ctxPerSlot ?? 256;
  const ended: RequestSummary[] = [];
  const waiters: Array<{ n: number; resolve: (s: RequestSummary[]) => void }> = [];
  const started: number[] = [];
  const startWaiters: Array<{ n: number; resolve: (s: number[]) => void }> = [];
  // Every request's start and summary, recorded as the real scheduler reports them.
  const recording = (real: ServedScheduler): ServedScheduler => ({
    submit(request, given) {
      const handlers = {
        ...given,
        onStart(info: { slot: number; reusedTokens: number }) {
          started.push(info.slot);
          for (const w of startWaiters.splice(0)) {
            if (started.length >= w.n) w.resolve([...started]);
            else startWaiters.push(w);
          }
          given.onStart?.(info);
        },
      };
      const handle = real.submit(request, handlers);
      void handle.done.then((s) => {
        ended.push(s);
        for (const w of waiters.splice(0)) {
          if (ended.length >= w.n) w.resolve([...ended]);
          else waiters.push(w);
        }
      });
      return handle;
    },
    snapshot: () => real.snapshot(),
    slotAction: (slot, action, file) => real.slotAction(slot, action, file),
  });
  const server = assembleServer({
    path: model.info.path,
    config: built?.config ?? { ctxPerSlot, slots, ...options.config },
    app: options.app ?? { ready: true },
    ...(built ? { scheduler: built.scheduler } : options.scheduler ? { scheduler: options.scheduler } : {}),
    kvCellsTotal: built?.kvCells ?? ctxPerSlot * slots,
    wrapScheduler: (real) => (options.wrap ? options.wrap(recording(real)) : recording(real)),
    ...(options.wrapModel ? { wrapModel: options.wrapModel } : {}),
  });
  const decoder = new BatchDecoder(model, built?.decoder ?? { slots, ctxPerSlot });
  const chat = new ChatTemplates(model, options.chat ?? built?.chat ?? {});
  const steps = new StepLog(decoder);
  const scheduler = server.attach({ model, chat, decoder: steps, checkpointBytes: () => decoder.info.checkpointBytes });
  const { app } = server;
  options.setup?.(app);
  t.teardown(async () => {
    await app.close();
    await scheduler.close(0);
    decoder.dispose();
    built?.draft?.dispose();
    chat.dispose();
  });
  return {
    app,
    scheduler,
    decoder,
    steps,
    ended,
    endedCount: (n) =>
      ended.length >= n ? Promise.resolve([...ended]) : new Promise((resolve) => waiters.push({ n, resolve })),
    startedCount: (n) =>
      started.length >= n ? Promise.resolve([...started]) : new Promise((resolve) => startWaiters.push({ n, resolve })),
  };
}

/** What serve() builds from these flags (and -m): src/entry/serve.ts's own steps, without the --vram-budget planner. */
async function fromFlags(model: Model, flags: string[]) {
  const config = parseServeConfig(['-m', model.info.path, ...flags], {});
  const pool = poolLayout(config, slotContext(config, model.info.nCtxTrain));
  const inputs = await readServeInputs(config);
  // -md: the draft model, loaded as serve() loads it; freed after the decoder.
  const draft = config.draftModel !== undefined ? await Model.load(config.draftModel) : undefined;
  return {
    config: serverOptionsOf(config, inputs, { ctxPerSlot: pool.ctxPerSlot, buildInfo: 'test' }),
    decoder: decoderOptionsOf(config, pool, draft),
    draft,
    scheduler: schedulerOptionsOf(config),
    chat: chatOptionsOf(config, inputs.chatTemplate),
    kvCells: pool.kvCells,
  };
}

export function errorOf(res: LightMyRequestResponse): {
  message: string;
  type: string;
  param: string | null;
  code: string | null;
  [k: string]: unknown;
} {
  return (res.json() as { error: { message: string; type: string; param: string | null; code: string | null } }).error;
}

export const USER_HI = [{ role: 'user', content: 'hi' }];
/** Bans end-of-generation (token 2 in the llama SPM vocabulary) so lengths are exact. */
export const NO_EOS = { '2': -100 };
/** " Hello" in the llama SPM vocabulary; biased, greedy decoding repeats it. */
export const HELLO = 15043;
