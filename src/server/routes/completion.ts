// llama-server's own completion route, POST /completion (and /completions): its request fields and its response
// shape (content, tokens, stop, timings, generation_settings, completion_probabilities, ...), streamed as bare
// `data:` events. Several prompts at once answer with an array.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { chatLayerRefusal, constraintOf } from '../chat/request.ts';
import { type ServerDeps, servedBy } from '../deps.ts';
import { invalidRequest } from '../errors.ts';
import { completionProbabilities } from '../generation/logprobs.ts';
import { prepareGeneration } from '../generation/params.ts';
import { promptsOf } from '../generation/prompt.ts';
import { respond } from '../generation/respond.ts';
import type { Finished, GeneratedToken, PreparedGeneration, Presenter } from '../generation/types.ts';
import { NativeCompletionBody } from '../schemas.ts';
import { grammarFor } from './completions.ts';

/** response_fields: only these ("a/b" lifts a nested field to the top under its full name). */
export function pickFields(body: Record<string, unknown>, fields: readonly string[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const field of fields) {
    let value: unknown = body;
    for (const key of field.split('/')) {
      value = typeof value === 'object' && value !== null ? (value as Record<string, unknown>)[key] : undefined;
    }
    if (value !== undefined) out[field] = value;
  }
  return out;
}

function presenter(
  deps: ServerDeps,
  index: number,
  job: PreparedGeneration,
  promptText: string,
  responseFields: readonly string[] | null,
): Presenter {
  const postSampling = job.options.postSampling === true;
  const probs = (tokens: readonly GeneratedToken[]): Record<string, unknown> =>
    job.nProbs > 0 ? { completion_probabilities: completionProbabilities(deps.model, tokens, postSampling) } : {};
  const final = (content: string, done: Finished): Record<string, unknown> => ({
    index,
    content,
    tokens: job.returnTokens || job.stream ? done.tokens.map((t) => t.id) : [],
    id_slot: done.slot ?? -1,
    stop: true,
    model: deps.config.modelId,
    tokens_predicted: done.usage.completion_tokens,
    tokens_evaluated: done.usage.prompt_tokens,
    generation_settings: job.settings,
    prompt: promptText,
    has_new_line: content.includes('\n'),
    truncated: done.truncated,
    stop_type: done.stopType,
    stopping_word: done.stoppingWord,
    tokens_cached: done.usage.prompt_tokens + done.usage.completion_tokens,
    timings: done.timings,
  });
  let streamed = '';
  return {
    doneEvent: false,
    open: () => [],
    text: (text, tokens) => {
      streamed += text;
      return [
        {
          index,
          content: text,
          tokens: tokens.map((t) => t.id),
          stop: false,
          id_slot: -1,
          tokens_predicted: tokens.length,
          tokens_evaluated: job.tokens.length,
          ...probs(tokens),
        },
      ];
    },
    finish: (done) => {
      const body = final('', done);
      body.has_new_line = streamed.includes('\n');
      body.tokens = [];
      return [responseFields === null ? body : pickFields(body, responseFields)];
    },
    progress: (p) => ({ index, content: '', tokens: [], stop: false, prompt_progress: p }),
    completion: (text, done) => {
      const body = { ...final(text, done), ...probs(done.tokens) };
      return responseFields === null ? body : pickFields(body, responseFields);
    },
  };
}

export const completionRoute: FastifyPluginAsyncTypebox<{ deps: ServerDeps }> = async (app, { deps: base }) => {
  const handler = async (request: FastifyRequest<{ Body: NativeCompletionBody }>, reply: FastifyReply) => {
    const deps = servedBy(request, base);
    const body = request.body;
    const prompts = promptsOf(deps.model, body.prompt);
    if (prompts.length > 1 && body.stream === true)
      throw invalidRequest('Several prompts are not streamed: send them one at a time.', 'prompt', 'invalid_value');
    const grammar = await grammarFor(deps.chat, constraintOf(body, deps.config.limits)).catch((err: unknown) =>
      Promise.reject(chatLayerRefusal(err)),
    );
    const fields = body.response_fields && body.response_fields.length > 0 ? body.response_fields : null;
    // llama-server reads max_tokens as n_predict's alias here too (n_predict first).
    const limit =
      (body.n_predict === undefined || body.n_predict === null) &&
      body.max_tokens !== undefined &&
      body.max_tokens !== null
        ? { maxTokens: body.max_tokens, maxTokensField: 'max_tokens' }
        : {};
    const jobs = prompts.map((tokens) => prepareGeneration(deps, request, body, tokens, { grammar, ...limit }));
    const presenters = jobs.map((job, i) =>
      presenter(deps, i, job, deps.model.detokenize(job.tokens, { unparseSpecial: true }), fields),
    );
    if (jobs.length === 1) return respond(deps, request, reply, jobs, presenters);
    const results = await Promise.all(
      jobs.map((job, i) => respond(deps, request, reply, [job], [presenters[i] as Presenter])),
    );
    return reply.sent ? reply : results;
  };
  for (const url of ['/completion', '/completions']) {
    app.post<{ Body: NativeCompletionBody }>(url, { schema: { body: NativeCompletionBody } }, handler);
  }
};
