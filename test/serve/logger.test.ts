// The server's log as a person and a log shipper read it: one text line per request at a terminal, JSON lines
// otherwise, nothing with --log-disable, API keys never in clear.
import { PassThrough } from 'node:stream';
import t from 'tap';
import { createLogger, requestLine } from '../../src/serve/logger.ts';

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
