// POST /v1/chat/completions: the model's chat template over the messages, then generation.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { ChatMessage } from '../../engine/index.ts';
import { ApiError } from '../errors.ts';
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
import { ChatCompletionBody } from '../schemas.ts';

type Content = ChatCompletionBody['messages'][number]['content'];

/** Text parts join with newlines; null (an assistant turn without text) is empty. */
function contentText(content: Content): string {
  if (content === null) return '';
  if (typeof content === 'string') return content;
  return content.map((part) => part.text).join('\n');
}

export const chatRoutes: FastifyPluginAsyncTypebox<{ deps: ServerDeps }> = async (app, { deps }) => {
  app.post('/v1/chat/completions', { schema: { body: ChatCompletionBody } }, async (request, reply) => {
    const body = request.body;
    refuseUnsupported(body);
    const messages: ChatMessage[] = body.messages.map((m) => ({
      role: m.role === 'developer' ? 'system' : m.role,
      content: contentText(m.content),
    }));
    let prompt: string;
    try {
      prompt = deps.model.applyChatTemplate(messages, { addAssistant: true });
    } catch (err) {
      request.log.error({ err }, 'chat template failed');
      throw new ApiError(500, 'server_error', "The model's chat template could not be applied to these messages", {
        code: 'template_failed',
      });
    }
    const job = prepareGeneration(
      deps,
      request,
      body,
      tokenizePrompt(deps.model, prompt),
      body.max_completion_tokens ?? body.max_tokens,
    );

    const head = {
      id: newCompletionId('chatcmpl'),
      created: nowSeconds(),
      model: deps.config.modelId,
      system_fingerprint: deps.config.systemFingerprint,
    };
    // With include_usage, OpenAI puts `usage: null` on every chunk but the last.
    const usageNull = job.includeUsage ? { usage: null } : {};
    const chunk = (delta: object, finish: FinishReason | null): object => ({
      id: head.id,
      object: 'chat.completion.chunk',
      created: head.created,
      model: head.model,
      system_fingerprint: head.system_fingerprint,
      choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }],
      ...usageNull,
    });
    const presenter: Presenter = {
      firstChunk: () => chunk({ role: 'assistant', content: '' }, null),
      textChunk: (text) => chunk({ content: text }, null),
      finalChunk: (finish) => chunk({}, finish),
      usageChunk: (usage: Usage) => ({
        id: head.id,
        object: 'chat.completion.chunk',
        created: head.created,
        model: head.model,
        system_fingerprint: head.system_fingerprint,
        choices: [],
        usage,
      }),
      completion: (text, finish, usage) => ({
        id: head.id,
        object: 'chat.completion',
        created: head.created,
        model: head.model,
        system_fingerprint: head.system_fingerprint,
        choices: [{ index: 0, message: { role: 'assistant', content: text }, logprobs: null, finish_reason: finish }],
        usage,
      }),
    };
    return respond(deps, request, reply, job, presenter);
  });
};
