// POST /v1/completions (OpenAI's legacy text completions): the prompt string as it is, then generation.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { invalidRequest } from '../errors.ts';
import {
  type FinishReason,
  newCompletionId,
  nowSeconds,
  type Presenter,
  prepareGeneration,
  refuseUnsupported,
  respond,
  type ServerDeps,
  tokenizePrompt,
  type Usage,
} from '../generation.ts';
import { CompletionBody } from '../schemas.ts';

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
    const job = prepareGeneration(deps, request, body, tokenizePrompt(deps.model, body.prompt), body.max_tokens);

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
      firstChunk: () => null,
      textChunk: (text) => chunk(text, null),
      finalChunk: (finish) => chunk('', finish),
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
