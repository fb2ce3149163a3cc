// Answers prepared generations: one JSON body, or one SSE stream, for one choice or for n choices of one prompt.
// With n choices the first prefills the prompt and the others start from a copy of its KV once it has, so the
// prompt is decoded once.
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { ServerDeps } from '../deps.ts';
import { SseStream, watchDisconnect } from '../sse.ts';
import { type Outcome, run, type TextSink } from './run.ts';
import type { Finished, PreparedGeneration, Presenter, Timings, Usage } from './types.ts';

/** What one generation produced. */
export type Generated = { kind: 'finished'; text: string; done: Finished } | Exclude<Outcome, { kind: 'finished' }>;

/** Resolves with the leader's slot once its prompt is in the KV (its first text), or null if it never got there. */
class Prefilled {
  slot: number | null = null;
  #resolve: (slot: number | null) => void = () => {};
  readonly promise = new Promise<number | null>((r) => {
    this.#resolve = r;
  });
  started(slot: number): void {
    this.slot = slot;
  }
  done(): void {
    this.#resolve(this.slot);
  }
}

/** The followers' jobs: the leader's prompt, copied from its slot. */
function follow(job: PreparedGeneration, slot: number | null): PreparedGeneration {
  return slot === null ? job : { ...job, copyFrom: { slot, tokens: job.tokens } };
}

/** Prompt tokens counted once, completions summed: n choices of one prompt. */
export function totalUsage(all: readonly Finished[]): Usage {
  const first = all[0]?.usage;
  const prompt = first?.prompt_tokens ?? 0;
  const completion = all.reduce((n, d) => n + d.usage.completion_tokens, 0);
  return {
    prompt_tokens: prompt,
    completion_tokens: completion,
    total_tokens: prompt + completion,
    prompt_tokens_details: { cached_tokens: first?.prompt_tokens_details.cached_tokens ?? 0 },
  };
}

/** For the request's log line: what its generations produced. */
function note(request: FastifyRequest, all: readonly Finished[]): void {
  const first = all[0];
  if (first === undefined) return;
  request.generation = {
    promptTokens: first.usage.prompt_tokens,
    outputTokens: all.reduce((n, d) => n + d.usage.completion_tokens, 0),
    ttftMs: first.ttftMs === null ? null : Math.round(first.ttftMs),
  };
}

/** Runs one generation to its end without streaming. */
export async function generateText(
  deps: ServerDeps,
  request: FastifyRequest,
  reply: FastifyReply,
  job: PreparedGeneration,
  prefilled?: Prefilled,
): Promise<Generated> {
  const abort = new AbortController();
  let gone = false;
  let text = '';
  const unwatch = watchDisconnect(reply.raw, () => {
    gone = true;
    abort.abort();
  });
  try {
    const outcome = await run(
      deps,
      job,
      {
        onStart: (info) => prefilled?.started(info.slot),
        onText: (t) => {
          text += t;
          prefilled?.done();
        },
      },
      abort,
      () => gone,
      request.log,
    );
    return outcome.kind === 'finished' ? { kind: 'finished', text, done: outcome.done } : outcome;
  } finally {
    prefilled?.done();
    unwatch();
  }
}

/**
 * Answers `jobs` (one per choice, same prompt) with `presenters` (one per choice). Not streamed, one choice: its
 * completion; several: `combine` merges their completions.
 */
export async function respond<Body extends object>(
  deps: ServerDeps,
  request: FastifyRequest,
  reply: FastifyReply,
  jobs: readonly PreparedGeneration[],
  presenters: readonly Presenter<Body>[],
  combine?: (bodies: Body[], usage: Usage) => Body,
): Promise<Body> {
  // A streamed (or abandoned) answer is already sent: Fastify takes the returned reply as "handled".
  const handled = (r: FastifyReply): Body => r as unknown as Body;
  const [leader, ...followers] = jobs;
  if (leader === undefined) throw new Error('respond() needs a job');
  if (!leader.stream) {
    const prefilled = new Prefilled();
    const first = generateText(deps, request, reply, leader, prefilled);
    const rest = followers.map(async (job) => generateText(deps, request, reply, follow(job, await prefilled.promise)));
    const all = await Promise.all([first, ...rest]);
    if (all.some((g) => g.kind === 'gone')) return handled(abandon(reply));
    const failed = all.find((g) => g.kind === 'failed');
    if (failed?.kind === 'failed') throw failed.error;
    const finished = all.filter((g): g is Extract<Generated, { kind: 'finished' }> => g.kind === 'finished');
    note(
      request,
      finished.map((g) => g.done),
    );
    const bodies = finished.map((g, i) => {
      const presenter = presenters[i];
      if (presenter === undefined) throw new Error(`no presenter for choice ${i}`);
      return presenter.completion(g.text, g.done);
    });
    const [only] = bodies;
    if (bodies.length === 1 && only !== undefined) return only;
    if (combine === undefined) throw new Error('several choices need a combine()');
    return combine(bodies, totalUsage(finished.map((g) => g.done)));
  }

  // One controller per choice: a stop string ends its own choice; the client leaving ends them all.
  const aborts: AbortController[] = [];
  let gone = false;
  const sse = new SseStream(reply.raw, {
    drainTimeoutMs: deps.config.streamDrainTimeoutMs,
    ...(deps.config.ssePingMs !== undefined ? { pingMs: deps.config.ssePingMs } : {}),
    onAbort: (cause) => {
      request.log.info({ cause }, 'stream aborted; cancelling its request');
      gone = true;
      for (const a of aborts) a.abort();
    },
  });
  const named = presenters[0]?.namedEvents === true;
  const sendAll = (chunks: readonly object[]): void => {
    for (const c of chunks) sse.send(c, named ? String((c as { type?: unknown }).type) : undefined);
  };
  // The stream opens when the request gets a slot: refusals and deadlines while queued still get a status code.
  const opened = new Set<number>();
  const open = (i: number): void => {
    if (sse.closed) return;
    if (!sse.opened) {
      reply.hijack();
      sse.open(reply.getHeaders() as Record<string, string | number | string[]>);
    }
    if (!opened.has(i)) {
      opened.add(i);
      sendAll(presenters[i]?.open() ?? []);
    }
  };
  const prefilled = new Prefilled();
  const runChoice = (i: number, job: PreparedGeneration): Promise<Outcome> => {
    const presenter = presenters[i];
    let timings: (() => Timings) | undefined;
    // timings_per_token: the last chunk of each batch carries the timings so far, as llama-server's do.
    const withTimings = (chunks: object[]): object[] => {
      const last = chunks.at(-1);
      if (!job.timingsPerToken || timings === undefined || last === undefined) return chunks;
      return [...chunks.slice(0, -1), { ...last, timings: timings() }];
    };
    const sink: TextSink = {
      onStart: (info) => {
        timings = info.timings;
        if (i === 0) prefilled.started(info.slot);
        open(i);
      },
      onText: (text, tokens) => {
        if (i === 0) prefilled.done();
        open(i);
        sendAll(withTimings(presenter?.text(text, tokens) ?? []));
      },
      onProgress: (p) => {
        open(i);
        if (presenter?.progress) sendAll(withTimings([presenter.progress(p)]));
      },
    };
    const abort = new AbortController();
    aborts.push(abort);
    if (gone) abort.abort();
    return run(deps, job, sink, abort, () => gone, request.log).finally(() => {
      if (i === 0) prefilled.done();
    });
  };
  const outcomes = await Promise.all([
    runChoice(0, leader),
    ...followers.map(async (job, k) => runChoice(k + 1, follow(job, await prefilled.promise))),
  ]);
  if (outcomes.some((o) => o.kind === 'gone')) return handled(abandon(reply));
  const failed = outcomes.find((o) => o.kind === 'failed');
  if (failed?.kind === 'failed') {
    if (!sse.opened) throw failed.error;
    const failure = presenters[0]?.failure;
    sendAll(failure ? failure(failed.error) : [failed.error.body()]);
    sse.end(presenters[0]?.doneEvent !== false);
    return handled(reply);
  }
  const done = outcomes.map((o) => (o.kind === 'finished' ? o.done : undefined)).filter((d) => d !== undefined);
  note(request, done);
  const doneEvent = presenters[0]?.doneEvent !== false;
  done.forEach((d, i) => {
    open(i);
    // One usage chunk at the end, for all choices.
    sendAll(
      presenters[i]?.finish(
        jobs.length === 1 ? d : { ...d, usage: totalUsage(done) },
        leader.includeUsage && i === done.length - 1,
      ) ?? [],
    );
  });
  sse.end(doneEvent);
  return handled(reply);
}

/** The client is gone: nothing to send, just make sure the connection is released. */
export function abandon(reply: FastifyReply): FastifyReply {
  if (!reply.sent) reply.hijack();
  if (!reply.raw.destroyed) reply.raw.destroy();
  return reply;
}
