// One rank: a client process that waits at the barrier, then sends its share of the requests, either
// one after another (closed loop) or each at its planned arrival time (open loop, may overlap).
import { promptText, systemText } from './plan.ts';
import { authHeaders, type ChatTurn, describeNetworkError, sendChatRequest } from './request.ts';
import {
  type CoordinatorMessage,
  epochNow,
  type RankMessage,
  type RankPlan,
  type RequestRecord,
  type RequestTemplate,
} from './types.ts';

export type SendRequest = typeof sendChatRequest;

export async function runRankPlan(
  plan: RankPlan,
  template: RequestTemplate,
  goMs: number,
  onRecord: (record: RequestRecord) => void,
  options: { now?: () => number; send?: SendRequest; prompts?: Map<number, string> } = {},
): Promise<void> {
  const now = options.now ?? epochNow;
  const send = options.send ?? sendChatRequest;
  // A multi-turn rank's conversation: the shared system prompt, then each turn it sent and the reply it got.
  const history: ChatTurn[] =
    template.systemTokens > 0 ? [{ role: 'system', content: systemText(template.seed, template.systemTokens) }] : [];
  const request = (id: number) => {
    const prompt = options.prompts?.get(id) ?? promptText(template.seed, id, template.promptTokens);
    return send(
      {
        id,
        rank: plan.rank,
        url: template.url,
        apiKey: template.apiKey,
        model: template.model,
        history: [...history],
        prompt,
        maxTokens: template.maxTokens,
        timeoutMs: template.timeoutMs,
        keepReply: template.multiTurn,
      },
      now,
    ).then((record) => {
      if (template.multiTurn) {
        history.push({ role: 'user', content: prompt }, { role: 'assistant', content: record.reply ?? '' });
        delete record.reply; // the report needs the timings only
      }
      onRecord(record);
    });
  };

  const inFlight: Array<Promise<void>> = [];
  for (const { id, atMs } of plan.requests) {
    if (atMs === null) {
      await request(id); // closed loop: the next request leaves when this one has ended
      continue;
    }
    const wait = goMs + atMs - now();
    if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
    inFlight.push(request(id));
  }
  await Promise.all(inFlight);
}

/**
 * Opens the rank's connection before the barrier: GET /v1/models (any HTTP answer will do). The first
 * fetch in a process loads undici (tens of milliseconds, blocking) and the TCP connect comes with it;
 * neither should land in the first request's TTFT.
 */
export async function connect(template: RequestTemplate): Promise<void> {
  try {
    const response = await fetch(`${template.url}/v1/models`, {
      headers: authHeaders(template.apiKey),
      signal: AbortSignal.timeout(10_000),
    });
    await response.arrayBuffer();
  } catch (err) {
    throw new Error(`cannot reach ${template.url}: ${describeNetworkError(err)}`);
  }
}

/** The channel a rank talks to the coordinator over: `process` in a forked child. */
export interface CoordinatorChannel {
  send?: ((message: RankMessage, callback?: (error: Error | null) => void) => boolean) | undefined;
  on(event: 'message', listener: (message: CoordinatorMessage) => void): unknown;
}

/**
 * Serves the rank side of the barrier: on init builds the prompts, connects, and reports ready (or fatal);
 * on go runs the plan, sending each record as it completes, then done. Resolves once done or fatal has
 * been handed to the channel.
 */
export function serveRank(
  channel: CoordinatorChannel,
  options: { send?: SendRequest; connect?: (template: RequestTemplate) => Promise<void>; now?: () => number } = {},
): Promise<void> {
  const post = (message: RankMessage): Promise<void> =>
    new Promise((resolve) => {
      if (!channel.send) return resolve();
      channel.send(message, () => resolve());
    });
  return new Promise((resolve) => {
    let init: { plan: RankPlan; template: RequestTemplate; prompts: Map<number, string> } | null = null;
    channel.on('message', (message) => {
      if (message.type === 'init') {
        const { plan, template } = message;
        (async () => {
          const prompts = new Map(
            plan.requests.map(({ id }) => [id, promptText(template.seed, id, template.promptTokens)]),
          );
          await (options.connect ?? connect)(template);
          init = { plan, template, prompts };
        })().then(
          () => post({ type: 'ready', rank: plan.rank }),
          (err: unknown) =>
            post({ type: 'fatal', rank: plan.rank, message: (err as Error).message ?? String(err) }).then(resolve),
        );
        return;
      }
      if (message.type === 'go') {
        const ready = init;
        if (!ready) return;
        init = null; // a second go is ignored
        const rank = ready.plan.rank;
        const sendRecord = (record: RequestRecord): void => void post({ type: 'record', record });
        const runOptions = {
          prompts: ready.prompts,
          ...(options.send ? { send: options.send } : {}),
          ...(options.now ? { now: options.now } : {}),
        };
        runRankPlan(ready.plan, ready.template, message.goMs, sendRecord, runOptions).then(
          () => post({ type: 'done', rank }).then(resolve),
          (err: unknown) => post({ type: 'fatal', rank, message: (err as Error).message ?? String(err) }).then(resolve),
        );
      }
    });
  });
}
