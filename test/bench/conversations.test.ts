// The returning-conversations workload (llama.cpp #27148's: many conversations sharing a long system prompt, more
// of them than slots, a greedy burst with evictions to host RAM, abandoned requests sent again, new arrivals)
// against real servers started with the default memory flags (no -np: one unified pool, the RAM cache on): every
// answer is its solo run, and the cached tokens the answers report are what the metrics and the RAM cache say.
// On tiny-gemma3 the sliding-window checkpoints carry the returning prompts.
import { PassThrough } from 'node:stream';
import t from 'tap';
import { runConversationsCli } from '../../src/bench/conversations/cli.ts';
import { parseConversationsArgs } from '../../src/bench/conversations/options.ts';
import { runConversations, verdictOf } from '../../src/bench/conversations/run.ts';
import { modelPath } from '../helpers/models.ts';
import { startServer } from '../helpers/server-process.ts';

const WORKLOAD = {
  apiKey: null,
  model: null,
  conversations: 10,
  turns: 3,
  concurrency: 6,
  systemTokens: 150,
  userTokens: 12,
  maxTokens: 16,
  cancelEvery: 5,
  cancelAfter: 2,
  timeoutMs: 120_000,
  seed: 1,
};

for (const preset of ['tiny', 'tiny-gemma3'] as const) {
  t.test(`${preset}: every returning conversation gets its own answer`, async (t) => {
    // The defaults but the pool: 4 slots over 1024 cells, the 8 GiB RAM cache, admission and preemption.
    const server = await startServer(['-m', await modelPath(preset), '-c', '1024', '-t', '1', '--metrics']);
    t.teardown(() => server.stop());
    const report = await runConversations({ ...WORKLOAD, url: server.url });
    t.same(verdictOf(report), [], 'no mismatch, no failure, the counts agree');
    t.equal(report.burst.answered, WORKLOAD.conversations * WORKLOAD.turns, 'every turn answered');
    t.ok(report.burst.cancelled >= 1, `${report.burst.cancelled} requests abandoned mid-answer and sent again`);
    t.equal(report.replay.compared, report.burst.answered, 'each compared with its solo run');
    t.ok(
      report.replay.equalTokens >= report.burst.completionTokens / 2,
      `${report.replay.equalTokens} of ${report.burst.completionTokens} tokens equal before any numerical tie`,
    );
    const m = report.metrics ?? {};
    t.equal(m['llamacpp:prompt_tokens_cached_total'], report.burst.cachedTokens, 'cached tokens: answers = metric');
    t.ok((m.llama_slots_prompt_cache_hits_total ?? 0) >= 1, `${m.llama_slots_prompt_cache_hits_total} RAM hits`);
    t.ok(
      (m.llama_slots_prompt_cache_restored_tokens_total ?? 0) > 0,
      `${m.llama_slots_prompt_cache_restored_tokens_total} tokens restored from RAM`,
    );
    t.ok(
      report.burst.cachedTokens >= report.burst.answered * 100,
      `the shared system prompt is reused: ${report.burst.cachedTokens} cached tokens over ${report.burst.answered} answers`,
    );
    const slots = (await (await fetch(`${server.url}/slots`)).json()) as Array<{ is_processing: boolean }>;
    t.same(
      slots.map((s) => s.is_processing),
      [false, false, false, false],
      'every slot is free afterwards',
    );
  });
}

t.test('the command line: figures, verdict and exit status; bad flags name themselves', async (t) => {
  const server = await startServer(['-m', await modelPath('tiny'), '-c', '1024', '-t', '1']);
  t.teardown(() => server.stop());
  let out = '';
  const stdout = new PassThrough().on('data', (c: Buffer) => {
    out += c.toString();
  });
  const stderr = new PassThrough();
  const argv = [
    '--url',
    server.url,
    '--conversations',
    '3',
    '--turns',
    '2',
    '--system-tokens',
    '40',
    '--max-tokens',
    '4',
  ];
  t.equal(await runConversationsCli(argv, { stdout, stderr }), 0);
  t.match(out, /burst: \d+ sent, 6 answered/);
  t.match(out, /metrics: \/metrics not available/, 'without --metrics it says so and still judges the answers');
  t.match(out, /verdict: every answer was its solo run/);
  t.throws(() => parseConversationsArgs(['--conversations', '0']), /--conversations/);
  t.equal(parseConversationsArgs([]).url, 'http://127.0.0.1:8090');
});
