// llama-server's tokenizer routes: POST /tokenize, /detokenize, and /apply-template (the chat template alone).
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { type ServerDeps, servedBy } from '../deps.ts';
import { invalidRequest, notAGenerationServer } from '../errors.ts';
import { DetokenizeResponse, TokenizeResponse } from '../responses.ts';
import { ChatCompletionBody } from '../schemas.ts';
import { renderChat } from './chat.ts';

export const TokenizeBody = Type.Object({
  content: Type.String(),
  add_special: Type.Optional(Type.Boolean()),
  parse_special: Type.Optional(Type.Boolean()),
  with_pieces: Type.Optional(Type.Boolean()),
});

export const DetokenizeBody = Type.Object({ tokens: Type.Array(Type.Integer()) });

/** A token's text; a piece that ends inside a UTF-8 character is given as its bytes, as llama-server does. */
function pieceOf(bytes: Uint8Array): string | number[] {
  const text = Buffer.from(bytes).toString('utf8');
  return text.includes('\uFFFD') ? Array.from(bytes) : text;
}

export const tokenizeRoutes: FastifyPluginAsyncTypebox<{ deps: ServerDeps }> = async (app, { deps: base }) => {
  app.post('/tokenize', { schema: { body: TokenizeBody, response: { 200: TokenizeResponse } } }, async (request) => {
    const { model } = servedBy(request, base);
    const { content, add_special = false, parse_special = true, with_pieces = false } = request.body;
    const tokens = Array.from(model.tokenize(content, { addSpecial: add_special, parseSpecial: parse_special }));
    if (!with_pieces) return { tokens };
    return { tokens: tokens.map((id) => ({ id, piece: pieceOf(model.tokenBytes(id, { special: true })) })) };
  });

  app.post(
    '/detokenize',
    { schema: { body: DetokenizeBody, response: { 200: DetokenizeResponse } } },
    async (request) => {
      const { model } = servedBy(request, base);
      const { tokens } = request.body;
      const bad = tokens.find((t) => t < 0 || t >= model.info.nVocab);
      if (bad !== undefined)
        throw invalidRequest(`Invalid token id ${bad} (0..${model.info.nVocab - 1}).`, 'tokens', 'invalid_value');
      return { content: model.detokenize(tokens, { unparseSpecial: true }) };
    },
  );

  app.post('/apply-template', { schema: { body: ChatCompletionBody } }, async (request) => {
    const deps = servedBy(request, base);
    if (deps.config.embeddings) throw notAGenerationServer();
    const { prompt } = await renderChat(deps, request.body, { promptOnly: true });
    return { prompt: prompt.prompt };
  });
};
