// POST /v1/completions (OpenAI's legacy text completions): the prompt string as it is, then generation, optionally
// constrained by a JSON schema or a grammar (llama-server's json_schema / grammar fields).
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { ChatLayer, GrammarConstraint } from '../chat/layer.ts';
import { type Constraint, chatLayerRefusal, constraintOf, userGrammar } from '../chat/request.ts';
import type { ServerDeps } from '../deps.ts';
import { invalidRequest } from '../errors.ts';
import { newCompletionId, nowSeconds } from '../generation/ids.ts';
import { prepareGeneration, refuseUnsupported, tokenizePrompt } from '../generation/options.ts';
import { respond } from '../generation/respond.ts';
import type { FinishReason, Presenter, Usage } from '../generation/types.ts';
import { CompletionBody } from '../schemas.ts';

/** A raw prompt's grammar: a schema's starts at its root, as a user's does (no chat template before it). */
async function grammarFor(chat: ChatLayer, constraint: Constraint | null): Promise<GrammarConstraint | null> {
  if (constraint === null) return null;
  const text =
    constraint.kind === 'json_schema'
      ? await chat.grammarFromSchema(constraint.schema)
      : await chat.checkGrammar(constraint.grammar);
  return constraint.kind === 'json_schema' ? { ...userGrammar(text), kind: 1 } : userGrammar(text);
}

export const completionRoutes: FastifyPluginAsyncTypebox<{ deps: ServerDeps }> = async (app, { deps }) => {
  app.post('/v1/completions', { schema: { body: CompletionBody } }, async (request, reply) => {
    const body = request.body;
    refuseUnsupported(body);
    if (body.echo === true)
      throw invalidRequest("'echo' is not supported by this server.", 'echo', 'unsupported_parameter');
    if (typeof body.suffix === 'string' && body.suffix !== '')
      throw invalidRequest("'suffix' is not supported by this server.", 'suffix', 'unsupported_parameter');
    if (body.best_of !== undefined && body.best_of !== null && body.best_of !== 1) {
      throw invalidRequest(
        `Invalid value for 'best_of': this server returns one choice per request, so best_of must be 1 (got ${body.best_of}).`,
        'best_of',
        'invalid_value',
      );
    }
    const grammar = await grammarFor(deps.chat, constraintOf(body)).catch((err: unknown) =>
      Promise.reject(chatLayerRefusal(err)),
    );
    const job = prepareGeneration(deps, request, body, tokenizePrompt(deps.model, body.prompt), body.max_tokens, {
      grammar,
    });

    const head = {
      id: newCompletionId('cmpl'),
      created: nowSeconds(),
      model: deps.config.modelId,
      system_fingerprint: deps.config.systemFingerprint,
    };
    const usageNull = job.includeUsage ? { usage: null } : {};
    const chunk = (text: string, finish: FinishReason | null): object => ({
      id: head.id,
      object: 'text_completion',
      created: head.created,
      model: head.model,
      system_fingerprint: head.system_fingerprint,
      choices: [{ index: 0, text, logprobs: null, finish_reason: finish }],
      ...usageNull,
    });
    const presenter: Presenter = {
      open: () => [],
      text: (text) => [chunk(text, null)],
      finish: (finish) => [chunk('', finish)],
      usageChunk: (usage: Usage) => ({
        id: head.id,
        object: 'text_completion',
        created: head.created,
        model: head.model,
        system_fingerprint: head.system_fingerprint,
        choices: [],
        usage,
      }),
      completion: (text, finish, usage) => ({ ...chunk(text, finish), usage }),
    };
    return respond(deps, request, reply, job, presenter);
  });
};
