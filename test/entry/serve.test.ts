// The real server process (`src/entry/main.ts serve`) driven by the official openai SDK, and its shutdown.
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import OpenAI from 'openai';
import t from 'tap';
import { projectRoot } from '../../src/paths.ts';
import { modelPath } from '../helpers/models.ts';
import { startServer } from '../helpers/server-process.ts';

const model = await modelPath('tiny');

/** The error a promise rejects with (tap's rejects() does not check error classes). */
async function failure(p: PromiseLike<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (err) {
    return err;
  }
  throw new Error('expected the call to fail');
}

t.test('the OpenAI SDK works unchanged against the server', async (t) => {
  const server = await startServer(['-m', model, '-np', '2', '-c', '1024', '--api-key', 'sk-test']);
  t.teardown(() => server.stop());
  const client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'sk-test', maxRetries: 0 });

  const models = await client.models.list();
  t.equal(models.data[0]?.id, 'tiny-F16-s1-g1.gguf');

  const done = await client.chat.completions.create({
    model: 'anything',
    messages: [{ role: 'user', content: 'Say something' }],
    max_tokens: 8,
    temperature: 0,
  });
  t.equal(done.object, 'chat.completion');
  t.equal(done.choices[0]?.message.role, 'assistant');
  t.equal(done.choices[0]?.finish_reason, 'length');
  t.equal(done.usage?.completion_tokens, 8);
  t.ok((done.usage?.prompt_tokens ?? 0) > 0);

  const stream = await client.chat.completions.create({
    model: 'anything',
    messages: [{ role: 'user', content: 'Say something' }],
    max_tokens: 8,
    temperature: 0,
    stream: true,
    stream_options: { include_usage: true },
  });
  let text = '';
  const ids = new Set<string>();
  let finish: string | null = null;
  let usage: OpenAI.CompletionUsage | undefined;
  for await (const chunk of stream) {
    ids.add(chunk.id);
    text += chunk.choices[0]?.delta.content ?? '';
    finish = chunk.choices[0]?.finish_reason ?? finish;
    if (chunk.usage) usage = chunk.usage;
  }
  t.equal(ids.size, 1, 'one id throughout');
  t.equal(text, done.choices[0]?.message.content, 'streamed text equals the non-streamed greedy text');
  t.equal(finish, 'length');
  t.equal(usage?.completion_tokens, 8);
  t.ok((usage?.prompt_tokens_details?.cached_tokens ?? 0) > 0, 'the repeated prompt was served from the cache');

  const legacy = await client.completions.create({
    model: 'x',
    prompt: 'Once upon a time',
    max_tokens: 4,
    temperature: 0,
  });
  t.equal(legacy.object, 'text_completion');
  t.equal(legacy.usage?.completion_tokens, 4);

  const empty = await failure(client.chat.completions.create({ model: 'x', messages: [], max_tokens: 4 }));
  t.type(empty, OpenAI.BadRequestError);
  t.match(empty, { status: 400, error: { param: 'messages' } }, 'empty messages');
  const hot = await failure(
    client.chat.completions.create({ model: 'x', messages: [{ role: 'user', content: 'x' }], temperature: 7 }),
  );
  t.type(hot, OpenAI.BadRequestError);
  t.match(hot, { error: { param: 'temperature' } });
  const wrongKey = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'sk-wrong', maxRetries: 0 });
  const denied = await failure(wrongKey.models.list());
  t.type(denied, OpenAI.AuthenticationError);
  t.match(denied, { status: 401 });
  // Longer than the pool of 1024 cells, which one slot may use whole (unified by default).
  const long = await failure(
    client.chat.completions.create({ model: 'x', messages: [{ role: 'user', content: 'word '.repeat(1200) }] }),
  );
  t.type(long, OpenAI.BadRequestError);
  t.match(long, { status: 400, error: { type: 'exceed_context_size_error' } });
});

t.test('a full queue answers 429, which the SDK reports as RateLimitError', async (t) => {
  const server = await startServer(['-m', model, '-np', '1', '--max-queue', '0']);
  t.teardown(() => server.stop());
  const client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'unused', maxRetries: 0 });
  const long = client.chat.completions.create({
    model: 'x',
    messages: [{ role: 'user', content: 'go' }],
    max_tokens: 400,
    temperature: 0,
    logit_bias: { 2: -100 },
    stream: true,
  });
  const first = await long;
  const iterator = first[Symbol.asyncIterator]();
  await iterator.next(); // the long request holds the only slot
  const refused = await client.chat.completions
    .create({ model: 'x', messages: [{ role: 'user', content: 'me too' }], max_tokens: 2 })
    .catch((err: unknown) => err);
  t.type(refused, OpenAI.RateLimitError);
  t.ok(Number((refused as InstanceType<typeof OpenAI.RateLimitError>).headers?.get('retry-after')) >= 1, 'Retry-After');
  first.controller.abort();
});

t.test('SIGTERM: stop accepting, finish in-flight requests, exit 0', async (t) => {
  // A grace far longer than 200 tokens take even on a loaded 2-core machine (3 tokens/s seen there): the test
  // waits for the stream's end, not for the grace, so this costs nothing when the machine is idle.
  const server = await startServer(['-m', model, '-np', '2', '--shutdown-grace', '180']);
  const response = await fetch(`${server.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      messages: [{ role: 'user', content: 'hi' }],
      max_tokens: 200,
      temperature: 0,
      logit_bias: { 2: -100 },
      stream: true,
      stream_options: { include_usage: true },
    }),
  });
  // The stream opens once the request has its slot: it is in flight when the signal comes.
  const reader = response.body?.getReader();
  let text = new TextDecoder().decode((await reader?.read())?.value);
  const code = server.stop('SIGTERM');
  for (;;) {
    const chunk = await reader?.read();
    if (!chunk || chunk.done) break;
    text += new TextDecoder().decode(chunk.value);
  }
  const events = text
    .split('\n')
    .filter((l) => l.startsWith('data: {'))
    .map(
      (l) =>
        JSON.parse(l.slice(6)) as {
          choices: { finish_reason: string | null }[];
          usage?: { completion_tokens: number } | null;
        },
    );
  t.match(text, /data: \[DONE\]/);
  t.equal(events.at(-2)?.choices[0]?.finish_reason, 'length', 'the in-flight request finished');
  t.equal(events.at(-1)?.usage?.completion_tokens, 200);
  t.equal(await code, 0, 'exit code 0');
  t.match(server.output(), /shutting down/);
  t.match(server.output(), /stopped/);
});

t.test('SIGTERM with a short grace period cancels what is still running', async (t) => {
  const server = await startServer(['-m', model, '-np', '1', '--shutdown-grace', '0']);
  const res = await fetch(`${server.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      messages: [{ role: 'user', content: 'hi' }],
      max_tokens: 100000,
      stream: true,
      logit_bias: { 2: -100 },
    }),
  });
  const reader = res.body?.getReader();
  await reader?.read();
  const code = server.stop('SIGTERM');
  let rest = '';
  for (;;) {
    const chunk = await reader?.read();
    if (!chunk || chunk.done) break;
    rest += Buffer.from(chunk.value).toString();
  }
  t.match(rest, /shutting down/, 'the stream ends with an error event');
  t.equal(await code, 0);
});

t.test('bad flags and bad model files give a clear message and a non-zero exit', async (t) => {
  await t.rejects(startServer(['--port', 'nope']), /--port must be an integer/);
  await t.rejects(startServer(['-m', '/nonexistent/model.gguf']), /model\.gguf/);
});

/** Runs `serve` with these flags to its exit (for flags that end it at once). */
function runServe(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', join(projectRoot, 'src', 'entry', 'main.ts'), 'serve', ...args],
    {
      cwd: projectRoot,
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c: Buffer) => {
    stdout += c.toString();
  });
  child.stderr.on('data', (c: Buffer) => {
    stderr += c.toString();
  });
  return new Promise((resolve) => child.on('exit', (code) => resolve({ code, stdout, stderr })));
}

t.test("llama-server's command line: its flags take effect, a flag with no effect here warns once", async (t) => {
  const server = await startServer([
    ...['-m', model, '-np', '2', '-c', '1024', '--temp', '0.25', '--top-k', '7', '-cb', '--cont-batching'],
    ...['--metrics', '-a', 'my-model', '--threads-http', '4', '--no-webui'],
  ]);
  t.teardown(() => server.stop());
  const warnings = server.output().match(/^warning: .*$/gm) ?? [];
  t.same(
    warnings.map((w) => w.split(' ')[1]),
    ['-cb', '--threads-http'],
    'one warning per ignored flag (named as first given), however often it is given',
  );
  const props = (await (await fetch(`${server.url}/props`)).json()) as {
    default_generation_settings: { params: { temperature: number; top_k: number } };
    total_slots: number;
    build_info: string;
  };
  t.match(props.default_generation_settings.params, { temperature: 0.25, top_k: 7 });
  t.equal(props.total_slots, 2);
  t.match(props.build_info, /^b\d+-[0-9a-f]+$/, "llama.cpp's own build info");
  const models = (await (await fetch(`${server.url}/v1/models`)).json()) as { data: { id: string }[] };
  t.equal(models.data[0]?.id, 'my-model');
  t.equal((await fetch(`${server.url}/metrics`)).status, 200, '--metrics turns /metrics on');
  t.equal((await fetch(`${server.url}/`)).status, 404, '--no-webui');
});

t.test('--version and --list-devices print and exit; a refused or unknown flag exits 2 naming it', async (t) => {
  const version = await runServe(['--version']);
  t.equal(version.code, 0);
  t.match(version.stdout, /^version: \d+\.\d+\.\d+ \(llama\.cpp b\d+-[0-9a-f]+\)/);
  const devices = await runServe(['--list-devices']);
  t.equal(devices.code, 0);
  t.match(devices.stdout, /^Available devices:/);
  const refused = await runServe(['--rerank']);
  t.equal(refused.code, 2);
  t.match(refused.stderr, /error: --rerank is not supported by this server: /);
  // A bias on a token the model does not have would fail every request: refused once the vocabulary is known.
  const bias = await runServe(['-m', model, '--port', '0', '-l', '99999999+1']);
  t.equal(bias.code, 1);
  t.match(
    bias.stdout + bias.stderr,
    /cannot serve .*-l\/--logit-bias: token 99999999 is outside the vocabulary \(0\.\.\d+\)/,
  );
  const unknown = await runServe(['--temperature-x', '1']);
  t.equal(unknown.code, 2);
  t.match(unknown.stderr, /unknown option '--temperature-x'/);
});

t.test(
  '--embeddings serves an embedding model: /v1/embeddings through the SDK, chat refused, SIGTERM exits 0',
  async (t) => {
    const server = await startServer(['-m', await modelPath('tiny-bert'), '--embeddings', '-np', '2', '--no-webui']);
    t.teardown(() => server.stop());
    const client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'unused', maxRetries: 0 });
    const e = await client.embeddings.create({ model: 'bert', input: ['one', 'two', 'three'] });
    t.same(
      e.data.map((d) => [d.index, d.embedding.length]),
      [
        [0, 128],
        [1, 128],
        [2, 128],
      ],
    );
    const chat = await failure(
      client.chat.completions.create({ model: 'bert', messages: [{ role: 'user', content: 'hi' }] }),
    );
    t.ok(chat instanceof OpenAI.BadRequestError);
    t.match((chat as Error).message, /Start it without `--embeddings`/);
    t.equal(await server.stop('SIGTERM'), 0);
  },
);
