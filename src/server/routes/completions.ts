// POST /v1/completions (OpenAI's legacy text completions): the prompt as it is (text, token ids, a mix, or several
// prompts), optionally constrained by a JSON schema or a grammar (llama-server's json_schema / grammar fields).
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { Grammar } from '../../scheduler/decoder.ts';
import type { ChatLayer } from '../chat/layer.ts';
import { type Constraint, chatLayerRefusal, constraintOf, userGrammar } from '../chat/request.ts';
import { type ServerDeps, servedBy } from '../deps.ts';
import { invalidRequest } from '../errors.ts';
import { newCompletionId, nowSeconds } from '../generation/ids.ts';
import { completionLogprobs } from '../generation/logprobs.ts';
import { prepareGeneration } from '../generation/params.ts';
import { promptsOf } from '../generation/prompt.ts';
import { respond } from '../generation/respond.ts';
import type { FinishReason, PreparedGeneration, Presenter, Usage } from '../generation/types.ts';
import type { ServedModel } from '../options.ts';
import { TextCompletionResponse } from '../responses.ts';
import { CompletionBody } from '../schemas.ts';
import { choiceJobs } from './chat.ts';

/** A raw prompt's grammar: a schema's starts at its root, as a user's does (no chat template before it). */
export async function grammarFor(chat: ChatLayer, constraint: Constraint | null): Promise<Grammar | null> {
  if (constraint === null) return null;
  // A schema's grammar is parsed too: a schema can convert into a grammar llama.cpp then refuses (a repetition
  // past its limit), which must be this request's 400, not a failure when its slot's sampler is made.
  const text =
    constraint.kind === 'json_schema'
      ? await chat.checkGrammar(await chat.grammarFromSchema(constraint.schema))
      : await chat.checkGrammar(constraint.grammar);
  return constraint.kind === 'json_schema' ? { ...userGrammar(text), kind: 1 } : userGrammar(text);
}

interface Head {
  id: string;
  created: number;
  model: string;
  system_fingerprint: string;
}

function presenter(
  head: Head,
  index: number,
  job: PreparedGeneration,
  model: ServedModel,
  logprobs: number | null,
  echo: string,
): Presenter<TextCompletionResponse> {
  const usageNull = job.includeUsage ? { usage: null } : {};
  let offset = echo.length;
  const choice = (text: string, finish: FinishReason | null, probs: object | null) => ({
    index,
    text,
    logprobs: probs,
    finish_reason: finish,
  });
  const chunk = (text: string, finish: FinishReason | null, probs: object | null = null): object => ({
    ...head,
    object: 'text_completion',
    choices: [choice(text, finish, probs)],
    ...usageNull,
  });
  return {
    open: () => (echo === '' ? [] : [chunk(echo, null)]),
    text: (text, tokens) => {
      const probs = logprobs === null ? null : completionLogprobs(model, tokens, logprobs, offset);
      offset += text.length;
      return [chunk(text, null, probs)];
    },
    finish: (done, includeUsage) => {
      const last = chunk('', done.finish) as Record<string, unknown>;
      if (!includeUsage) return [{ ...last, timings: done.timings }];
      return [last, { ...head, object: 'text_completion', choices: [], usage: done.usage, timings: done.timings }];
    },
    completion: (text, done) => ({
      ...head,
      object: 'text_completion',
      choices: [
        choice(
          echo + text,
          done.finish,
          logprobs === null ? null : completionLogprobs(model, done.tokens, logprobs, echo.length),
        ),
      ],
      usage: done.usage,
      timings: done.timings,
    }),
  };
}

export const completionRoutes: FastifyPluginAsyncTypebox<{ deps: ServerDeps }> = async (app, { deps: base }) => {
  const schema = { body: CompletionBody, response: { 200: TextCompletionResponse } };
  app.post('/v1/completions', { schema }, async (request, reply) => {
    const deps = servedBy(request, base);
    const body = request.body;
    if (typeof body.suffix === 'string' && body.suffix !== '')
      throw invalidRequest("'suffix' is not supported by this server.", 'suffix', 'unsupported_parameter');
    if (body.best_of !== undefined && body.best_of !== null && body.best_of !== (body.n ?? 1)) {
      throw invalidRequest(
        `Invalid value for 'best_of': this server returns every choice it generates, so best_of must equal n (got ${body.best_of}).`,
        'best_of',
        'invalid_value',
      );
    }
    const logprobs = body.logprobs ?? null;
    if (body.echo === true && logprobs !== null)
      throw invalidRequest(
        "'echo' with 'logprobs' is not supported: prompt logprobs are not computed.",
        'echo',
        'unsupported_parameter',
      );
    const prompts = promptsOf(deps.model, body.prompt);
    const n = body.n ?? 1;
    if (prompts.length > 1 && (body.stream === true || n > 1))
      throw invalidRequest('Several prompts are answered one choice each and not streamed.', 'prompt', 'invalid_value');
    const grammar = await grammarFor(deps.chat, constraintOf(body, deps.config.limits)).catch((err: unknown) =>
      Promise.reject(chatLayerRefusal(err)),
    );
    const head: Head = {
      id: newCompletionId('cmpl'),
      created: nowSeconds(),
      model: deps.config.modelId,
      system_fingerprint: deps.config.buildInfo,
    };
    const jobs = prompts.flatMap((tokens) =>
      choiceJobs(
        prepareGeneration(deps, request, body, tokens, { grammar, maxTokens: body.max_tokens, topLogprobs: logprobs }),
        n,
      ),
    );
    // echo: the prompt as the client sent it; token prompts as their text.
    const texts = Array.isArray(body.prompt) ? body.prompt : [body.prompt];
    const echoOf = (job: PreparedGeneration, k: number): string => {
      if (body.echo !== true) return '';
      const given = prompts.length > 1 ? texts[k] : body.prompt;
      return typeof given === 'string' ? given : deps.model.detokenize([...job.tokens], { removeSpecial: true });
    };
    const presenters = jobs.map((job, i) =>
      presenter(head, i, job, deps.model, logprobs, echoOf(job, Math.floor(i / n))),
    );
    const merge = (bodies: TextCompletionResponse[], usage: Usage): TextCompletionResponse => ({
      ...(bodies[0] as TextCompletionResponse),
      choices: bodies.flatMap((b) => b.choices),
      usage,
    });
    if (prompts.length > 1) {
      // Several prompts: each its own generation, one choice each, in order; usage summed over them.
      const bodies = await Promise.all(
        jobs.map((job, i) =>
          respond(deps, request, reply, [job], [presenters[i] as Presenter<TextCompletionResponse>]),
        ),
      );
      if (reply.sent) return reply;
      const sum = (f: (u: Usage) => number) => bodies.reduce((n, b) => n + f(b.usage), 0);
      return merge(bodies, {
        prompt_tokens: sum((u) => u.prompt_tokens),
        completion_tokens: sum((u) => u.completion_tokens),
        total_tokens: sum((u) => u.total_tokens),
        prompt_tokens_details: { cached_tokens: sum((u) => u.prompt_tokens_details.cached_tokens) },
      });
    }
    return respond(deps, request, reply, jobs, presenters, merge);
  });
};
