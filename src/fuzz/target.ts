// The fuzzer's target: a built app answering through app.inject() (no sockets), over a real scheduler and
// decoder whose slots it inspects once the storm is over.
import type { FastifyInstance } from 'fastify';
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

export function appTarget(app: FastifyInstance, scheduler: InspectedScheduler, decoder: InspectedDecoder): FuzzTarget {
  return {
    async send(request: FuzzRequest): Promise<FuzzResponse> {
      const res = await app.inject({
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
