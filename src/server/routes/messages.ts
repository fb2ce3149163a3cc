// POST /v1/messages and /v1/messages/count_tokens: Anthropic's Messages API on the chat path. The request becomes a
// chat request (messages-api/request.ts), rendered and run as chat's are; the output parsed by the chat layer is
// presented as content blocks and Anthropic's events (messages-api/presenter.ts). Errors are in Anthropic's shape:
// the app registers this plugin under its own error handler (app.ts).
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { type ServerDeps, servedBy } from '../deps.ts';
import { newObjectId } from '../generation/ids.ts';
import { tokenizePrompt } from '../generation/params.ts';
import { respond } from '../generation/respond.ts';
import { messagesPresenter } from '../messages-api/presenter.ts';
import { translateRequest } from '../messages-api/request.ts';
import { CountTokensBody, MessageObject, MessagesBody } from '../messages-api/schema.ts';
import { prepareChat, renderChat } from './chat.ts';

export const messagesRoutes: FastifyPluginAsyncTypebox<{ deps: ServerDeps }> = async (app, { deps: base }) => {
  const supportsThinking = (deps: ServerDeps): boolean => deps.chat.info?.supportsThinking === true;

  app.post(
    '/v1/messages',
    { schema: { body: MessagesBody, response: { 200: MessageObject } } },
    async (request, reply) => {
      const deps = servedBy(request, base);
      const body = request.body;
      const chat = translateRequest(body, supportsThinking(deps), deps.config.limits);
      const { prompt, tokens, job } = await prepareChat(deps, request, chat, {
        value: body.max_tokens,
        field: 'max_tokens',
      });
      const presenter = messagesPresenter(
        {
          id: newObjectId('msg'),
          model: deps.config.modelId,
          promptTokens: tokens.length,
          stopSequences: body.stop_sequences ?? [],
          omitThinking: body.thinking?.display === 'omitted',
        },
        deps.chat.parser(prompt.parserConfig),
      );
      return respond(deps, request, reply, [job], [presenter]);
    },
  );

  // The conversation's token count, as it would be prompted.
  app.post('/v1/messages/count_tokens', { schema: { body: CountTokensBody } }, async (request) => {
    const deps = servedBy(request, base);
    const { prompt } = await renderChat(
      deps,
      translateRequest(request.body, supportsThinking(deps), deps.config.limits),
      {
        promptOnly: true,
      },
    );
    return { input_tokens: tokenizePrompt(deps.model, prompt.prompt).length };
  });
};
