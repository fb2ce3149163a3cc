// The gauges routers read (the Gateway API Inference Extension's model-server protocol: vLLM's names, and
// the llamacpp:* / llama_slots_* names the picker's engine configuration in deploy/k8s uses) track the
// scheduler step by step: every step is held while /metrics is read, and the values are compared with the
// scheduler's own counts and with the fake decoder's KV cache, the ground truth.
import t from 'tap';
import { KV_BLOCK_TOKENS, ServerMetrics } from '../../src/metrics/server-metrics.ts';
import { Scheduler } from '../../src/scheduler/scheduler.ts';
import { FakeDecoder } from '../helpers/fake-decoder.ts';
import { parseExposition, sampleValue, VLLM_METRICS } from './helpers.ts';

const SLOTS = 2;
const CTX = 96;
const PROMPT = 8;
const MAX_TOKENS = 5;

t.test('waiting, running and KV usage follow the scheduler through a run', async (t) => {
  const fake = new FakeDecoder({ slots: SLOTS, ctxPerSlot: CTX, batchSize: 64 });
  let scheduler: Scheduler | undefined;
  const metrics = new ServerMetrics(
    {
      busySlots: () => scheduler?.busySlots ?? 0,
      queueLength: () => scheduler?.queueLength ?? 0,
      kvCellsUsed: () => Array.from({ length: SLOTS }, (_, i) => fake.cachedPrefix(i).length).reduce((a, b) => a + b),
      kvCellsRunning: () => scheduler?.runningKvTokens ?? 0,
      kvCellsTotal: () => SLOTS * CTX,
    },
    { processMetrics: false },
  );
  scheduler = new Scheduler(fake, {}, metrics);
  const s = scheduler;
  // Every step stops as it begins, until the test has read /metrics.
  fake.onStepStart = () => fake.pause();

  const prompts = [0, 1, 2, 3, 4].map((k) => Array.from({ length: PROMPT }, (_, i) => 100 + k * 10 + i));
  const done = Promise.all(
    prompts.map(
      (tokens, k) => s.submit({ client: `c${k}`, tokens, options: { maxTokens: MAX_TOKENS } }, { onEnd() {} }).done,
    ),
  );
  let finished = false;
  void done.then(() => {
    finished = true;
  });

  const seen: Array<{ waiting: number; running: number; usage: number }> = [];
  let started = fake.nextStepStarted();
  for (;;) {
    const next = await Promise.race([started.then(() => 'step' as const), done.then(() => 'done' as const)]);
    if (next === 'done') break;
    const f = parseExposition((await metrics.exposition()).body);
    const busy = s.snapshot().filter((x) => x.request !== null);
    // Ground truth: the cells the busy slots' sequences hold in the decoder's KV cache.
    const held = busy.reduce((n, x) => n + fake.cachedPrefix(x.id).length, 0);
    const row = {
      waiting: sampleValue(f, 'vllm:num_requests_waiting'),
      running: sampleValue(f, 'vllm:num_requests_running'),
      usage: sampleValue(f, 'vllm:kv_cache_usage_perc'),
    };
    t.equal(row.waiting, s.queueLength, 'waiting = the requests queued for a slot');
    t.equal(row.running, s.busySlots, 'running = the requests holding a slot');
    t.equal(row.usage, held / (SLOTS * CTX), 'usage = cells the running requests hold / all cells');
    t.equal(sampleValue(f, 'llamacpp:requests_deferred'), row.waiting);
    t.equal(sampleValue(f, 'llamacpp:requests_processing'), row.running);
    t.equal(sampleValue(f, 'llama_slots_kv_cache_usage_ratio'), row.usage);
    seen.push(row);
    started = fake.nextStepStarted();
    fake.resume();
  }
  t.ok(finished);
  // Five requests on two slots: three wait at first, the queue drains two at a time, and KV use grows with
  // each generated token.
  t.same(seen[0], { waiting: 3, running: 2, usage: 0 }, 'first step: prompts not decoded yet');
  t.same(seen[1], { waiting: 3, running: 2, usage: (2 * PROMPT) / (SLOTS * CTX) }, 'prompts decoded, one token each');
  t.ok(
    seen.some((r) => r.waiting === 1 && r.running === 2),
    'the second pair runs while the last request waits',
  );
  t.same(seen.at(-1)?.waiting, 0);
  // Largest as the last step begins: the prompt and all tokens but the last two (the last one decoded
  // is the one the step takes in; the one it samples ends the request).
  const peak = (2 * (PROMPT + MAX_TOKENS - 2)) / (SLOTS * CTX);
  t.equal(Math.max(...seen.map((r) => r.usage)), peak, 'peak usage');

  // Once idle, the slots keep their prompt caches (llama_slots_kv_cells_used) but no request holds them.
  const idle = parseExposition((await metrics.exposition()).body);
  t.equal(sampleValue(idle, 'vllm:num_requests_running'), 0);
  t.equal(sampleValue(idle, 'vllm:kv_cache_usage_perc'), 0, 'cached prefixes are free for the next request');
  t.ok(sampleValue(idle, 'llama_slots_kv_cells_used') > 0, 'the prompt cache is still there');
  t.same(fake.violations, []);
});

t.test('vllm:cache_config_info: the block size and block count the prefix scorer sizes caches with', async (t) => {
  const metrics = new ServerMetrics(
    {
      busySlots: () => 0,
      queueLength: () => 0,
      kvCellsUsed: () => 0,
      kvCellsRunning: () => 0,
      kvCellsTotal: () => 4096,
    },
    { processMetrics: false },
  );
  const f = parseExposition((await metrics.exposition()).body);
  const info = f.get('vllm:cache_config_info');
  t.equal(info?.type, 'gauge');
  t.same(info?.samples, [
    {
      name: 'vllm:cache_config_info',
      labels: { block_size: String(KV_BLOCK_TOKENS), num_gpu_blocks: String(4096 / KV_BLOCK_TOKENS) },
      value: 1,
    },
  ]);
  t.same(
    [...f.keys()].filter((name) => name.startsWith('vllm:')).sort(),
    [...VLLM_METRICS].sort(),
    'the vllm:* families, no more',
  );
  for (const name of VLLM_METRICS) t.equal(f.get(name)?.type, 'gauge', `${name} is a gauge`);
});
