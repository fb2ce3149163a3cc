// POST /v1/embeddings, /embeddings and /embedding through the real stack (the tiny BERT, random weights: the vectors
// mean nothing, their shapes, norms, batching and errors are what is checked), with the official openai client on a
// listening server; and the refusals between an embedding server and a generation one.
import OpenAI from 'openai';
import t, { type Test } from 'tap';
import { Embedder, type EmbedderOptions } from '../../../src/engine/index.ts';
import { assembleServer } from '../../../src/entry/assemble.ts';
import { loadModel } from '../../helpers/models.ts';
import { errorOf, makeHarness } from '../harness.ts';

const bert = await loadModel('tiny-bert');
t.teardown(() => bert.dispose());

const DIMS = 128;

async function embeddingServer(t: Test, options: EmbedderOptions = {}) {
  const embedder = new Embedder(bert, { sequences: 4, ...options });
  const server = assembleServer({
    path: bert.info.path,
    config: { ctxPerSlot: 512, slots: 4, embeddings: true, endpoints: { metrics: true } },
    app: { ready: true },
    kvCellsTotal: 0,
  });
  server.attachEmbedder({ model: bert, embedder });
  t.teardown(async () => {
    await server.app.close();
    embedder.dispose();
  });
  return { ...server, embedder };
}

async function listening(t: Test) {
  const s = await embeddingServer(t);
  await s.app.listen({ host: '127.0.0.1', port: 0 });
  const address = s.app.server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  return { ...s, client: new OpenAI({ baseURL: `http://127.0.0.1:${port}/v1`, apiKey: 'unused', maxRetries: 0 }) };
}

const norm = (v: readonly number[]): number => Math.sqrt(v.reduce((s, x) => s + x * x, 0));

interface EmbeddingList {
  object: string;
  data: { object: string; index: number; embedding: number[] | string }[];
  model: string;
  usage: { prompt_tokens: number; total_tokens: number };
}

t.test('the openai client: embeddings.create, float and base64, unit vectors and usage', async (t) => {
  const { client } = await listening(t);
  const texts = ['hello world', 'the quick brown fox'];
  const tokens = texts.map((s) => bert.tokenize(s, { addSpecial: true }).length);
  const float = await client.embeddings.create({ model: 'tiny', input: texts, encoding_format: 'float' });
  t.equal(float.object, 'list');
  t.equal(float.model, 'tiny');
  t.same(float.usage, { prompt_tokens: tokens[0]! + tokens[1]!, total_tokens: tokens[0]! + tokens[1]! });
  t.same(
    float.data.map((d) => [d.object, d.index, d.embedding.length]),
    [
      ['embedding', 0, DIMS],
      ['embedding', 1, DIMS],
    ],
  );
  for (const d of float.data) t.ok(Math.abs(norm(d.embedding) - 1) < 1e-5, `unit norm: ${norm(d.embedding)}`);
  t.notSame(float.data[0]!.embedding, float.data[1]!.embedding, 'different texts, different vectors');

  // Without encoding_format the client asks for base64 and decodes it: the same floats.
  const decoded = await client.embeddings.create({ model: 'tiny', input: texts });
  t.same(
    decoded.data.map((d) => d.embedding),
    float.data.map((d) => d.embedding.map((x) => Math.fround(x))),
  );

  const raw = (await client.embeddings
    .create({ model: 'tiny', input: 'hello world', encoding_format: 'base64' })
    .asResponse()
    .then((r) => r.json())) as EmbeddingList;
  const bytes = Buffer.from(raw.data[0]!.embedding as string, 'base64');
  t.equal(bytes.length, DIMS * 4, 'base64 of 128 little-endian float32s');
  const floats = new Float32Array(bytes.buffer, bytes.byteOffset, DIMS);
  t.same(
    Array.from(floats),
    float.data[0]!.embedding.map((x) => Math.fround(x)),
  );
});

t.test('every input shape OpenAI takes: string, strings, tokens, token arrays', async (t) => {
  const { app } = await embeddingServer(t);
  const ids = Array.from(bert.tokenize('hello world', { addSpecial: true }));
  const post = async (input: unknown) => {
    const res = await app.inject({ method: 'POST', url: '/v1/embeddings', payload: { input } });
    t.equal(res.statusCode, 200, JSON.stringify(input));
    return res.json() as EmbeddingList;
  };
  const one = await post('hello world');
  t.equal(one.data.length, 1);
  t.equal(one.usage.prompt_tokens, ids.length);
  t.same((await post(ids)).data[0]!.embedding, one.data[0]!.embedding, 'the same tokens as a token array');
  const many = await post([ids, ids.slice(0, 2)]);
  t.equal(many.data.length, 2);
  t.same(many.data[0]!.embedding, one.data[0]!.embedding);
  t.equal(many.usage.prompt_tokens, ids.length + 2);
  t.equal((await post(['hello world', 'hello'])).data.length, 2);
});

t.test('batched results equal one-at-a-time results', async (t) => {
  const { app, embedder } = await embeddingServer(t);
  const texts = ['hello world', 'a much longer sentence than the first one', 'x', 'vectors', 'five'];
  const together = await app.inject({ method: 'POST', url: '/v1/embeddings', payload: { input: texts } });
  const batched = (together.json() as EmbeddingList).data.map((d) => d.embedding as number[]);
  for (const [i, text] of texts.entries()) {
    const alone = await app.inject({ method: 'POST', url: '/v1/embeddings', payload: { input: text } });
    const v = (alone.json() as EmbeddingList).data[0]!.embedding as number[];
    const diff = Math.max(...v.map((x, k) => Math.abs(x - batched[i]![k]!)));
    t.ok(diff < 1e-5, `input ${i}: largest difference ${diff}`);
  }
  // Five inputs over four sequences: the native side packed them into two llama_decode calls.
  const tokens = texts.map((s) => bert.tokenize(s, { addSpecial: true }));
  t.equal((await embedder.embed(tokens)).decodes, 2);
});

t.test("llama-server's /embeddings and /embedding: rows per input, content as input", async (t) => {
  const { app } = await embeddingServer(t);
  const v1 = (
    (await app.inject({ method: 'POST', url: '/v1/embeddings', payload: { input: 'hello' } })).json() as EmbeddingList
  ).data[0]!.embedding;
  for (const url of ['/embeddings', '/embedding']) {
    const res = await app.inject({ method: 'POST', url, payload: { content: ['hello', 'world'] } });
    t.equal(res.statusCode, 200, url);
    const body = res.json() as { index: number; embedding: number[][] }[];
    t.same(
      body.map((b) => [b.index, b.embedding.length, b.embedding[0]!.length]),
      [
        [0, 1, DIMS],
        [1, 1, DIMS],
      ],
    );
    t.same(body[0]!.embedding[0], v1, 'the same normalised vector as /v1/embeddings');
  }
});

t.test('pooling none: per-token rows on /embeddings, refused on /v1/embeddings', async (t) => {
  const { app } = await embeddingServer(t, { pooling: 'none' });
  const n = bert.tokenize('hello world', { addSpecial: true }).length;
  const res = await app.inject({ method: 'POST', url: '/embeddings', payload: { input: 'hello world' } });
  t.equal(res.statusCode, 200);
  const rows = (res.json() as { embedding: number[][] }[])[0]!.embedding;
  t.equal(rows.length, n, 'one row per token');
  const v1 = await app.inject({ method: 'POST', url: '/v1/embeddings', payload: { input: 'hello world' } });
  t.equal(v1.statusCode, 400);
  t.match(errorOf(v1).message, "Pooling type 'none' is not OAI compatible");
});

t.test('bad requests are 400s that name the field', async (t) => {
  const { app, client } = await listening(t);
  const cases: [unknown, string | null, RegExp][] = [
    [{ input: '' }, 'input', /must not be empty/],
    [{ input: [] }, 'input', /must not be empty/],
    [{ input: ['a', ''] }, 'input[1]', /must not be empty/],
    [{ input: [[1, 2], []] }, 'input[1]', /must not be empty/],
    [{ input: [101, 99999] }, 'input', /token 99999, outside the vocabulary/],
    [{ input: [-1] }, 'input', /token -1/],
    [{ input: 'hi', encoding_format: 'int8' }, 'encoding_format', /float or base64/],
    [{ input: 'hi', dimensions: 64 }, 'dimensions', /'dimensions' 64 is not supported: .* 128 dimensions/],
    [{}, 'input', /'input' is required/],
    [{ input: ['a', 1] }, 'input[1]', /.+/],
  ];
  for (const [payload, param, message] of cases) {
    const res = await app.inject({ method: 'POST', url: '/v1/embeddings', payload: payload as object });
    t.equal(res.statusCode, 400, JSON.stringify(payload));
    const e = errorOf(res);
    t.equal(e.type, 'invalid_request_error');
    if (param !== null) t.equal(e.param, param, `param of ${JSON.stringify(payload)}`);
    t.match(e.message, message);
  }
  const ok = await app.inject({ method: 'POST', url: '/v1/embeddings', payload: { input: 'hi', dimensions: DIMS } });
  t.equal(ok.statusCode, 200, "the model's own dimensions are honoured");

  const long = await app.inject({ method: 'POST', url: '/v1/embeddings', payload: { input: Array(513).fill(1000) } });
  t.equal(long.statusCode, 400);
  t.match(errorOf(long), {
    type: 'exceed_context_size_error',
    code: 'context_length_exceeded',
    param: 'input',
    n_prompt_tokens: 513,
    n_ctx: 512,
  });

  // The official client surfaces them as BadRequestError with OpenAI's fields.
  const err = await client.embeddings.create({ model: 'tiny', input: '' }).catch((e: unknown) => e);
  t.ok(err instanceof OpenAI.BadRequestError);
  t.match(err, { status: 400, param: 'input', type: 'invalid_request_error' });
});

t.test('an embedding server refuses generation routes, and a generation server refuses embeddings', async (t) => {
  const { app } = await embeddingServer(t);
  const chat = { messages: [{ role: 'user', content: 'hi' }] };
  for (const [url, payload] of [
    ['/v1/chat/completions', chat],
    ['/v1/completions', { prompt: 'hi' }],
    ['/completion', { prompt: 'hi' }],
    ['/v1/responses', { input: 'hi' }],
    ['/apply-template', chat],
  ] as const) {
    const res = await app.inject({ method: 'POST', url, payload });
    t.equal(res.statusCode, 400, url);
    t.match(errorOf(res).message, /does not support completions.*Start it without `--embeddings`/, url);
  }
  const messages = await app.inject({ method: 'POST', url: '/v1/messages', payload: { ...chat, max_tokens: 4 } });
  t.equal(messages.statusCode, 400);
  t.match(messages.json(), { type: 'error', error: { message: /does not support completions/ } }, "Anthropic's shape");

  const tiny = await loadModel('tiny');
  t.teardown(() => tiny.dispose());
  const generation = await makeHarness(t, tiny);
  for (const url of ['/v1/embeddings', '/embeddings', '/embedding']) {
    const res = await generation.app.inject({ method: 'POST', url, payload: { input: 'hi' } });
    t.equal(res.statusCode, 400, url);
    t.equal(errorOf(res).message, 'This server does not support embeddings. Start it with `--embeddings`');
  }
});

t.test('metrics count embedding requests and their tokens as they count chat', async (t) => {
  const { app } = await embeddingServer(t);
  const before = await app.inject({ method: 'GET', url: '/metrics' });
  t.match(before.body, /llamacpp:prompt_tokens_total 0/);
  const input = ['hello world', 'again'];
  const tokens = input.reduce((n, s) => n + bert.tokenize(s, { addSpecial: true }).length, 0);
  await app.inject({ method: 'POST', url: '/v1/embeddings', payload: { input } });
  await app.inject({ method: 'POST', url: '/embeddings', payload: { content: 'x' } });
  const after = (await app.inject({ method: 'GET', url: '/metrics' })).body;
  const x = bert.tokenize('x', { addSpecial: true }).length;
  t.match(after, new RegExp(`llamacpp:prompt_tokens_total ${tokens + x}\\b`));
  t.match(after, /llama_slots_requests_total\{finish_reason="stop"\} 2/);
  await app.inject({ method: 'POST', url: '/v1/embeddings', payload: { input: '' } });
  t.match(
    (await app.inject({ method: 'GET', url: '/metrics' })).body,
    /llama_slots_rejections_total\{cause="invalid"\} 1/,
  );
});

t.test('an embedding server still answers its model, health, props and tokenizer routes', async (t) => {
  const { app } = await embeddingServer(t);
  for (const url of ['/health', '/v1/models', '/props', '/slots']) {
    t.equal((await app.inject({ method: 'GET', url })).statusCode, 200, url);
  }
  const tok = await app.inject({ method: 'POST', url: '/tokenize', payload: { content: 'hello', add_special: true } });
  t.same(tok.json(), { tokens: Array.from(bert.tokenize('hello', { addSpecial: true })) });
});
