// Every limit of src/server/limits.ts, each shown to hold: the socket-level ones on a listening server (a
// slow-loris client is dropped while another is served, idle keep-alive connections close, the connection cap
// refuses the extra one), the request-level ones through the real routes (a 400 naming the field and the flag).
import { connect, type Socket } from 'node:net';
import type { FastifyInstance } from 'fastify';
import t, { type Test } from 'tap';
import { buildApp } from '../../src/server/app.ts';
import {
  checkConnectionLimits,
  checkJsonDepth,
  DEFAULT_CONNECTION_LIMITS,
  DEFAULT_REQUEST_LIMITS,
  timeoutCheckIntervalMs,
} from '../../src/server/limits.ts';
import type { ServerOptions } from '../../src/server/options.ts';
import { loadModel } from '../helpers/models.ts';
import { errorOf, makeHarness, USER_HI } from './harness.ts';
import { stubDeps } from './stub-deps.ts';

async function listening(t: Test, config: Partial<ServerOptions>): Promise<{ app: FastifyInstance; port: number }> {
  const app = buildApp(stubDeps({ config: { ctxPerSlot: 256, slots: 2, ...config } }), { ready: true });
  t.teardown(() => app.close());
  await app.listen({ host: '127.0.0.1', port: 0 });
  const address = app.server.address();
  return { app, port: typeof address === 'object' && address !== null ? address.port : 0 };
}

/** A raw socket and everything it received, with its close as a promise. */
function rawClient(port: number): { socket: Socket; received: () => string; closed: Promise<number> } {
  const socket = connect(port, '127.0.0.1');
  let data = '';
  socket.on('data', (c: Buffer) => {
    data += c.toString();
  });
  socket.on('error', () => {});
  const t0 = performance.now();
  const closed = new Promise<number>((resolve) => socket.once('close', () => resolve(performance.now() - t0)));
  return { socket, received: () => data, closed };
}

/** The OpenAI error in a raw HTTP response. */
function rawError(raw: string): { status: number; error: { type: string; code: string | null; message: string } } {
  const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(raw)?.[1]);
  const body = raw.slice(raw.indexOf('\r\n\r\n') + 4);
  return {
    status,
    error: (JSON.parse(body) as { error: { type: string; code: string | null; message: string } }).error,
  };
}

t.test('the limits are checked and their defaults are what the docs say', async (t) => {
  t.same(DEFAULT_CONNECTION_LIMITS, {
    headersTimeoutMs: 30_000,
    requestReadTimeoutMs: 60_000,
    keepAliveTimeoutMs: 5_000,
    maxRequestsPerSocket: 100,
    maxConnections: 1024,
  });
  t.equal(DEFAULT_REQUEST_LIMITS.maxTools, 128, "OpenAI's");
  t.throws(
    () => checkConnectionLimits({ ...DEFAULT_CONNECTION_LIMITS, headersTimeoutMs: 10, requestReadTimeoutMs: 5 }),
    /headersTimeoutMs \(10\) must be <= requestReadTimeoutMs \(5\)/,
  );
  t.throws(() => checkConnectionLimits({ ...DEFAULT_CONNECTION_LIMITS, keepAliveTimeoutMs: 0 }), /at least 1 ms/);
  t.throws(() => checkConnectionLimits({ ...DEFAULT_CONNECTION_LIMITS, maxConnections: -1 }), /maxConnections/);
  t.equal(timeoutCheckIntervalMs(DEFAULT_CONNECTION_LIMITS), 1000, 'a 30 s timeout is checked every second');
  t.equal(timeoutCheckIntervalMs({ ...DEFAULT_CONNECTION_LIMITS, headersTimeoutMs: 200 }), 50);
  t.throws(() => buildApp(stubDeps({ config: { ctxPerSlot: 256, slots: 2, limits: { maxTools: 0 } } })), /maxTools/);
});

t.test('JSON depth is measured without recursion', async (t) => {
  checkJsonDepth({ a: [1, { b: 2 }] }, 3);
  t.throws(() => checkJsonDepth({ a: [1, { b: 2 }] }, 2), /more than 2 deep/);
  let deep: unknown = 1;
  for (let i = 0; i < 200_000; i++) deep = [deep];
  t.throws(() => checkJsonDepth(deep, 64), /more than 64 deep/, 'a depth no recursive walk survives');
});

t.test('a slow-loris client is dropped with a 408 while another is served', async (t) => {
  // Timeouts long enough that the other client's own request is never cut by them on a loaded machine.
  const { port } = await listening(t, { connections: { headersTimeoutMs: 1500, requestReadTimeoutMs: 3000 } });
  const slow = rawClient(port);
  slow.socket.write('GET /health HTTP/1.1\r\nHost: x\r\n');
  // A header byte every 50 ms: never idle, never done.
  const drip = setInterval(() => slow.socket.writable && slow.socket.write('X'), 50);
  t.teardown(() => clearInterval(drip));
  const served = await fetch(`http://127.0.0.1:${port}/health`);
  t.equal(served.status, 200, 'another client is served meanwhile');
  const ms = await slow.closed;
  clearInterval(drip);
  t.ok(ms >= 1500, `dropped after ${ms.toFixed(0)} ms, not before the headers timeout`);
  t.ok(ms < 10_000, "by the configured timeout, not Node's default of 60 s");
  const { status, error } = rawError(slow.received());
  t.equal(status, 408);
  t.match(error, { type: 'timeout_error', code: 'request_read_timeout' });
});

t.test('a body sent too slowly is dropped after the body timeout', async (t) => {
  const { port } = await listening(t, { connections: { headersTimeoutMs: 200, requestReadTimeoutMs: 400 } });
  const slow = rawClient(port);
  slow.socket.write(
    'POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{',
  );
  const drip = setInterval(() => slow.socket.writable && slow.socket.write(' '), 50);
  t.teardown(() => clearInterval(drip));
  const ms = await slow.closed;
  clearInterval(drip);
  t.ok(ms >= 400 && ms < 5000, `dropped after ${ms.toFixed(0)} ms: the body timeout, not Node's 300 s default`);
  t.equal(rawError(slow.received()).status, 408);
});

t.test('malformed requests and oversize headers get OpenAI-shaped errors, then the connection closes', async (t) => {
  const { port } = await listening(t, {});
  const garbage = rawClient(port);
  garbage.socket.write('THIS IS NOT HTTP\r\n\r\n');
  await garbage.closed;
  t.match(rawError(garbage.received()), { status: 400, error: { type: 'invalid_request_error', code: 'bad_request' } });
  const big = rawClient(port);
  big.socket.write(`GET /health HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`);
  await big.closed;
  t.match(rawError(big.received()), { status: 431, error: { code: 'headers_too_large' } });
});

t.test(
  'keep-alive: an idle connection closes after the timeout; a connection carries at most N requests',
  async (t) => {
    const { port } = await listening(t, { connections: { keepAliveTimeoutMs: 200, maxRequestsPerSocket: 2 } });
    const idle = rawClient(port);
    idle.socket.write('GET /health HTTP/1.1\r\nHost: x\r\n\r\n');
    const ms = await idle.closed;
    t.match(idle.received(), /^HTTP\/1\.1 200/);
    t.ok(ms >= 200, `closed ${ms.toFixed(0)} ms after the answer, not before the keep-alive timeout`);

    const busy = rawClient(port);
    busy.socket.write('GET /health HTTP/1.1\r\nHost: x\r\n\r\n');
    await new Promise<void>((resolve) => busy.socket.once('data', () => resolve()));
    busy.socket.write('GET /health HTTP/1.1\r\nHost: x\r\n\r\n');
    await busy.closed;
    const answers = busy.received().split('HTTP/1.1 ').slice(1);
    t.equal(answers.length, 2);
    t.match(answers[1], /connection: close/i, 'the second answer closes the connection');
  },
);

t.test('the connection cap: the extra connection is closed at once, the others are served', async (t) => {
  const { app, port } = await listening(t, { connections: { maxConnections: 2 } });
  // The server's side of each accepted connection, to know when it has let one go.
  const accepted: Promise<void>[] = [];
  app.server.on('connection', (s: Socket) => accepted.push(new Promise((resolve) => s.once('close', () => resolve()))));
  const held = [rawClient(port), rawClient(port)];
  for (const c of held) c.socket.write('GET /health HTTP/1.1\r\nHost: x\r\n\r\n');
  await Promise.all(held.map((c) => new Promise<void>((resolve) => c.socket.once('data', () => resolve()))));
  const extra = rawClient(port);
  extra.socket.write('GET /health HTTP/1.1\r\nHost: x\r\n\r\n');
  await extra.closed;
  t.equal(extra.received(), '', 'no answer on the connection over the cap');
  held[0]?.socket.write('GET /health HTTP/1.1\r\nHost: x\r\n\r\n');
  await new Promise<void>((resolve) => held[0]?.socket.once('data', () => resolve()));
  t.match(held[0]?.received() ?? '', /HTTP\/1\.1 200[\s\S]*HTTP\/1\.1 200/, 'the connections within it go on');
  for (const c of held) c.socket.destroy();
  await Promise.all(accepted);
  const after = await fetch(`http://127.0.0.1:${port}/health`);
  t.equal(after.status, 200, 'once one closes, a new connection is served');
});

const model = await loadModel('tiny');
t.teardown(() => model.dispose());

t.test('request limits: a 400 that names the field and the flag', async (t) => {
  const limits = {
    maxMessages: 3,
    maxStopStrings: 2,
    maxStopLength: 8,
    maxLogitBias: 4,
    maxTools: 2,
    maxSchemaBytes: 1024,
    maxGrammarBytes: 1024,
    maxJsonDepth: 16,
  };
  const { app } = await makeHarness(t, model, { config: { limits }, chat: { template: 'chatml' } });
  const post = (url: string, payload: object) => app.inject({ method: 'POST', url, payload });
  const chat = (extra: object) => post('/v1/chat/completions', { messages: USER_HI, max_tokens: 2, ...extra });
  const tool = (name: string, parameters: object = { type: 'object' }) => ({
    type: 'function',
    function: { name, parameters },
  });
  const bigSchema = {
    type: 'object',
    properties: Object.fromEntries(Array.from({ length: 80 }, (_, i) => [`p${i}`, { type: 'string' }])),
  };
  const cases: Array<[string, Promise<Awaited<ReturnType<typeof post>>>, string, RegExp]> = [
    [
      'messages',
      chat({ messages: Array(4).fill(USER_HI[0]) }),
      'messages',
      /has 4 messages.*at most 3 \(--max-messages\)/,
    ],
    ['stop count', chat({ stop: ['a', 'b', 'c'] }), 'stop', /at most 2 \(--max-stop-strings\)/],
    ['stop length', chat({ stop: ['x'.repeat(9)] }), 'stop', /9 characters.*at most 8 \(--max-stop-length\)/],
    [
      'logit_bias entries',
      chat({ logit_bias: { 1: 1, 2: 1, 3: 1, 4: 1, 5: 1 } }),
      'logit_bias',
      /5 token biases.*at most 4 \(--max-logit-bias\)/,
    ],
    [
      'logit_bias text keys count their tokens',
      chat({ logit_bias: [['the quick brown fox jumps', 1]] }),
      'logit_bias',
      /token biases.*at most 4/,
    ],
    ['tools', chat({ tools: [tool('a'), tool('b'), tool('c')] }), 'tools', /3 tools.*at most 2 \(--max-tools\)/],
    [
      "a tool's schema",
      chat({ tools: [tool('a', bigSchema)] }),
      'tools[0].function.parameters',
      /bytes; this server takes at most 1024 \(--max-schema-bytes\)/,
    ],
    [
      'response_format',
      chat({ response_format: { type: 'json_schema', json_schema: { name: 'x', schema: bigSchema } } }),
      'response_format',
      /--max-schema-bytes/,
    ],
    [
      'json_schema (completions)',
      post('/v1/completions', { prompt: 'hi', json_schema: bigSchema }),
      'json_schema',
      /--max-schema-bytes/,
    ],
    [
      'grammar',
      post('/completion', { prompt: 'hi', grammar: `root ::= ${Array(300).fill('"ab"').join(' | ')}` }),
      'grammar',
      /at most 1024 \(--max-grammar-bytes\)/,
    ],
  ];
  for (const [what, pending, param, message] of cases) {
    const res = await pending;
    t.equal(res.statusCode, 400, what);
    t.match(errorOf(res), { param, code: 'limit_exceeded', message }, what);
  }
  // Within the limits, the same requests are served.
  t.equal((await chat({ messages: Array(3).fill(USER_HI[0]), stop: ['a', 'b'] })).statusCode, 200);
});

t.test('nesting past the depth limit is a 400, however deep (no stack overflow, no 500)', async (t) => {
  const { app } = await makeHarness(t, model);
  for (const depth of [65, 5000, 100_000]) {
    const payload = `{"messages":[{"role":"user","content":"hi"}],"chat_template_kwargs":{"x":${'['.repeat(depth)}${']'.repeat(depth)}}}`;
    const res = await app.inject({
      method: 'POST',
      url: '/v1/chat/completions',
      headers: { 'content-type': 'application/json' },
      payload,
    });
    t.equal(res.statusCode, 400, `depth ${depth}`);
    t.match(errorOf(res), { code: 'limit_exceeded', message: /more than 64 deep \(--max-json-depth\)/ });
  }
  const ok = await app.inject({
    method: 'POST',
    url: '/v1/chat/completions',
    payload: { messages: USER_HI, max_tokens: 2, chat_template_kwargs: { x: [[[[1]]]] } },
  });
  t.equal(ok.statusCode, 200, 'ordinary nesting is fine');
});
