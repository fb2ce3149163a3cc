// The real server process (`src/cli.ts serve`) driven by the official openai SDK, and its shutdown.
import OpenAI from 'openai';
import t from 'tap';
import { modelPath } from './helpers/models.ts';
import { startServer } from './helpers/server-process.ts';

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
  const long = await failure(
    client.chat.completions.create({ model: 'x', messages: [{ role: 'user', content: 'word '.repeat(600) }] }),
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
  const server = await startServer(['-m', model, '-np', '2', '--shutdown-grace', '20']);
  const response = fetch(`${server.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      messages: [{ role: 'user', content: 'hi' }],
      max_tokens: 200,
      temperature: 0,
      logit_bias: { 2: -100 },
    }),
  });
  await new Promise((r) => setTimeout(r, 50));
  const code = server.stop('SIGTERM');
  const body = (await (await response).json()) as {
    choices: { finish_reason: string }[];
    usage: { completion_tokens: number };
  };
  t.equal(body.choices[0]?.finish_reason, 'length', 'the in-flight request finished');
  t.equal(body.usage.completion_tokens, 200);
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
