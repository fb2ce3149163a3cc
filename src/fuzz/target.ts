// The fuzzer's target: a built app answering through app.inject() (no sockets), over a real scheduler and
// decoder whose slots it inspects once the storm is over; and, when given, a second app started with --embeddings
// (an embedding model), for the requests drawn for an embedding server.
import type { FastifyInstance } from 'fastify';
import type { Embedder, Model } from '../engine/index.ts';
import { assembleServer } from '../entry/assemble.ts';
import type { FuzzResponse } from './invariants.ts';
import type { FuzzRequest } from './requests.ts';
import type { FuzzTarget } from './run.ts';

export interface InspectedScheduler {
  readonly busySlots: number;
  readonly queueLength: number;
  snapshot(): ReadonlyArray<{ state: string }>;
}

export interface InspectedDecoder {
  readonly slots: number;
  slotInfo(slot: number): { state: string };
}

export function appTarget(
  app: FastifyInstance,
  scheduler: InspectedScheduler,
  decoder: InspectedDecoder,
  embeddingApp?: FastifyInstance,
): FuzzTarget {
  return {
    servers: embeddingApp === undefined ? ['generation'] : ['generation', 'embeddings'],
    async send(request: FuzzRequest): Promise<FuzzResponse> {
      const to = request.server === 'embeddings' ? embeddingApp : app;
      if (to === undefined) throw new Error('a request for an embedding server, and the target has none');
      const res = await to.inject({
        method: request.method,
        url: request.url,
        headers: request.headers,
        ...(request.payload.length > 0 ? { payload: request.payload } : {}),
      });
      return { status: res.statusCode, headers: res.headers, body: res.body };
    },
    // The decoder is read only once the scheduler is idle: no step runs then.
    slotStates: () => ({
      scheduler: scheduler.snapshot().map((s) => s.state),
      decoder: Array.from({ length: decoder.slots }, (_, i) => decoder.slotInfo(i).state),
    }),
    async settled(ms: number): Promise<void> {
      const until = performance.now() + ms;
      while ((scheduler.busySlots > 0 || scheduler.queueLength > 0) && performance.now() < until)
        await new Promise((r) => setTimeout(r, 5));
      // The step that ended the last request has returned by now; let its continuation run.
      await new Promise((r) => setImmediate(r));
    },
  };
}

/** An embedding server as `npm start -- --embeddings` runs one, over `model` (an embedding model such as tiny-bert). */
export function embeddingServer(
  model: Model,
  embedder: Embedder,
  options: { ctxPerSlot: number; slots: number; bodyLimitBytes?: number },
): FastifyInstance {
  const server = assembleServer({
    path: model.info.path,
    config: {
      ctxPerSlot: options.ctxPerSlot,
      slots: options.slots,
      embeddings: true,
      ...(options.bodyLimitBytes !== undefined ? { bodyLimitBytes: options.bodyLimitBytes } : {}),
    },
    app: { ready: true },
    kvCellsTotal: 0,
  });
  server.attachEmbedder({ model, embedder });
  return server.app;
}
