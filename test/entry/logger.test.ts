// The server's log as a person and a log shipper read it: one text line per request at a terminal, JSON lines
// otherwise, nothing with --log-disable, API keys never in clear; and the real server process's log at its most
// verbose: no key in any line, the request id on every line a request writes and in its x-request-id header.
import { PassThrough } from 'node:stream';
import t from 'tap';
import { createLogger, requestLine } from '../../src/entry/logger.ts';
import { modelPath } from '../helpers/models.ts';
import { startServer } from '../helpers/server-process.ts';

const base = { logDisable: false, verbose: false, logLevel: 'info', logFile: undefined, logFormat: undefined } as const;

/** Logs with `fn`, then resolves with what reached the stream. */
async function capture(
  config: Partial<Parameters<typeof createLogger>[0]>,
  isTTY: boolean,
  fn: (log: ReturnType<typeof createLogger>) => void,
): Promise<string> {
  const stream = new PassThrough();
  let out = '';
  stream.on('data', (c: Buffer) => {
    out += c.toString();
  });
  const log = createLogger({ ...base, ...config }, { isTTY, stream });
  fn(log);
  log.flush();
  await new Promise((r) => setImmediate(r));
  return out;
}

const request = {
  method: 'POST',
  url: '/v1/chat/completions',
  status: 200,
  ms: 2300,
  promptTokens: 41,
  outputTokens: 64,
  ttftMs: 120,
};

t.test('at a terminal: one readable line per request, and the startup summary as key: value lines', async (t) => {
  const out = await capture({}, true, (log) => {
    log.info(request, 'request');
    log.info({ summary: { model: 'gemma 1B', slots: 4 } }, 'model loaded; serving');
  });
  const lines = out.trim().split('\n');
  t.match(lines[0], /INFO.*: POST \/v1\/chat\/completions 200 41\+64 tok, TTFT 120 ms, 2300 ms$/);
  t.notMatch(lines[0], /promptTokens|"ms"/, 'the fields are in the words, not repeated as JSON');
  t.match(out, /model loaded; serving\n {2}model: gemma 1B\n {2}slots: 4/);
  t.equal(requestLine({ method: 'GET', url: '/health', status: 200, ms: 1 }), 'GET /health 200 1 ms');
});

t.test('not a terminal, or --log-format json: JSON lines with the same fields', async (t) => {
  for (const [config, tty] of [
    [{}, false],
    [{ logFormat: 'json' as const }, true],
  ] as const) {
    const out = await capture(config, tty, (log) => log.info(request, 'request'));
    const line = JSON.parse(out.trim()) as Record<string, unknown>;
    t.match(line, { ...request, msg: 'request', level: 30 });
  }
  const text = await capture({ logFormat: 'text' }, false, (log) => log.info(request, 'request'));
  t.match(text, /POST \/v1\/chat\/completions 200/, '--log-format text off a terminal');
});

t.test('--log-disable writes nothing; -v adds debug lines; API keys are redacted', async (t) => {
  t.equal(await capture({ logDisable: true }, false, (log) => log.error('boom')), '');
  t.equal(await capture({}, false, (log) => log.debug('detail')), '', 'info by default');
  t.match(await capture({ verbose: true }, false, (log) => log.debug('detail')), /"msg":"detail"/);
  const out = await capture({}, false, (log) =>
    log.info({ headers: { authorization: 'Bearer sk-secret', 'x-api-key': 'sk-secret' } }, 'headers'),
  );
  t.notMatch(out, /sk-secret/);
  t.match(out, /"authorization":"\[redacted\]"/);
});

t.test('the server process at -v: keys never logged, every request line carries its request id', async (t) => {
  const KEY = 'sk-never-in-the-log-7f3a';
  const OTHER = 'sk-also-secret-91b2';
  const server = await startServer([
    '-m',
    await modelPath('tiny'),
    '-np',
    '2',
    '-c',
    '512',
    '--api-key',
    `${KEY},${OTHER}`,
    '-v',
    '--log-format',
    'json',
  ]);
  t.teardown(() => server.stop());
  const chat = (headers: Record<string, string>, body: unknown = {}) =>
    fetch(`${server.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...headers },
      body: JSON.stringify({ messages: [{ role: 'user', content: 'hi' }], max_tokens: 3, ...(body as object) }),
    });
  const answers = [
    await chat({ authorization: `Bearer ${KEY}`, 'x-request-id': 'client-chosen-id-1' }),
    await chat({ 'x-api-key': OTHER }, { stream: true }),
    await chat({ authorization: `Bearer ${KEY}x` }),
    await chat({ 'x-api-key': KEY.slice(0, -1) }),
    await chat({ authorization: `Bearer ${KEY}` }, { temperature: 'hot' }),
    await fetch(`${server.url}/slots`, { headers: { authorization: `Bearer ${OTHER}` } }),
    await fetch(`${server.url}/metrics`, { headers: { authorization: `Bearer ${KEY}` } }),
  ];
  t.same(
    answers.map((r) => r.status),
    [200, 200, 401, 401, 400, 200, 501],
    'served, refused and a bad request',
  );
  const ids = [];
  for (const r of answers) {
    await r.text();
    ids.push(r.headers.get('x-request-id'));
  }
  t.equal(ids[0], 'client-chosen-id-1', "a client's sane id is kept");
  t.equal(new Set(ids).size, ids.length, 'each response has its own id');
  await server.stop();
  const out = server.output();
  t.notMatch(out, KEY.slice(3), 'the first key appears nowhere, whole or in part');
  t.notMatch(out, OTHER.slice(3), 'nor the second');
  const lines = out
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>);
  t.ok(
    lines.some((l) => l.level === 20),
    'debug lines were written (-v)',
  );
  // The start-up's /health polls are requests too.
  const requestLines = lines.filter((l) => l.msg === 'request' && l.url !== '/health');
  t.same(
    requestLines.map((l) => l.reqId).sort(),
    [...ids].sort(),
    'one line per request, with the id the client got back',
  );
  // Every line written while a request ran names it: none of those lines lacks a reqId.
  const during = lines.filter((l) => typeof l.reqId === 'string');
  t.ok(during.length > requestLines.length, 'requests wrote more than their summary line (the refusals at debug)');
  for (const l of lines.filter((l) => l.reqId === undefined))
    t.notOk(l.msg === 'request refused' || l.msg === 'request failed' || l.msg === 'request', `${String(l.msg)}`);
});
