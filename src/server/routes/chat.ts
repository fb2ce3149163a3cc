// POST /v1/chat/completions (and llama-server's /chat/completions): the request rendered by the chat layer (the
// model's Jinja template with tools, structured output and reasoning), generation constrained by its grammar, the
// output parsed back into content, reasoning and tool calls. n > 1: choices from parallel slots, one prefill.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { ToolChoiceError } from '../../errors.ts';
import type { Grammar, SamplingOptions } from '../../scheduler/decoder.ts';
import type { ChatPrompt } from '../chat/layer.ts';
import { chatPresenter } from '../chat/presenter.ts';
import { chatLayerRefusal, constraintOf, renderRequest, userGrammar } from '../chat/request.ts';
import { type ServerDeps, servedBy } from '../deps.ts';
import { ApiError, invalidRequest } from '../errors.ts';
import { newCompletionId, nowSeconds } from '../generation/ids.ts';
import { messageStarts, prepareGeneration, tokenizePrompt } from '../generation/params.ts';
import { respond } from '../generation/respond.ts';
import type { PreparedGeneration } from '../generation/types.ts';
import { checkMessages, checkTools } from '../limits.ts';
import { ChatCompletionResponse } from '../responses.ts';
import { ChatCompletionBody } from '../schemas.ts';

/**
 * Renders the conversation (off the main thread); a refusal by the template or llama.cpp is a 400. `promptOnly`: the
 * prompt is all that is wanted (token counts, /apply-template), so a call the template cannot force is no refusal.
 */
export async function renderChat(
  deps: ServerDeps,
  body: ChatCompletionBody,
  options: { promptOnly?: boolean } = {},
): Promise<{ prompt: ChatPrompt; grammar: Grammar | null }> {
  const limits = deps.config.limits;
  // Counted before anything renders or checks a schema: the work below grows with them.
  checkMessages(body.messages.length, limits);
  checkTools((body.tools ?? []).length, limits);
  const constraint = constraintOf(body, limits);
  if (body.continue_final_message === true && body.add_generation_prompt === true) {
    throw invalidRequest(
      "'add_generation_prompt' and 'continue_final_message' cannot both be true.",
      'continue_final_message',
      'invalid_value',
    );
  }
  // A user's grammar is checked before anything renders: whichever path carries it, a bad one is a 400.
  const checked =
    constraint?.kind === 'grammar'
      ? await deps.chat.checkGrammar(constraint.grammar).catch((err: unknown) => Promise.reject(chatLayerRefusal(err)))
      : null;
  const request = renderRequest(body, constraint, deps.chat.supportsTools, limits);
  const prompt = await deps.chat
    .apply(request)
    .catch((err: unknown) =>
      // tool_choice renders no differently: only its grammar is refused.
      options.promptOnly && err instanceof ToolChoiceError
        ? deps.chat.apply({ ...request, tool_choice: 'auto' })
        : Promise.reject(err),
    )
    .catch((err: unknown) => Promise.reject(chatLayerRefusal(err)));
  // The chat layer's own grammar (from a schema or tools) is parsed before the request queues: a schema can
  // convert into a grammar llama.cpp then refuses, which is this request's 400, not a failed generation.
  if (prompt.grammar !== null && prompt.grammar.text !== checked)
    await deps.chat.checkGrammar(prompt.grammar.text).catch((err: unknown) => Promise.reject(chatLayerRefusal(err)));
  // A user's grammar on a Jinja template: llama.cpp's chat layer leaves it to the caller, as llama-server applies
  // it, to the raw output from its root.
  const grammar = prompt.grammar ?? (checked !== null ? userGrammar(checked) : null);
  // Asked for a constraint, answered with one: never free text where JSON or a tool call was requested.
  if (constraint !== null && grammar === null) {
    throw new ApiError(500, 'server_error', 'The chat layer produced no grammar for a constrained request', {
      code: 'constraint_lost',
    });
  }
  return { prompt, grammar };
}

/**
 * llama.cpp's reasoning budget, as llama-server passes it: the format's thinking tags whenever it has them (with a
 * lazy tool grammar they also keep the grammar out of the reasoning), and the request's budget (-1: none). A
 * template without a reasoning block has nothing to bound: the budget holds as it is.
 */
export function reasoningBudgetOf(
  body: Pick<ChatCompletionBody, 'reasoning_budget_tokens' | 'thinking_budget_tokens'>,
  prompt: ChatPrompt,
): SamplingOptions['reasoningBudget'] {
  const tokens = body.reasoning_budget_tokens ?? body.thinking_budget_tokens ?? -1;
  const ends = prompt.reasoningEnds ?? [];
  const start = prompt.reasoningStart ?? '';
  if (ends.length === 0 || start === '') return undefined;
  return { tokens, start, ends, generationPrompt: prompt.generationPrompt ?? '' };
}

function refuseUnsupported(body: ChatCompletionBody): void {
  if (body.top_logprobs !== undefined && body.top_logprobs !== null && body.logprobs !== true) {
    throw invalidRequest("'top_logprobs' needs 'logprobs': true.", 'top_logprobs', 'invalid_value');
  }
}

/** n jobs of one prompt; choices after the first get their own seed, so they differ. */
export function choiceJobs(job: PreparedGeneration, n: number): PreparedGeneration[] {
  return Array.from({ length: n }, (_, i) =>
    i === 0
      ? job
      : {
          ...job,
          options: {
            ...job.options,
            sampling: { ...job.options.sampling, seed: ((job.options.sampling.seed ?? 0) + i) >>> 0 },
          },
        },
  );
}

/** A chat body rendered, tokenized and made one job: what every route on the chat path runs. */
export interface PreparedChat {
  prompt: ChatPrompt;
  tokens: number[];
  job: PreparedGeneration;
}

/**
 * Renders `body` and prepares its generation. `limit`: the token limit as the route's API names it (chat's
 * max_completion_tokens or max_tokens, the Responses API's max_output_tokens, Anthropic's max_tokens).
 */
export async function prepareChat(
  deps: ServerDeps,
  request: FastifyRequest,
  body: ChatCompletionBody,
  limit: { value: number | null | undefined; field: string },
): Promise<PreparedChat> {
  const { prompt, grammar } = await renderChat(deps, body);
  const tokens = tokenizePrompt(deps.model, prompt.prompt);
  const job = prepareGeneration(deps, request, body, tokens, {
    reasoningBudget: reasoningBudgetOf(body, prompt),
    grammar,
    preservedTokens: prompt.preservedTokens,
    userStarts: messageStarts(deps.model, tokens, prompt.userStarts ?? []),
    stop: prompt.additionalStops,
    maxTokens: limit.value,
    maxTokensField: limit.field,
    topLogprobs: body.logprobs === true ? (body.top_logprobs ?? 0) : null,
  });
  return { prompt, tokens, job };
}

export const chatRoutes: FastifyPluginAsyncTypebox<{ deps: ServerDeps }> = async (app, { deps: base }) => {
  const handler = async (request: FastifyRequest<{ Body: ChatCompletionBody }>, reply: FastifyReply) => {
    const deps = servedBy(request, base);
    const body = request.body;
    refuseUnsupported(body);
    const ownLimit = body.max_completion_tokens !== undefined && body.max_completion_tokens !== null;
    const { prompt, tokens, job } = await prepareChat(deps, request, body, {
      value: ownLimit ? body.max_completion_tokens : body.max_tokens,
      field: ownLimit ? 'max_completion_tokens' : 'max_tokens',
    });
    const n = body.n ?? 1;
    const head = {
      id: newCompletionId('chatcmpl'),
      created: nowSeconds(),
      model: deps.config.modelId,
      systemFingerprint: deps.config.buildInfo,
      includeUsage: job.includeUsage,
      topLogprobs: body.logprobs === true ? (body.top_logprobs ?? 0) : null,
      verbose: job.verbose
        ? { prompt: deps.model.detokenize(tokens, { unparseSpecial: true }), generation_settings: job.settings }
        : null,
    };
    const presenters = Array.from({ length: n }, (_, index) =>
      chatPresenter({ ...head, index }, deps.chat.parser(prompt.parserConfig), deps.model),
    );
    return respond(deps, request, reply, choiceJobs(job, n), presenters, ([first, ...rest], usage) => ({
      ...(first as ChatCompletionResponse),
      choices: [first, ...rest].flatMap((b) => b?.choices ?? []),
      usage,
    }));
  };
  for (const url of ['/v1/chat/completions', '/chat/completions']) {
    app.post(url, { schema: { body: ChatCompletionBody, response: { 200: ChatCompletionResponse } } }, handler);
  }
  // llama-server's token count of a conversation, as it would be prompted.
  for (const url of ['/v1/chat/completions/input_tokens', '/chat/completions/input_tokens']) {
    app.post(url, { schema: { body: ChatCompletionBody } }, async (request) => {
      const deps = servedBy(request, base);
      const { prompt } = await renderChat(deps, request.body, { promptOnly: true });
      return { object: 'response.input_tokens', input_tokens: tokenizePrompt(deps.model, prompt.prompt).length };
    });
  }
};
