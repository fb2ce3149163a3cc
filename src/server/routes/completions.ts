// POST /v1/completions (OpenAI's legacy text completions): the prompt as it is (text, token ids, a mix, or several
// prompts), optionally constrained by a JSON schema or a grammar (llama-server's json_schema / grammar fields).
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { ChatLayer, GrammarConstraint } from '../chat/layer.ts';
import { type Constraint, chatLayerRefusal, constraintOf, userGrammar } from '../chat/request.ts';
import type { ServedModel } from '../config.ts';
import type { ServerDeps } from '../deps.ts';
import { invalidRequest } from '../errors.ts';
import { newCompletionId, nowSeconds } from '../generation/ids.ts';
import { completionLogprobs } from '../generation/logprobs.ts';
import { prepareGeneration } from '../generation/params.ts';
import { promptsOf } from '../generation/prompt.ts';
import { respond } from '../generation/respond.ts';
import type { FinishReason, PreparedGeneration, Presenter } from '../generation/types.ts';
import { CompletionBody } from '../schemas.ts';
import { choiceJobs } from './chat.ts';

/** A raw prompt's grammar: a schema's starts at its root, as a user's does (no chat template before it). */
export async function grammarFor(chat: ChatLayer, constraint: Constraint | null): Promise<GrammarConstraint | null> {
  if (constraint === null) return null;
  const text =
    constraint.kind === 'json_schema'
      ? await chat.grammarFromSchema(constraint.schema)
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
): Presenter {
  const usageNull = job.includeUsage ? { usage: null } : {};
  let offset = echo.length;
  const chunk = (text: string, finish: FinishReason | null, probs: object | null = null): object => ({
    ...head,
    object: 'text_completion',
    choices: [{ index, text, logprobs: probs, finish_reason: finish }],
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
      ...chunk(
        echo + text,
        done.finish,
        logprobs === null ? null : completionLogprobs(model, done.tokens, logprobs, echo.length),
      ),
      usage: done.usage,
      timings: done.timings,
    }),
  };
}

export const completionRoutes: FastifyPluginAsyncTypebox<{ deps: ServerDeps }> = async (app, { deps }) => {
  app.post('/v1/completions', { schema: { body: CompletionBody } }, async (request, reply) => {
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
    const grammar = await grammarFor(deps.chat, constraintOf(body)).catch((err: unknown) =>
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
    if (prompts.length > 1) {
      // Several prompts: each its own generation, one choice each, in order.
      const bodies = await Promise.all(
        jobs.map((job, i) => respond(deps, request, reply, [job], [presenters[i] as Presenter])),
      );
      if (reply.sent) return reply;
      const usage = (bodies as { usage: { prompt_tokens: number; completion_tokens: number } }[]).reduce(
        (u, b) => ({
          prompt_tokens: u.prompt_tokens + b.usage.prompt_tokens,
          completion_tokens: u.completion_tokens + b.usage.completion_tokens,
        }),
        { prompt_tokens: 0, completion_tokens: 0 },
      );
      return {
        ...(bodies[0] as object),
        choices: bodies.flatMap((b) => (b as { choices: unknown[] }).choices),
        usage: { ...usage, total_tokens: usage.prompt_tokens + usage.completion_tokens },
      };
    }
    return respond(deps, request, reply, jobs, presenters, (bodies, usage) => ({
      ...(bodies[0] as object),
      choices: bodies.flatMap((b) => (b as { choices: unknown[] }).choices),
      usage,
    }));
  });
};
