// POST /v1/chat/completions: the request rendered by the chat layer (the model's Jinja template with tools,
// structured output and reasoning), generation constrained by its grammar, the output parsed back into content,
// reasoning and tool calls.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { chatPresenter } from '../chat/presenter.ts';
import { chatLayerRefusal, constraintOf, renderRequest, userGrammar } from '../chat/request.ts';
import type { ServerDeps } from '../deps.ts';
import { ApiError } from '../errors.ts';
import { newCompletionId, nowSeconds } from '../generation/ids.ts';
import { prepareGeneration, refuseUnsupported, tokenizePrompt } from '../generation/options.ts';
import { respond } from '../generation/respond.ts';
import { ChatCompletionBody } from '../schemas.ts';

export const chatRoutes: FastifyPluginAsyncTypebox<{ deps: ServerDeps }> = async (app, { deps }) => {
  app.post('/v1/chat/completions', { schema: { body: ChatCompletionBody } }, async (request, reply) => {
    const body = request.body;
    refuseUnsupported(body);
    const constraint = constraintOf(body);
    const prompt = await deps.chat
      .apply(renderRequest(body, constraint, deps.chat.supportsTools))
      .catch((err: unknown) => Promise.reject(chatLayerRefusal(err)));
    // A user's grammar on a Jinja template: llama.cpp's chat layer leaves it to the caller, as llama-server applies
    // it, to the raw output from its root.
    const grammar =
      prompt.grammar ??
      (constraint?.kind === 'grammar'
        ? userGrammar(
            await deps.chat
              .checkGrammar(constraint.grammar)
              .catch((err: unknown) => Promise.reject(chatLayerRefusal(err))),
          )
        : null);
    // Asked for a constraint, answered with one: never free text where JSON or a tool call was requested.
    if (constraint !== null && grammar === null) {
      throw new ApiError(500, 'server_error', 'The chat layer produced no grammar for a constrained request', {
        code: 'constraint_lost',
      });
    }
    const job = prepareGeneration(
      deps,
      request,
      body,
      tokenizePrompt(deps.model, prompt.prompt),
      body.max_completion_tokens ?? body.max_tokens,
      { grammar, preservedTokens: prompt.preservedTokens, stop: prompt.additionalStops },
    );
    const head = {
      id: newCompletionId('chatcmpl'),
      created: nowSeconds(),
      model: deps.config.modelId,
      systemFingerprint: deps.config.systemFingerprint,
      includeUsage: job.includeUsage,
    };
    return respond(deps, request, reply, job, chatPresenter(head, deps.chat.parser(prompt.parserConfig)));
  });
};
