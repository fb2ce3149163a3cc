// GET /v1/stats (one frame) and GET /v1/stats/stream (a frame at once, then one a second, as server-sent
// events) for the web page's live view. Behind the API key like every route but /health. Each stream owns
// one timer, cleared when its client goes, when it stalls, or when the server closes.
import type { FastifyPluginAsync } from 'fastify';
import fp from 'fastify-plugin';
import { SseStream } from '../sse.ts';
import type { StatsSource } from '../stats-source.ts';
import type { ServerState } from './ops.ts';

export interface StatsRoutesOptions {
  stats: Pick<StatsSource, 'frame'>;
  state: () => ServerState;
  /** Milliseconds between frames. Default 1000. */
  intervalMs?: number;
  /** How long a frame may stay undrained before the stream is dropped. Default 10 s. */
  drainTimeoutMs?: number;
}

declare module 'fastify' {
  interface FastifyInstance {
    /** Stats streams open now (each holds one timer). */
    readonly statsStreams: number;
  }
}

interface OpenStream {
  sse: SseStream;
  stop(): void;
}

const plugin: FastifyPluginAsync<StatsRoutesOptions> = async (app, options) => {
  const intervalMs = options.intervalMs ?? 1000;
  const open = new Set<OpenStream>();
  app.decorate('statsStreams', { getter: () => open.size });

  app.get('/v1/stats', async () => options.stats.frame(options.state()));

  app.get('/v1/stats/stream', async (request, reply) => {
    let timer: NodeJS.Timeout | undefined;
    const stream: OpenStream = {
      sse: new SseStream(reply.raw, {
        drainTimeoutMs: options.drainTimeoutMs ?? 10_000,
        onAbort: () => stream.stop(),
      }),
      stop() {
        clearInterval(timer);
        open.delete(stream);
      },
    };
    const tick = (): void => {
      if (stream.sse.closed) return stream.stop();
      try {
        stream.sse.send(options.stats.frame(options.state()));
      } catch (err) {
        // A timer callback that throws would take the process down: end this stream instead.
        request.log.error({ err }, 'stats frame failed; ending the stream');
        stream.stop();
        reply.raw.destroy();
      }
    };
    reply.hijack();
    stream.sse.open(reply.getHeaders() as Record<string, string | number | string[]>);
    open.add(stream);
    timer = setInterval(tick, intervalMs);
    tick();
    return reply;
  });

  // Streams never end by themselves: end them, so closing the server does not wait for their clients.
  app.addHook('preClose', async () => {
    for (const stream of [...open]) {
      stream.stop();
      stream.sse.end();
    }
  });
};

/** Not encapsulated, so `statsStreams` is readable on the app. Register it once per app. */
export const statsRoutes = fp(plugin, { name: 'stats-routes' });
