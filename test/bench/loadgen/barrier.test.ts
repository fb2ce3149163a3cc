import { fileURLToPath } from 'node:url';
import t from 'tap';
import { forkRank, type RankLink, RankStartError, runRanks } from '../../../src/bench/loadgen/barrier.ts';
import { planRanks } from '../../../src/bench/loadgen/plan.ts';
import type {
  CoordinatorMessage,
  RankMessage,
  RequestRecord,
  RequestTemplate,
} from '../../../src/bench/loadgen/types.ts';

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

/** A rank under the test's control: it records what the coordinator sends and replies when told. */
class FakeRank implements RankLink {
  received: CoordinatorMessage[] = [];
  killed = false;
  #onMessage: (m: RankMessage) => void = () => {};
  #onExit: (code: number | null, signal: string | null) => void = () => {};
  send(message: CoordinatorMessage): void {
    this.received.push(message);
  }
  onMessage(listener: (m: RankMessage) => void): void {
    this.#onMessage = listener;
  }
  onExit(listener: (code: number | null, signal: string | null) => void): void {
    this.#onExit = listener;
  }
  kill(): void {
    this.killed = true;
  }
  reply(message: RankMessage): void {
    this.#onMessage(message);
  }
  exit(code: number | null, signal: string | null = null): void {
    this.#onExit(code, signal);
  }
  types(): string[] {
    return this.received.map((m) => m.type);
  }
}

const record = (id: number, rank: number): RequestRecord => ({
  id,
  rank,
  sendMs: 1,
  chunkMs: [2],
  endMs: 3,
  status: 200,
  ok: true,
  errorKind: null,
  error: null,
  promptTokens: 1,
  outputTokens: 1,
  outputTokensFrom: 'usage',
  finishReason: 'stop',
});

const tick = () => new Promise((resolve) => setImmediate(resolve));

t.test('no rank is released before all are ready; then one go with one time for all', async (t) => {
  const ranks = [new FakeRank(), new FakeRank(), new FakeRank()];
  const plans = planRanks({ requests: 5, ranks: 3, rate: null, seed: 1 });
  const records: RequestRecord[] = [];
  const done = runRanks({
    plans,
    template,
    startRank: (r) => ranks[r] as FakeRank,
    now: () => 1234,
    onRecord: (r) => records.push(r),
  });
  await tick();
  t.same(
    ranks.map((r) => r.types()),
    [['init'], ['init'], ['init']],
    'each rank got its plan',
  );
  t.same(ranks[1]?.received[0], { type: 'init', plan: plans[1], template });

  ranks[2]?.reply({ type: 'ready', rank: 2 });
  ranks[0]?.reply({ type: 'ready', rank: 0 });
  ranks[0]?.reply({ type: 'ready', rank: 0 }); // a repeated ready counts once
  await tick();
  t.ok(
    ranks.every((r) => !r.types().includes('go')),
    'two of three ready: nobody goes',
  );

  ranks[1]?.reply({ type: 'ready', rank: 1 });
  await tick();
  t.same(
    ranks.map((r) => r.received.at(-1)),
    [
      { type: 'go', goMs: 1234 },
      { type: 'go', goMs: 1234 },
      { type: 'go', goMs: 1234 },
    ],
  );

  ranks[0]?.reply({ type: 'record', record: record(0, 0) });
  ranks[0]?.reply({ type: 'record', record: record(3, 0) });
  ranks[0]?.reply({ type: 'done', rank: 0 });
  ranks[0]?.exit(0); // a normal exit after done is not a failure
  ranks[1]?.reply({ type: 'record', record: record(1, 1) });
  ranks[1]?.reply({ type: 'done', rank: 1 });
  ranks[2]?.reply({ type: 'record', record: record(2, 2) });
  ranks[2]?.reply({ type: 'done', rank: 2 });
  const run = await done;
  t.equal(run.goMs, 1234);
  t.same(
    run.records.map((r) => r.id),
    [0, 3, 1, 2],
  );
  t.same(
    records.map((r) => r.id),
    [0, 3, 1, 2],
    'records are reported as they arrive',
  );
  t.same(run.failures, []);
});

t.test('a rank that dies before it is ready stops the run: reported, the others killed, no go', async (t) => {
  const ranks = [new FakeRank(), new FakeRank()];
  const done = runRanks({
    plans: planRanks({ requests: 2, ranks: 2, rate: null, seed: 1 }),
    template,
    startRank: (r) => ranks[r] as FakeRank,
  });
  await tick();
  ranks[0]?.reply({ type: 'ready', rank: 0 });
  ranks[1]?.exit(1);
  const err = await done.then(
    () => null,
    (e: unknown) => e,
  );
  t.ok(err instanceof RankStartError);
  t.same((err as RankStartError).failures, [
    { rank: 1, phase: 'start', message: 'exited with code 1 before it was ready' },
  ]);
  t.ok(
    ranks.every((r) => r.killed),
    'all ranks killed',
  );
  t.ok(ranks.every((r) => !r.types().includes('go')));
});

t.test('start failures: fatal before ready, spawn throwing, ready timeout', async (t) => {
  const plans = planRanks({ requests: 2, ranks: 2, rate: null, seed: 1 });
  const a = [new FakeRank(), new FakeRank()];
  const fatal = runRanks({ plans, template, startRank: (r) => a[r] as FakeRank });
  await tick();
  a[0]?.reply({ type: 'fatal', rank: 0, message: 'cannot build prompts' });
  await t.rejects(fatal, { name: 'RankStartError', message: 'rank 0: cannot build prompts' });

  const b = new FakeRank();
  const throwing = runRanks({
    plans,
    template,
    startRank: (r) => {
      if (r === 1) throw new Error('spawn ENOMEM');
      return b;
    },
  });
  await t.rejects(throwing, { message: 'rank 1: could not start: spawn ENOMEM' });
  t.ok(b.killed, 'the rank already started is killed');

  const c = [new FakeRank(), new FakeRank()];
  const slow = runRanks({ plans, template, startRank: (r) => c[r] as FakeRank, readyTimeoutMs: 50 });
  await tick();
  c[1]?.reply({ type: 'ready', rank: 1 });
  await t.rejects(slow, { message: /rank 0: not ready after 0.05 s \(ranks not ready: 0\)/ });
});

t.test('a rank failing after go: reported with what it delivered, the others finish', async (t) => {
  const ranks = [new FakeRank(), new FakeRank()];
  const done = runRanks({
    plans: planRanks({ requests: 6, ranks: 2, rate: null, seed: 1 }),
    template,
    startRank: (r) => ranks[r] as FakeRank,
  });
  await tick();
  for (const [k, r] of ranks.entries()) r.reply({ type: 'ready', rank: k });
  await tick();
  ranks[0]?.reply({ type: 'record', record: record(0, 0) });
  ranks[0]?.exit(null, 'SIGKILL');
  ranks[1]?.reply({ type: 'record', record: record(1, 1) });
  ranks[1]?.reply({ type: 'fatal', rank: 1, message: 'out of memory' });
  const run = await done;
  t.same(
    run.records.map((r) => r.id),
    [0, 1],
  );
  t.same(run.failures, [
    { rank: 0, phase: 'run', message: 'killed by SIGKILL after 1 of 3 requests' },
    { rank: 1, phase: 'run', message: 'out of memory (after 1 of 3 requests)' },
  ]);
});

t.test('a real rank process that fails to start is reported', async (t) => {
  const entry = fileURLToPath(new URL('fixtures/dead-rank.mjs', import.meta.url));
  const started = performance.now();
  const err = await runRanks({
    plans: planRanks({ requests: 2, ranks: 2, rate: null, seed: 1 }),
    template,
    startRank: forkRank(entry),
  }).then(
    () => null,
    (e: unknown) => e,
  );
  t.ok(err instanceof RankStartError, String(err));
  t.match((err as RankStartError).message, /rank \d: exited with code 3 before it was ready/);
  t.ok(performance.now() - started < 30_000);
});
