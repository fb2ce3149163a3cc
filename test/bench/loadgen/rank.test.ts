import t from 'tap';
import { planRanks } from '../../../src/bench/loadgen/plan.ts';
import { runRankPlan, serveRank } from '../../../src/bench/loadgen/rank.ts';
import type { ChatRequest } from '../../../src/bench/loadgen/request.ts';
import type {
  CoordinatorMessage,
  RankMessage,
  RequestRecord,
  RequestTemplate,
} from '../../../src/bench/loadgen/types.ts';
import { closedPort } from './fake-server.ts';

const template: RequestTemplate = {
  url: 'http://127.0.0.1:1',
  apiKey: null,
  model: null,
  maxTokens: 4,
  promptTokens: 8,
  systemTokens: 0,
  multiTurn: false,
  seed: 1,
  timeoutMs: 1000,
};
const now = () => performance.timeOrigin + performance.now();
const tick = () => new Promise((resolve) => setImmediate(resolve));
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

const record = (id: number, rank: number, sendMs = 1, endMs = 3): RequestRecord => ({
  id,
  rank,
  sendMs,
  chunkMs: [],
  endMs,
  status: 200,
  ok: true,
  errorKind: null,
  error: null,
  promptTokens: 1,
  outputTokens: 1,
  outputTokensFrom: 'usage',
  finishReason: 'stop',
});

/** A request that takes `ms` and records when it ran. */
const slowSend =
  (ms: number) =>
  async (r: ChatRequest): Promise<RequestRecord> => {
    const start = now();
    await sleep(ms);
    return record(r.id, r.rank, start, now());
  };

t.test('closed loop: each request leaves when the previous one has ended', async (t) => {
  const plan = { rank: 0, requests: [0, 1, 2].map((id) => ({ id, atMs: null })) };
  const records: RequestRecord[] = [];
  await runRankPlan(plan, template, now(), (r) => records.push(r), { send: slowSend(30) });
  t.same(
    records.map((r) => r.id),
    [0, 1, 2],
  );
  for (let k = 1; k < records.length; k++)
    t.ok((records[k]?.sendMs ?? 0) >= (records[k - 1]?.endMs ?? Infinity), `request ${k} after ${k - 1}`);
});

t.test('open loop: requests leave at their arrival times and overlap within a rank', async (t) => {
  const plan = { rank: 0, requests: [0, 40, 80].map((atMs, id) => ({ id, atMs })) };
  const records: RequestRecord[] = [];
  const go = now() + 20;
  await runRankPlan(plan, template, go, (r) => records.push(r), { send: slowSend(150) });
  const sorted = [...records].sort((a, b) => a.id - b.id);
  sorted.forEach((r, k) => {
    const late = r.sendMs - (go + k * 40);
    t.ok(late >= -2 && late < 60, `request ${k} sent ${late.toFixed(1)} ms after its arrival time`);
  });
  t.ok((sorted[2]?.sendMs ?? Infinity) < (sorted[0]?.endMs ?? 0), 'the third left before the first ended');
});

t.test('rank side: ready after init, nothing before go, records then done', async (t) => {
  const sent: RankMessage[] = [];
  let listener: (m: CoordinatorMessage) => void = () => {};
  const channel = {
    send: (m: RankMessage, cb?: (e: Error | null) => void) => {
      sent.push(m);
      cb?.(null);
      return true;
    },
    on: (_event: 'message', l: (m: CoordinatorMessage) => void) => {
      listener = l;
    },
  };
  const calls: Array<{ id: number; prompt: string }> = [];
  const served = serveRank(channel, {
    connect: async () => {},
    send: async (r) => {
      calls.push({ id: r.id, prompt: r.prompt });
      return record(r.id, r.rank);
    },
  });
  const plan = planRanks({ requests: 4, ranks: 2, rate: null, seed: 1 })[1];
  if (!plan) throw new Error('no plan');
  listener({ type: 'init', plan, template });
  await tick();
  t.same(sent, [{ type: 'ready', rank: 1 }]);
  t.same(calls, [], 'no request before go');
  listener({ type: 'go', goMs: performance.timeOrigin + performance.now() });
  await served;
  t.same(
    calls.map((c) => c.id),
    [1, 3],
  );
  t.ok(calls.every((c) => c.prompt.length >= 8 * 4));
  t.same(
    sent.map((m) => m.type),
    ['ready', 'record', 'record', 'done'],
  );
});

t.test('rank side: a rank that cannot connect reports fatal instead of ready', async (t) => {
  const sent: RankMessage[] = [];
  let listener: (m: CoordinatorMessage) => void = () => {};
  const served = serveRank({
    send: (m: RankMessage, cb?: (e: Error | null) => void) => {
      sent.push(m);
      cb?.(null);
      return true;
    },
    on: (_event: 'message', l: (m: CoordinatorMessage) => void) => {
      listener = l;
    },
  });
  const plan = planRanks({ requests: 1, ranks: 1, rate: null, seed: 1 })[0];
  if (!plan) throw new Error('no plan');
  listener({ type: 'init', plan, template: { ...template, url: `http://127.0.0.1:${await closedPort()}` } });
  await served;
  t.equal(sent.length, 1);
  t.match(sent[0], { type: 'fatal', rank: 0, message: /^cannot reach http:\/\/127\.0\.0\.1:\d+: .*ECONNREFUSED/ });
});

t.test(
  'a shared system prompt opens every request; a multi-turn rank resends its turns and the replies it got',
  async (t) => {
    const sent: ChatRequest[] = [];
    const replying = async (r: ChatRequest): Promise<RequestRecord> => {
      sent.push(r);
      return { ...record(r.id, r.rank), ...(r.keepReply ? { reply: `reply to ${r.id}` } : {}) };
    };
    const plan = { rank: 0, requests: [0, 1, 2].map((id) => ({ id, atMs: null })) };
    const records: RequestRecord[] = [];
    await runRankPlan(plan, { ...template, systemTokens: 50, multiTurn: true }, now(), (r) => records.push(r), {
      send: replying,
    });
    const system = sent[0]?.history?.[0];
    t.equal(system?.role, 'system');
    t.ok((system?.content.length ?? 0) >= 50 * 4, 'about 50 tokens of text');
    t.same(
      sent.map((r) => r.history?.map((m) => m.role)),
      [['system'], ['system', 'user', 'assistant'], ['system', 'user', 'assistant', 'user', 'assistant']],
    );
    t.same(sent[2]?.history?.[1], { role: 'user', content: sent[0]?.prompt });
    t.same(sent[2]?.history?.[4], { role: 'assistant', content: 'reply to 1' });
    t.ok(
      records.every((r) => r.reply === undefined),
      'replies stay in the rank',
    );

    // Another rank shares the system prompt but not the conversation; without --multi-turn nothing accumulates.
    const other: ChatRequest[] = [];
    await runRankPlan(
      {
        rank: 1,
        requests: [
          { id: 3, atMs: null },
          { id: 4, atMs: null },
        ],
      },
      { ...template, systemTokens: 50 },
      now(),
      () => {},
      {
        send: async (r) => {
          other.push(r);
          return record(r.id, r.rank);
        },
      },
    );
    t.same(
      other.map((r) => r.history),
      [[system], [system]],
    );
    t.equal(other[0]?.keepReply, false);
  },
);
