// POST /v1/embeddings (OpenAI's shape) and llama-server's /embeddings and /embedding (its own: every input's rows,
// per token with pooling none), served when the server runs with --embeddings. Inputs of one request, and requests
// that arrive while a call runs, share llama_decode calls (src/engine/embedder.ts). Pooled vectors are L2-normalised,
// as OpenAI's and llama-server's are.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyRequest } from 'fastify';
import { type Static, Type } from 'typebox';
import { type ServerDeps, servedBy } from '../deps.ts';
import { type EmbeddingInput, inputTokens } from '../embeddings/request.ts';
import { base64Floats, l2Normalize } from '../embeddings/vectors.ts';
import { invalidRequest, notAnEmbeddingServer } from '../errors.ts';
import type { ServedEmbedder } from '../options.ts';
import { Nullable } from '../schemas.ts';

const Input = Type.Union([
  Type.String(),
  Type.Array(Type.String()),
  Type.Array(Type.Integer()),
  Type.Array(Type.Array(Type.Integer())),
]);

export const EmbeddingsBody = Type.Object({
  input: Type.Optional(Input),
  /** llama-server's name for input on /embeddings. */
  content: Type.Optional(Input),
  model: Nullable(Type.String()),
  encoding_format: Nullable(Type.String()),
  dimensions: Nullable(Type.Integer()),
  user: Nullable(Type.String()),
});
type Body = Static<typeof EmbeddingsBody>;

interface Embedded {
  /** Per input: its rows (normalised when pooled). */
  rows: Float32Array[][];
  promptTokens: number;
}

export const embeddingRoutes: FastifyPluginAsyncTypebox<{ deps: ServerDeps }> = async (app, { deps: base }) => {
  const servedEmbedder = (deps: ServerDeps): ServedEmbedder => {
    if (!deps.config.embeddings || deps.embedder === undefined) throw notAnEmbeddingServer();
    return deps.embedder;
  };

  async function embed(request: FastifyRequest, input: EmbeddingInput, param: string): Promise<Embedded> {
    const deps = servedBy(request, base);
    const { model } = deps;
    const embedder = servedEmbedder(deps);
    const t0 = performance.now();
    const { dimensions, maxInputTokens, pooling } = embedder.info;
    const tokens = inputTokens(input, model, { nVocab: model.info.nVocab, maxInputTokens }, param);
    const out = await embedder.embed(tokens);
    const rows = out.embeddings.map((e) => {
      const list: Float32Array[] = [];
      for (let r = 0; r < e.rows; r++) list.push(e.values.subarray(r * dimensions, (r + 1) * dimensions));
      return pooling === 'none' ? list : list.map(l2Normalize);
    });
    const promptTokens = tokens.reduce((n, t) => n + t.length, 0);
    const seconds = (performance.now() - t0) / 1000;
    deps.metrics?.responded({
      finishReason: 'stop',
      promptTokens,
      cachedTokens: 0,
      completionTokens: 0,
      promptSeconds: seconds,
      e2eSeconds: seconds,
    });
    request.generation = { promptTokens, outputTokens: 0, ttftMs: null };
    return { rows, promptTokens };
  }

  app.post('/v1/embeddings', { schema: { body: EmbeddingsBody } }, async (request) => {
    const deps = servedBy(request, base);
    const body: Body = request.body;
    const { dimensions, pooling } = servedEmbedder(deps).info;
    if (body.input === undefined) throw invalidRequest("'input' is required", 'input', 'missing_required_parameter');
    const format = body.encoding_format ?? 'float';
    if (format !== 'float' && format !== 'base64')
      throw invalidRequest(
        `'encoding_format' must be float or base64, not '${format}'`,
        'encoding_format',
        'invalid_value',
      );
    if (pooling === 'none')
      throw invalidRequest(
        "Pooling type 'none' is not OAI compatible. Please use a different pooling type",
        null,
        'pooling_not_supported',
      );
    // GGUF declares no Matryoshka training, so no model here may be shortened: only its own size is honoured.
    if (body.dimensions !== undefined && body.dimensions !== null && body.dimensions !== dimensions)
      throw invalidRequest(
        `'dimensions' ${body.dimensions} is not supported: this model's embeddings have ${dimensions} dimensions and it does not support shortening them`,
        'dimensions',
        'unsupported_value',
      );
    const { rows, promptTokens } = await embed(request, body.input, 'input');
    return {
      object: 'list',
      data: rows.map((r, index) => ({
        object: 'embedding',
        index,
        embedding: format === 'base64' ? base64Floats(r[0]!) : Array.from(r[0]!),
      })),
      model: body.model ?? deps.config.modelId,
      usage: { prompt_tokens: promptTokens, total_tokens: promptTokens },
    };
  });

  const native = async (request: FastifyRequest<{ Body: Body }>) => {
    const body = request.body;
    const input = body.input ?? body.content;
    const param = body.input !== undefined ? 'input' : 'content';
    if (input === undefined)
      throw invalidRequest('"input" or "content" must be provided', 'input', 'missing_required_parameter');
    const { rows } = await embed(request, input, param);
    return rows.map((r, index) => ({ index, embedding: r.map((row) => Array.from(row)) }));
  };
  for (const url of ['/embeddings', '/embedding']) app.post(url, { schema: { body: EmbeddingsBody } }, native);
};
