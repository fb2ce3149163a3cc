// GET /v1/stats and /v1/stats/stream against a real listening app: frames arrive as SSE at the interval, the
// API key guards them, and a stream's timer stops when its client goes or the server closes.
import type { AddressInfo } from 'node:net';
import Fastify from 'fastify';
import t from 'tap';
import { buildApp } from '../../../src/server/app.ts';
import { statsRoutes } from '../../../src/server/routes/stats.ts';
import type { StatsFrame } from '../../../src/server/stats-frame.ts';
import { stubDeps } from '../stub-deps.ts';

const KEY = 'sk-stats';
const INTERVAL_MS = 20;

/** Timers keeping the process alive (a stream's frame interval is one). */
const timers = (): number => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;

/** A source whose frames count themselves. */
function countingSource() {
  let calls = 0;
  return {
    get calls() {
      return calls;
    },
    frame(state: StatsFrame['state']) {
      calls++;
      return { n: calls, state } as unknown as StatsFrame;
    },
  };
}

async function listening(apiKeys: string[] = []) {
  const source = countingSource();
  const app = buildApp(stubDeps({ config: { ctxPerSlot: 256, slots: 2, apiKeys }, stats: source }), {
    ready: true,
    webui: false,
  });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const url = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
  return { app, url, source };
}

/** Reads `data:` events from a fetch body until `want` have arrived; leaves the stream open. */
async function readFrames(res: Response, want: number): Promise<unknown[]> {
  const reader = (res.body as ReadableStream<Uint8Array>).getReader();
  const decoder = new TextDecoder();
  const frames: unknown[] = [];
  let buffer = '';
  while (frames.length < want) {
    const { done, value } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let end = buffer.indexOf('\n\n');
    while (end >= 0) {
      const event = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      if (event.startsWith('data: ')) frames.push(JSON.parse(event.slice(6)));
      end = buffer.indexOf('\n\n');
    }
  }
  reader.releaseLock();
  return frames;
}

async function until(what: string, check: () => boolean, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

t.test('GET /v1/stats: one frame with the server state', async (t) => {
  const { app, url } = await listening();
  t.teardown(() => app.close());
  const res = await fetch(`${url}/v1/stats`);
  t.equal(res.status, 200);
  t.same(await res.json(), { n: 1, state: 'ok' });
});

t.test('the stream: a frame at once, then one per interval; its timer stops when the client goes', async (t) => {
  // The plugin alone, at a faster interval than the app's 1 Hz.
  const source = countingSource();
  // undici opens a spare connection when a fetch is aborted; don't wait for it to time out on close.
  const app = Fastify({ forceCloseConnections: true });
  await app.register(statsRoutes, { stats: source, state: () => 'ok', intervalMs: INTERVAL_MS });
  await app.listen({ host: '127.0.0.1', port: 0 });
  t.teardown(() => app.close());
  const url = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;

  const before = timers();
  const ac = new AbortController();
  const res = await fetch(`${url}/v1/stats/stream`, { signal: ac.signal });
  t.equal(res.status, 200);
  t.match(res.headers.get('content-type'), /^text\/event-stream/);
  t.equal(res.headers.get('cache-control'), 'no-cache');
  const frames = (await readFrames(res, 4)) as Array<{ n: number; state: string }>;
  t.same(
    frames.map((f) => f.n),
    [1, 2, 3, 4],
    'consecutive frames, nothing buffered or skipped',
  );
  t.ok(frames.every((f) => f.state === 'ok'));
  t.ok(app.statsStreams >= 1, 'the stream is counted as open');
  t.ok(timers() > before, 'the stream holds a timer');

  ac.abort();
  await until('the stream to close', () => app.statsStreams === 0);
  t.equal(timers(), before, 'its timer is gone');
  // Frames are numbered by the source's calls. A second stream's frames, one an interval over several intervals, are
  // the very next numbers: the first stream made no frame in that time.
  const after = source.calls;
  const again = new AbortController();
  const next = (await readFrames(await fetch(`${url}/v1/stats/stream`, { signal: again.signal }), 4)) as Array<{
    n: number;
  }>;
  t.same(
    next.map((f) => f.n),
    [after + 1, after + 2, after + 3, after + 4],
    'no frame is made once the client has gone',
  );
  again.abort();
  await until('the second stream to close', () => app.statsStreams === 0);
  t.equal(timers(), before, 'both timers are gone');
});

t.test('the API key guards both routes', async (t) => {
  const { app, url } = await listening([KEY]);
  t.teardown(() => app.close());
  for (const path of ['/v1/stats', '/v1/stats/stream']) {
    const res = await fetch(`${url}${path}`);
    t.equal(res.status, 401, path);
    t.equal(((await res.json()) as { error: { code: string } }).error.code, 'invalid_api_key');
  }
  t.equal(app.statsStreams, 0, 'a refused stream opens nothing');
  const ok = await fetch(`${url}/v1/stats/stream`, { headers: { authorization: `Bearer ${KEY}` } });
  t.equal(ok.status, 200);
  t.same(await readFrames(ok, 1), [{ n: 1, state: 'ok' }]);
  await ok.body?.cancel();
});

t.test('closing the server ends open streams instead of waiting for their clients', async (t) => {
  const { app, url } = await listening();
  const before = timers();
  const res = await fetch(`${url}/v1/stats/stream`);
  await readFrames(res, 1);
  t.equal(app.statsStreams, 1);
  t.equal(timers(), before + 1, 'the open stream holds its timer');
  await app.close();
  t.equal(app.statsStreams, 0);
  // The client sees the end of the stream ([DONE]) rather than a hang.
  const reader = (res.body as ReadableStream<Uint8Array>).getReader();
  let rest = '';
  for (let r = await reader.read(); !r.done; r = await reader.read()) rest += new TextDecoder().decode(r.value);
  t.match(rest, /data: \[DONE\]\n\n$/);
  // The stream's timer (one frame a second) is gone: it makes no frame after the close.
  t.equal(timers(), before, 'no timer left of the stream');
});

t.test('a frame that throws ends that stream, not the server', async (t) => {
  const app = buildApp(
    stubDeps({
      stats: {
        frame: () => {
          throw new Error('broken source');
        },
      },
    }),
    { ready: true, webui: false },
  );
  await app.listen({ host: '127.0.0.1', port: 0 });
  t.teardown(() => app.close());
  const url = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
  const res = await fetch(`${url}/v1/stats/stream`).catch((err: unknown) => err);
  if (res instanceof Response) await res.text().catch(() => '');
  await until('the stream to close', () => app.statsStreams === 0);
  const health = await fetch(`${url}/health`);
  t.equal(health.status, 200, 'still serving');
  const one = await fetch(`${url}/v1/stats`);
  t.equal(one.status, 500);
  t.equal(((await one.json()) as { error: { type: string } }).error.type, 'server_error');
});
