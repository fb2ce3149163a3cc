// A small OpenAI-style streaming server for the load generator's tests: loopback only, port 0, a script
// per request (stream with set delays, an HTTP error, a broken connection, raw bytes), and a cap on how
// many requests it will answer so a runaway test cannot loop forever.
import { createServer, type IncomingHttpHeaders, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export type Script =
  | {
      kind: 'stream';
      /** Delay before the first content chunk. */
      ttftMs: number;
      /** Delay between content chunks. */
      itlMs: number;
      tokens: number;
      /** Send a usage chunk (default true). */
      usage?: boolean;
      /** Send data: [DONE] (default true). */
      done?: boolean;
      /** Send an in-stream error event after this many content chunks instead of finishing. */
      errorAfter?: number;
      /** Destroy the socket after this many content chunks. */
      destroyAfter?: number;
      promptTokens?: number;
    }
  | { kind: 'status'; status: number; body: string; headers?: Record<string, string> }
  /** Writes each piece as its own network write, with `gapMs` between them. */
  | {
      kind: 'raw';
      pieces: Array<string | Buffer>;
      gapMs?: number;
      contentType?: string;
      /** Called just before the body ends (after the last piece and its gap). */
      onEnd?: () => void;
    }
  /** Accepts the request and never answers. */
  | { kind: 'hang' };

export interface SeenRequest {
  index: number;
  headers: IncomingHttpHeaders;
  body: Record<string, unknown>;
  /** performance.now() of this process when the request body had arrived. */
  at: number;
}

export interface FakeServer {
  url: string;
  seen: SeenRequest[];
  /** TCP connections accepted so far. */
  connections(): number;
  close(): Promise<void>;
}

// Unref'd: a script's long silence (a 30 s gap that a test's timeout cuts short) must not keep the test process alive.
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms).unref());

function chunk(id: string, delta: Record<string, unknown>, finishReason: string | null): string {
  const data = {
    id,
    object: 'chat.completion.chunk',
    created: 1700000000,
    model: 'fake-model',
    choices: [{ index: 0, delta, finish_reason: finishReason }],
  };
  return `data: ${JSON.stringify(data)}\n\n`;
}

async function stream(res: ServerResponse, s: Extract<Script, { kind: 'stream' }>, index: number): Promise<void> {
  const id = `chatcmpl-fake-${index}`;
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
  res.write(chunk(id, { role: 'assistant', content: '' }, null));
  await sleep(s.ttftMs);
  for (let k = 0; k < s.tokens; k++) {
    if (k > 0) await sleep(s.itlMs);
    if (s.destroyAfter === k) {
      res.socket?.destroy();
      return;
    }
    if (s.errorAfter === k) {
      res.end(
        `data: ${JSON.stringify({ error: { message: 'decode failed', type: 'server_error', param: null, code: null } })}\n\n`,
      );
      return;
    }
    res.write(chunk(id, { content: ` tok${k}` }, null));
  }
  res.write(chunk(id, {}, 'length'));
  if (s.usage ?? true) {
    const prompt = s.promptTokens ?? 17;
    const usage = { prompt_tokens: prompt, completion_tokens: s.tokens, total_tokens: prompt + s.tokens };
    res.write(
      `data: ${JSON.stringify({ id, object: 'chat.completion.chunk', created: 1700000000, model: 'fake-model', choices: [], usage })}\n\n`,
    );
  }
  if (s.done ?? true) res.write('data: [DONE]\n\n');
  res.end();
}

/** `script(index, body)` decides what request number `index` gets; beyond `maxRequests` it gets 503. */
export async function startFakeServer(
  script: (index: number, body: Record<string, unknown>) => Script,
  maxRequests = 100,
): Promise<FakeServer> {
  const seen: SeenRequest[] = [];
  const server = createServer((req, res) => {
    if (req.method === 'GET' && req.url === '/v1/models') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ object: 'list', data: [{ id: 'fake-model', object: 'model' }] }));
      return;
    }
    if (req.method !== 'POST' || req.url !== '/v1/chat/completions') {
      res.writeHead(404, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ error: { message: 'not found', type: 'invalid_request_error' } }));
      return;
    }
    let text = '';
    req.setEncoding('utf8');
    req.on('data', (c: string) => (text += c));
    req.on('end', () => {
      const index = seen.length;
      const body = JSON.parse(text) as Record<string, unknown>;
      seen.push({ index, headers: req.headers, body, at: performance.now() });
      if (index >= maxRequests) {
        res.writeHead(503, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ error: { message: 'fake server: request cap reached', type: 'unavailable_error' } }));
        return;
      }
      const s = script(index, body);
      void (async () => {
        switch (s.kind) {
          case 'stream':
            return stream(res, s, index);
          case 'status':
            res.writeHead(s.status, { 'content-type': 'application/json', ...s.headers });
            res.end(s.body);
            return;
          case 'raw':
            res.writeHead(200, { 'content-type': s.contentType ?? 'text/event-stream' });
            for (const piece of s.pieces) {
              res.write(piece);
              if (s.gapMs) await sleep(s.gapMs);
            }
            s.onEnd?.();
            res.end();
            return;
          case 'hang':
            return;
        }
      })().catch(() => res.destroy());
    });
  });
  let connections = 0;
  server.on('connection', () => connections++);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    seen,
    connections: () => connections,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** A loopback port with nothing listening (bound, then released). */
export async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}
