// POST /v1/responses (and llama-server's /responses): OpenAI's Responses API on the chat path. The request becomes a
// chat request (responses-api/request.ts), rendered and run as chat's are; the output parsed by the chat layer is
// presented as response items and events (responses-api/presenter.ts). Responses are stored in memory unless
// `store: false`, so `previous_response_id` continues them and GET/DELETE /v1/responses/{id} find them.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { type ServerDeps, servedBy } from '../deps.ts';
import { ApiError, invalidRequest } from '../errors.ts';
import { newObjectId, nowSeconds } from '../generation/ids.ts';
import { tokenizePrompt } from '../generation/params.ts';
import { respond } from '../generation/respond.ts';
import type { PreparedGeneration } from '../generation/types.ts';
import { responsesPresenter } from '../responses-api/presenter.ts';
import { type TranslatedRequest, translateRequest } from '../responses-api/request.ts';
import { ResponseObject, ResponsesBody } from '../responses-api/schema.ts';
import { assistantTurn, ResponseStore } from '../responses-api/store.ts';
import { prepareChat, renderChat } from './chat.ts';

/** The template refused the conversation: it came as `input`, not as chat's `messages`. */
function asInput(err: unknown): unknown {
  if (err instanceof ApiError && err.param === 'messages') return invalidRequest(err.message, 'input', err.code);
  return err;
}

/** What the response object echoes of the request, with the sampling it ran with. */
function settingsOf(body: ResponsesBody, job: PreparedGeneration): Record<string, unknown> {
  return {
    instructions: body.instructions ?? null,
    max_output_tokens: body.max_output_tokens ?? null,
    max_tool_calls: body.max_tool_calls ?? null,
    metadata: body.metadata ?? {},
    parallel_tool_calls: body.parallel_tool_calls ?? true,
    previous_response_id: body.previous_response_id ?? null,
    reasoning: { effort: body.reasoning?.effort ?? null, summary: body.reasoning?.summary ?? null },
    store: body.store ?? true,
    temperature: job.options.sampling.temperature,
    top_p: job.options.sampling.topP,
    text: { format: body.text?.format ?? { type: 'text' }, verbosity: 'medium' },
    tool_choice: body.tool_choice ?? 'auto',
    tools: (body.tools ?? []).map((t) => ({ ...t, strict: t.strict ?? true })),
    top_logprobs: 0,
    truncation: 'disabled',
    background: false,
    service_tier: 'default',
    user: body.user ?? null,
    safety_identifier: body.safety_identifier ?? null,
    prompt_cache_key: body.prompt_cache_key ?? null,
  };
}

function notFound(id: string): ApiError {
  return new ApiError(404, 'invalid_request_error', `No response with id '${id}' is stored here.`, {
    param: 'response_id',
    code: 'not_found',
  });
}

export const responsesRoutes: FastifyPluginAsyncTypebox<{ deps: ServerDeps }> = async (app, { deps: base }) => {
  // One store for the server (in router mode, for every model): the request limits are the server's too.
  const store = new ResponseStore(base.config.responseStoreBytes);
  const mib = Math.round(base.config.responseStoreBytes / 2 ** 20);

  /** The chat request, continuing a stored response when the request names one. */
  const translate = (body: ResponsesBody): TranslatedRequest => {
    const previous = body.previous_response_id;
    if (previous === undefined || previous === null) return translateRequest(body, [], base.config.limits);
    const stored = store.get(previous);
    if (stored === undefined) {
      throw invalidRequest(
        `Previous response with id '${previous}' not found: responses are kept in this server's memory (up to ${mib} MiB, least recently used dropped first, none across restarts), and only with 'store' true.`,
        'previous_response_id',
        'previous_response_not_found',
      );
    }
    return translateRequest(body, stored.conversation, base.config.limits);
  };

  for (const url of ['/v1/responses', '/responses']) {
    app.post(url, { schema: { body: ResponsesBody, response: { 200: ResponseObject } } }, async (request, reply) => {
      const deps = servedBy(request, base);
      const body = request.body;
      const { chat, conversation } = translate(body);
      const { prompt, job } = await prepareChat(deps, request, chat, {
        value: body.max_output_tokens,
        field: 'max_output_tokens',
      }).catch((err: unknown) => Promise.reject(asInput(err)));
      const presenter = responsesPresenter(
        {
          id: newObjectId('resp'),
          createdAt: nowSeconds(),
          model: deps.config.modelId,
          settings: settingsOf(body, job),
          onFinal: (response) => {
            if (body.store !== false)
              store.put({ response, conversation: [...conversation, assistantTurn(response.output)] });
          },
        },
        deps.chat.parser(prompt.parserConfig),
        deps.model,
      );
      return respond(deps, request, reply, [job], [presenter]);
    });
  }

  // The conversation's token count, as it would be prompted (OpenAI's input token count).
  for (const url of ['/v1/responses/input_tokens', '/responses/input_tokens']) {
    app.post(url, { schema: { body: ResponsesBody } }, async (request) => {
      const deps = servedBy(request, base);
      const { chat } = translate(request.body);
      const { prompt } = await renderChat(deps, chat, { promptOnly: true }).catch((err: unknown) =>
        Promise.reject(asInput(err)),
      );
      return { object: 'response.input_tokens', input_tokens: tokenizePrompt(deps.model, prompt.prompt).length };
    });
  }

  const params = { params: Type.Object({ id: Type.String() }) };
  // The store is the server's, not a model's (router mode: no `model` needed, none woken).
  app.get('/v1/responses/:id', { schema: params, config: { global: true } }, async (request) => {
    const stored = store.get(request.params.id);
    if (stored === undefined) throw notFound(request.params.id);
    return stored.response;
  });
  app.delete('/v1/responses/:id', { schema: params, config: { global: true } }, async (request) => {
    if (!store.delete(request.params.id)) throw notFound(request.params.id);
    return { id: request.params.id, object: 'response', deleted: true };
  });
};
