// The fairness key and the priority a request reaches the scheduler with: the router's headers (llm-d's
// names and the Gateway API Inference Extension's older ones), API key, `user`, address; x-priority and
// the objective header through --objective-priority. Through the real app, tiny model and scheduler.
import t, { type Test } from 'tap';
import type { GenerationRequest } from '../../src/scheduler/types.ts';
import { parseObjectivePriorities } from '../../src/server/client-key.ts';
import { loadModel } from '../helpers/models.ts';
import { errorOf, makeHarness, NO_EOS, USER_HI } from './harness.ts';

const model = await loadModel('tiny');
t.teardown(() => model.dispose());

const CHAT = '/v1/chat/completions';
const KEY = 'sk-tenant-test';
const chat = (extra: Record<string, unknown> = {}) => ({ messages: USER_HI, temperature: 0, max_tokens: 2, ...extra });

async function harness(t: Test, config: Parameters<typeof makeHarness>[2] = {}) {
  const submitted: GenerationRequest[] = [];
  const h = await makeHarness(t, model, {
    ...config,
    wrap: (real) => ({
      submit(request, handlers) {
        submitted.push(request);
        return real.submit(request, handlers);
      },
      snapshot: () => real.snapshot(),
      slotAction: (slot, action, file) => real.slotAction(slot, action, file),
    }),
  });
  return { ...h, submitted };
}

t.test('fairness key: the tenant header, else the API key, else user, else the address', async (t) => {
  const { app, submitted } = await harness(t, { config: { apiKeys: [KEY] } });
  const auth = { authorization: `Bearer ${KEY}` };
  const cases: Array<[Record<string, string>, Record<string, unknown>, RegExp | string]> = [
    [{ ...auth, 'x-llm-d-inference-fairness-id': 'acme' }, { user: 'alice' }, 'tenant:acme'],
    [{ ...auth, 'x-gateway-inference-fairness-id': 'globex' }, { user: 'alice' }, 'tenant:globex'],
    [{ ...auth, 'x-llm-d-inference-fairness-id': 'new', 'x-gateway-inference-fairness-id': 'old' }, {}, 'tenant:new'],
    [{ ...auth, 'x-gateway-inference-fairness-id': '  ' }, { user: 'alice' }, /^key:[0-9a-f]{12}$/],
    [auth, { user: 'alice' }, /^key:[0-9a-f]{12}$/],
  ];
  for (const [headers, body, expected] of cases) {
    const res = await app.inject({ method: 'POST', url: CHAT, headers, payload: chat(body) });
    t.equal(res.statusCode, 200, res.body);
    const client = submitted.at(-1)?.client ?? '';
    if (typeof expected === 'string') t.equal(client, expected, JSON.stringify(headers));
    else t.match(client, expected, JSON.stringify(headers));
  }

  const open = await harness(t);
  await open.app.inject({ method: 'POST', url: CHAT, payload: chat({ user: 'bob' }) });
  t.equal(open.submitted.at(-1)?.client, 'user:bob');
  await open.app.inject({ method: 'POST', url: CHAT, payload: chat(), remoteAddress: '10.1.2.3' });
  t.equal(open.submitted.at(-1)?.client, 'ip:10.1.2.3');
});

t.test("behind a trusted proxy the address is the client's (X-Forwarded-For), never otherwise", async (t) => {
  const { app, submitted } = await harness(t, { config: { trustedProxies: ['127.0.0.1'] } });
  const xff = { 'x-forwarded-for': '10.9.8.7' };
  await app.inject({ method: 'POST', url: CHAT, headers: xff, payload: chat(), remoteAddress: '127.0.0.1' });
  t.equal(submitted.at(-1)?.client, 'ip:10.9.8.7', 'from the trusted proxy: the forwarded address');
  await app.inject({ method: 'POST', url: CHAT, headers: xff, payload: chat(), remoteAddress: '10.0.0.5' });
  t.equal(submitted.at(-1)?.client, 'ip:10.0.0.5', 'from anyone else: their own address');
  const open = await harness(t);
  await open.app.inject({ method: 'POST', url: CHAT, headers: xff, payload: chat(), remoteAddress: '127.0.0.1' });
  t.equal(open.submitted.at(-1)?.client, 'ip:127.0.0.1', 'no proxy trusted by default');
});

t.test('priority: x-priority, else the objective mapped by --objective-priority, else 0', async (t) => {
  const objectivePriorities = parseObjectivePriorities(['critical=10', 'batch=-5']);
  const { app, submitted } = await harness(t, { config: { objectivePriorities } });
  const cases: Array<[Record<string, string>, number]> = [
    [{}, 0],
    [{ 'x-priority': '7' }, 7],
    [{ 'x-priority': '-3' }, -3],
    [{ 'x-llm-d-inference-objective': 'critical' }, 10],
    [{ 'x-gateway-inference-objective': 'batch' }, -5],
    [{ 'x-gateway-inference-objective': 'unknown' }, 0],
    [{ 'x-gateway-inference-objective': 'critical', 'x-priority': '2' }, 2],
  ];
  for (const [headers, expected] of cases) {
    const res = await app.inject({ method: 'POST', url: CHAT, headers, payload: chat() });
    t.equal(res.statusCode, 200);
    t.equal(submitted.at(-1)?.priority, expected, JSON.stringify(headers));
  }
  const count = submitted.length;
  for (const bad of ['high', '1.5', '99999999999', '1, 2']) {
    const res = await app.inject({ method: 'POST', url: CHAT, headers: { 'x-priority': bad }, payload: chat() });
    t.equal(res.statusCode, 400, bad);
    t.equal(errorOf(res).code, 'invalid_priority');
    t.match(errorOf(res).message, /'x-priority' header/);
  }
  t.equal(submitted.length, count, 'a refused request never reaches the scheduler');
});

t.test('a high-priority request takes the slot ahead of one that waited longer', async (t) => {
  const { app, submitted, endedCount } = await harness(t, { slots: 1, ctxPerSlot: 1024 });
  // One slot, held by a stream until the test has queued the two others.
  const holder = await app.inject({
    method: 'POST',
    url: CHAT,
    payload: chat({ stream: true, max_tokens: 900, logit_bias: NO_EOS }),
    payloadAsStream: true,
  });
  const low = app.inject({ method: 'POST', url: CHAT, payload: chat() });
  while (submitted.length < 2) await new Promise((r) => setImmediate(r));
  const high = app.inject({ method: 'POST', url: CHAT, headers: { 'x-priority': '5' }, payload: chat() });
  while (submitted.length < 3) await new Promise((r) => setImmediate(r));
  holder.raw.res.destroy();
  t.equal((await high).statusCode, 200);
  t.equal((await low).statusCode, 200);
  // The scheduler numbers requests as they are submitted: req-1 the holder, req-2 the low, req-3 the high one.
  const byId = new Map((await endedCount(3)).map((s) => [s.id, s]));
  const lowStart = byId.get('req-2')?.startedAt ?? Number.NaN;
  const highStart = byId.get('req-3')?.startedAt ?? Number.NaN;
  t.equal(byId.get('req-1')?.reason, 'cancelled');
  t.ok(highStart < lowStart, `the x-priority request started first (${highStart} < ${lowStart})`);
});

t.test('parseObjectivePriorities: NAME=INTEGER entries, each error names its entry', async (t) => {
  t.same(
    [...parseObjectivePriorities(['a=1', ' b=-2 ', 'a=3'])],
    [
      ['a', 3],
      ['b', -2],
    ],
  );
  for (const bad of ['a', '=1', 'a=', 'a=x', 'a=1.5', 'a b=1', 'a=4294967296'])
    t.throws(() => parseObjectivePriorities([bad]), {
      message: new RegExp(`'${bad.replace('.', '\\.')}' is not NAME=PRIORITY`),
    });
});
