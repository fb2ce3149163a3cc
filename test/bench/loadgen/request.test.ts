import { readFileSync } from 'node:fs';
import type { Test } from 'tap';
import t from 'tap';
import {
  type ChatRequest,
  chatCompletionBody,
  describeNetworkError,
  httpErrorMessage,
  sendChatRequest,
} from '../../../src/bench/loadgen/request.ts';
import { closedPort, type Script, startFakeServer } from './fake-server.ts';

const fixture = (name: string): Buffer => readFileSync(new URL(`fixtures/${name}`, import.meta.url));

const request = (url: string, extra: Partial<ChatRequest> = {}): ChatRequest => ({
  id: 3,
  rank: 1,
  url,
  apiKey: null,
  model: 'fake-model',
  prompt: 'Tell me a story.',
  maxTokens: 8,
  timeoutMs: 5000,
  ...extra,
});

/** Serves one script per request, in order. */
async function serve(t: Test, ...scripts: Script[]) {
  const server = await startFakeServer(
    (index) => scripts[index] ?? { kind: 'status', status: 500, body: '{}' },
    scripts.length,
  );
  t.teardown(() => server.close());
  return server;
}

t.test('the request: streaming chat completion with usage, temperature 0, Bearer key', async (t) => {
  const server = await serve(t, { kind: 'stream', ttftMs: 0, itlMs: 0, tokens: 2 });
  const record = await sendChatRequest(request(server.url, { apiKey: 'sk-test' }));
  t.ok(record.ok);
  const seen = server.seen[0];
  t.same(seen?.body, {
    model: 'fake-model',
    messages: [{ role: 'user', content: 'Tell me a story.' }],
    stream: true,
    stream_options: { include_usage: true },
    max_tokens: 8,
    temperature: 0,
  });
  t.equal(seen?.headers.authorization, 'Bearer sk-test');
  t.notOk(
    'model' in chatCompletionBody({ model: null, prompt: 'x', maxTokens: 1 }),
    'no model field when none is known',
  );
});

t.test('timings, usage and identity of a successful stream', async (t) => {
  const server = await serve(t, { kind: 'stream', ttftMs: 60, itlMs: 25, tokens: 4, promptTokens: 33 });
  const record = await sendChatRequest(request(server.url));
  t.match(record, {
    id: 3,
    rank: 1,
    ok: true,
    status: 200,
    errorKind: null,
    error: null,
    promptTokens: 33,
    outputTokens: 4,
    outputTokensFrom: 'usage',
    finishReason: 'length',
  });
  t.equal(record.chunkMs.length, 4);
  const ttft = (record.chunkMs[0] ?? 0) - record.sendMs;
  t.ok(ttft >= 58 && ttft < 300, `TTFT ${ttft.toFixed(1)} ms ~ 60`);
  // The server sleeps 25 ms before each later chunk, so chunk k cannot arrive before 60 + 25k ms; one chunk read late
  // makes the next gap look short, so the arrival times are judged against that schedule, not gap by gap.
  const arrivals = record.chunkMs.map((c) => c - record.sendMs);
  t.ok(
    arrivals.every((a, k) => a >= 58 + 25 * k && a < 300 + 250 * k),
    `arrivals ${arrivals.map((a) => a.toFixed(1)).join(', ')} ~ 60 + 25k`,
  );
  const span = (arrivals.at(-1) ?? 0) - (arrivals[0] ?? 0);
  t.ok(span >= 60, `chunks spread over ${span.toFixed(1)} ms (3 gaps of 25), each timed when it came`);
  t.ok(record.endMs >= (record.chunkMs.at(-1) ?? Infinity), 'ends after the last chunk');
});

t.test('the captured llama-server stream, written in odd pieces', async (t) => {
  const bytes = fixture('llama-server-chat-stream.txt');
  const pieces: Buffer[] = [];
  for (let k = 0; k < bytes.length; k += 97) pieces.push(bytes.subarray(k, k + 97)); // splits lines and UTF-8 sequences
  const server = await serve(t, { kind: 'raw', pieces, gapMs: 2 });
  const record = await sendChatRequest(request(server.url));
  t.match(record, { ok: true, promptTokens: 34, outputTokens: 6, outputTokensFrom: 'usage', finishReason: 'length' });
  t.equal(record.chunkMs.length, 6, 'the role-only chunk and the finish/usage chunks are not content');
});

t.test('the captured llama-server error stream: an in-stream error', async (t) => {
  const server = await serve(t, { kind: 'raw', pieces: [fixture('llama-server-chat-stream-error.txt')] });
  const record = await sendChatRequest(request(server.url));
  t.match(record, { ok: false, status: 200, errorKind: 'stream', outputTokens: 8, outputTokensFrom: 'chunks' });
  t.match(record.error, /peg-native format/);
});

t.test('HTTP errors: 429 and 500 with OpenAI error bodies', async (t) => {
  const server = await serve(
    t,
    {
      kind: 'status',
      status: 429,
      body: JSON.stringify({ error: { message: 'queue full', type: 'server_error' } }),
      headers: { 'retry-after': '1' },
    },
    { kind: 'status', status: 500, body: 'plain failure' },
  );
  const a = await sendChatRequest(request(server.url));
  t.match(a, { ok: false, status: 429, errorKind: 'http', error: 'HTTP 429: queue full', outputTokens: 0 });
  const b = await sendChatRequest(request(server.url));
  t.match(b, { ok: false, status: 500, errorKind: 'http', error: 'HTTP 500: plain failure' });
  t.equal(httpErrorMessage(404, ''), 'HTTP 404');
});

t.test('in-stream error after some tokens (our server format)', async (t) => {
  const server = await serve(t, { kind: 'stream', ttftMs: 0, itlMs: 1, tokens: 5, errorAfter: 2 });
  const record = await sendChatRequest(request(server.url));
  t.match(record, {
    ok: false,
    status: 200,
    errorKind: 'stream',
    error: 'decode failed (server_error)',
    outputTokens: 2,
  });
});

t.test('network errors: refused, and a connection broken mid-stream', async (t) => {
  const port = await closedPort();
  const refused = await sendChatRequest(request(`http://127.0.0.1:${port}`));
  t.match(refused, { ok: false, status: null, errorKind: 'network' });
  t.match(refused.error, /ECONNREFUSED/);

  const server = await serve(t, { kind: 'stream', ttftMs: 0, itlMs: 5, tokens: 5, destroyAfter: 3 });
  const broken = await sendChatRequest(request(server.url));
  t.match(broken, { ok: false, status: 200, errorKind: 'network', outputTokens: 3 });
  t.match(broken.error, /^stream broken/);
  t.equal(describeNetworkError('x'), 'x');
});

t.test('timeouts: before the headers and during the stream', async (t) => {
  // One chunk, then nothing for far longer than the timeout: the request ends with that one token.
  const oneThenSilence: Script = {
    kind: 'raw',
    pieces: ['data: {"choices":[{"index":0,"delta":{"content":"a"},"finish_reason":null}]}\n\n', ''],
    gapMs: 30_000,
  };
  const server = await serve(t, { kind: 'hang' }, oneThenSilence);
  const silent = await sendChatRequest(request(server.url, { timeoutMs: 150 }));
  t.match(silent, { ok: false, status: null, errorKind: 'timeout', error: 'no response within 0.15 s' });
  const slow = await sendChatRequest(request(server.url, { timeoutMs: 300 }));
  t.match(slow, { ok: false, status: 200, errorKind: 'timeout', outputTokens: 1 });
});

t.test('no usage: tokens counted from content chunks; no [DONE] but a finish_reason is fine', async (t) => {
  const server = await serve(t, { kind: 'stream', ttftMs: 0, itlMs: 1, tokens: 3, usage: false, done: false });
  const record = await sendChatRequest(request(server.url));
  t.match(record, {
    ok: true,
    outputTokens: 3,
    outputTokensFrom: 'chunks',
    promptTokens: null,
    finishReason: 'length',
  });
});

t.test('a stream cut short cleanly, and a response that is not a stream, are errors', async (t) => {
  const server = await serve(
    t,
    { kind: 'raw', pieces: ['data: {"choices":[{"index":0,"delta":{"content":"a"},"finish_reason":null}]}\n\n'] },
    { kind: 'raw', pieces: ['{"choices":[]}'], contentType: 'application/json' },
  );
  const cut = await sendChatRequest(request(server.url));
  t.match(cut, {
    ok: false,
    errorKind: 'stream',
    error: 'stream ended without a finish_reason or [DONE]',
    outputTokens: 1,
  });
  const json = await sendChatRequest(request(server.url));
  t.match(json, { ok: false, errorKind: 'stream' });
  t.match(json.error, /expected an event stream/);
});

t.test('connections are reused: after [DONE] the body is read to its end, which E2E does not wait for', async (t) => {
  // The end of the body comes 40 ms after [DONE]; cancelling at [DONE] would close the connection. The clock
  // moves only when the server ends the body: E2E taken at [DONE] reads the time before it.
  let clock = 0;
  const late: Script = {
    kind: 'raw',
    pieces: [fixture('llama-server-chat-stream.txt'), ''],
    gapMs: 20,
    onEnd: () => {
      clock++;
    },
  };
  const server = await serve(t, late, late, late, late);
  for (let k = 0; k < 4; k++) {
    const record = await sendChatRequest(request(server.url), () => clock);
    t.ok(record.ok);
    t.equal(record.endMs, k, 'E2E ends at [DONE], before the server ended the body');
    t.equal(clock, k + 1, 'and the body was read to its end');
  }
  // Node's fetch opens a second connection for the second request, then reuses both.
  t.ok(server.connections() <= 2, `${server.connections()} connections for 4 requests`);
});
