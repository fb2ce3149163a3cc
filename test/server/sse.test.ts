import { once } from 'node:events';
import Fastify from 'fastify';
import t from 'tap';
import { type AbortCause, SseStream, watchDisconnect } from '../../src/server/sse.ts';
import { sseEvents } from './sse-events.ts';

/**
 * A route that streams `count` events of `size` bytes, then [DONE], unless the stream is aborted. `handled` resolves
 * with the route's stream once the route is done with it (its loop saw it closed, or sent everything, and ended it).
 */
function streamingApp(count: number, size: number, drainTimeoutMs: number) {
  const app = Fastify();
  const aborts: AbortCause[] = [];
  let sent = 0;
  let handledResolve: (sse: SseStream) => void = () => {};
  const handled = new Promise<SseStream>((resolve) => {
    handledResolve = resolve;
  });
  app.get('/events', async (_request, reply) => {
    reply.hijack();
    const sse = new SseStream(reply.raw, { drainTimeoutMs, onAbort: (cause) => aborts.push(cause) });
    sse.open();
    for (let i = 0; i < count && !sse.closed; i++) {
      sse.send({ i, pad: 'x'.repeat(size) });
      sent++;
      // Yield so the stalled-client timer and 'close' events can fire between writes.
      await new Promise((r) => setTimeout(r, 1));
    }
    sse.end();
    handledResolve(sse);
    return reply;
  });
  return { app, aborts, sent: () => sent, handled };
}

t.test('events are `data: <json>` blocks ending with [DONE], with SSE headers', async (t) => {
  const { app, aborts } = streamingApp(3, 4, 1000);
  t.teardown(() => app.close());
  const res = await app.inject({ method: 'GET', url: '/events' });
  t.equal(res.statusCode, 200);
  t.match(res.headers['content-type'], /^text\/event-stream/);
  t.equal(res.headers['cache-control'], 'no-cache');
  t.same(sseEvents(res.body), [{ i: 0, pad: 'xxxx' }, { i: 1, pad: 'xxxx' }, { i: 2, pad: 'xxxx' }, '[DONE]']);
  t.match(res.body, /^data: \{"i":0,"pad":"xxxx"\}\n\ndata:/);
  t.same(aborts, []);
});

t.test('named events (Anthropic, the Responses API): `event: <name>` before the data, no [DONE]', async (t) => {
  const app = Fastify();
  t.teardown(() => app.close());
  app.get('/named', async (_request, reply) => {
    reply.hijack();
    const sse = new SseStream(reply.raw, { drainTimeoutMs: 1000, onAbort: () => {} });
    sse.send({ type: 'message_start' }, 'message_start');
    sse.send({ type: 'message_stop' }, 'message_stop');
    sse.end(false);
    return reply;
  });
  const res = await app.inject({ method: 'GET', url: '/named' });
  t.equal(
    res.body,
    'event: message_start\ndata: {"type":"message_start"}\n\nevent: message_stop\ndata: {"type":"message_stop"}\n\n',
  );
});

t.test('a client that stops reading is aborted as stalled after the drain timeout', async (t) => {
  const { app, aborts, sent } = streamingApp(10_000, 1000, 50);
  t.teardown(() => app.close());
  const res = await app.inject({ method: 'GET', url: '/events', payloadAsStream: true });
  const stream = res.stream();
  stream.on('error', () => {});
  // Never read: writes past the buffer's high-water mark report backpressure and never drain.
  while (aborts.length === 0) await new Promise((r) => setTimeout(r, 10));
  t.same(aborts, ['stalled']);
  t.ok(sent() < 10_000, `stopped after ${sent()} events`);
  t.ok(res.raw.res.destroyed, 'the response was destroyed');
});

t.test('a client that reads slowly but keeps up is never aborted', async (t) => {
  const { app, aborts } = streamingApp(200, 500, 200);
  t.teardown(() => app.close());
  const res = await app.inject({ method: 'GET', url: '/events', payloadAsStream: true });
  let body = '';
  for await (const chunk of res.stream()) body += String(chunk);
  t.equal(sseEvents(body).length, 201);
  t.same(aborts, []);
});

t.test('a closed connection aborts the stream once', async (t) => {
  // A drain deadline shorter than the 10,000 writes would take: a stream that went on writing after the close would
  // be aborted again, as stalled, before its route was done with it.
  const { app, aborts, sent, handled } = streamingApp(10_000, 10, 200);
  t.teardown(() => app.close());
  const res = await app.inject({ method: 'GET', url: '/events', payloadAsStream: true });
  res.stream().on('error', () => {});
  res.stream().resume();
  res.raw.res.destroy();
  await once(res.raw.res, 'close');
  // The route's loop sees the stream closed and ends it: the last thing that could abort it again.
  const sse = await handled;
  t.same(aborts, ['closed']);
  t.equal(sse.abortCause, 'closed', 'the stream keeps its first cause');
  t.ok(sse.closed);
  t.ok(sent() < 10_000, `the route stopped writing (after ${sent()} events)`);
});

t.test('watchDisconnect on a response whose client already left tells at once (in a microtask)', async (t) => {
  const { createServer } = await import('node:http');
  const seen: string[] = [];
  let told: () => void = () => {};
  const done = new Promise<void>((resolve) => {
    told = resolve;
  });
  const server = createServer((_req, res) => {
    // The client aborts while the request is "being prepared"; only then is the disconnect watched.
    res.once('close', () => {
      const unwatchLate = watchDisconnect(res, () => seen.push('late watcher'));
      const unwatchCancelled = watchDisconnect(res, () => seen.push('unwatched'));
      unwatchCancelled();
      t.same(seen, [], 'not called synchronously');
      queueMicrotask(() => {
        unwatchLate();
        told();
      });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => server.close());
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  const ac = new AbortController();
  const request = fetch(`http://127.0.0.1:${port}/`, { signal: ac.signal }).catch(() => undefined);
  setTimeout(() => ac.abort(), 50);
  await request;
  await done;
  t.same(seen, ['late watcher'], 'the late watcher is told; the one unwatched first is not');
});

t.test('many watchers on one response (n choices, several prompts) are no leak for Node to warn of', async (t) => {
  const { createServer } = await import('node:http');
  const warnings: string[] = [];
  const onWarning = (w: Error) => warnings.push(w.name);
  process.on('warning', onWarning);
  t.teardown(() => process.off('warning', onWarning));
  const server = createServer((_req, res) => {
    const before = res.getMaxListeners();
    const unwatch = Array.from({ length: 40 }, () => watchDisconnect(res, () => {}));
    for (const u of unwatch) {
      u();
      u(); // twice: once counts
    }
    res.end(String(res.getMaxListeners() - before));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => server.close());
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  t.equal(await (await fetch(`http://127.0.0.1:${port}/`)).text(), '0', 'the limit is back where it was');
  // Node emits the warning on the next tick.
  await new Promise((r) => setImmediate(r));
  t.same(warnings, []);
});
