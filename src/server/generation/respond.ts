// Answers a prepared request: one JSON body, or an SSE stream when it asked for one.
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { ServerDeps } from '../deps.ts';
import { SseStream, watchDisconnect } from '../sse.ts';
import { type Outcome, run, type TextSink } from './run.ts';
import type { PreparedGeneration, Presenter } from './types.ts';

export async function respond(
  deps: ServerDeps,
  request: FastifyRequest,
  reply: FastifyReply,
  job: PreparedGeneration,
  presenter: Presenter,
): Promise<unknown> {
  const abort = new AbortController();
  let gone = false;
  const clientGone = (): void => {
    gone = true;
    abort.abort();
  };
  if (!job.stream) {
    let text = '';
    const unwatch = watchDisconnect(reply.raw, clientGone);
    let outcome: Outcome;
    try {
      outcome = await run(deps, job, { onStart: () => {}, onText: (t) => (text += t) }, abort, () => gone, request.log);
    } finally {
      unwatch();
    }
    if (outcome.kind === 'gone') return abandon(reply);
    if (outcome.kind === 'failed') throw outcome.error;
    return presenter.completion(text, outcome.finish, outcome.usage);
  }

  const sse = new SseStream(reply.raw, {
    drainTimeoutMs: deps.config.streamDrainTimeoutMs,
    onAbort: (cause) => {
      request.log.info({ cause }, 'stream aborted; cancelling its request');
      clientGone();
    },
  });
  const sendAll = (chunks: readonly object[]): void => {
    for (const c of chunks) sse.send(c);
  };
  // The stream opens when the request gets a slot: refusals and deadlines while queued still get a status code.
  const open = (): void => {
    if (sse.opened || sse.closed) return;
    reply.hijack();
    sse.open(reply.getHeaders() as Record<string, string | number | string[]>);
    sendAll(presenter.open());
  };
  const sink: TextSink = {
    onStart: open,
    onText: (text) => {
      open();
      sendAll(presenter.text(text));
    },
  };
  const outcome = await run(deps, job, sink, abort, () => gone, request.log);
  if (outcome.kind === 'gone') return abandon(reply);
  if (outcome.kind === 'failed') {
    if (!sse.opened) throw outcome.error;
    sse.send(outcome.error.body());
    sse.end();
    return reply;
  }
  open();
  sendAll(presenter.finish(outcome.finish));
  if (job.includeUsage) sse.send(presenter.usageChunk(outcome.usage));
  sse.end();
  return reply;
}

/** The client is gone: nothing to send, just make sure the connection is released. */
function abandon(reply: FastifyReply): FastifyReply {
  if (!reply.sent) reply.hijack();
  if (!reply.raw.destroyed) reply.raw.destroy();
  return reply;
}
