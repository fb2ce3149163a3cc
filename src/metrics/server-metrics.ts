// Prometheus metrics on the server's own Registry. llama-server's names and meanings (llamacpp:*) so
// its dashboards work unchanged, vLLM's gauges that routers read (vllm:*: the Gateway API Inference
// Extension's model-server protocol, docs/SCALING.md), plus latency histograms and counters of our own
// (llama_slots_*).
// Token counters are fed from what each response reported (usage), so their totals equal the sums of
// usage over responses; step figures come from the scheduler through SchedulerObserver.
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import type { PromptCacheEvent, SchedulerObserver, StepStats } from '../scheduler/types.ts';
import type { GenerationMetrics, RejectionCause, ResponseRecord } from '../server/deps.ts';
import type { LiveStatsListener } from './live-stats.ts';

// The HTTP layer owns what a response reports (ResponseRecord) and why a request is refused (RejectionCause).
export type { RejectionCause, ResponseRecord } from '../server/deps.ts';

export interface LiveState {
  busySlots(): number;
  queueLength(): number;
  /** Cells holding tokens, idle slots' prompt caches included. */
  kvCellsUsed(): number;
  /** Cells held by running requests: what is not free for the next request (idle slots' caches are). */
  kvCellsRunning(): number;
  kvCellsTotal(): number;
  /** The host-RAM prompt cache, when there is one. */
  promptCache?(): { bytes: number; entries: number };
  /** Host memory the slots' sliding-window checkpoints hold. */
  checkpointBytes?(): number;
}

/**
 * The block size vllm:cache_config_info declares. Our prompt cache reuses a prefix of any length, so every
 * block size is true of it; the Endpoint Picker's prefix scorer hashes prompts in blocks of at least 64
 * tokens and sizes each replica's cache as num_gpu_blocks of them, so this is the one it uses unchanged.
 */
export const KV_BLOCK_TOKENS = 64;

const LATENCY_BUCKETS = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300];
const ITL_BUCKETS = [0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5];
const TOKEN_BUCKETS = [1, 8, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768];

export class ServerMetrics implements SchedulerObserver, GenerationMetrics {
  readonly registry = new Registry();
  readonly #promptTokens: Counter;
  readonly #promptTokensCached: Counter;
  readonly #promptSeconds: Counter;
  readonly #tokensPredicted: Counter;
  readonly #tokensPredictedSeconds: Counter;
  readonly #decodes: Counter;
  readonly #draftTokens: Counter;
  readonly #draftAccepted: Counter;
  readonly #drafts: Counter;
  readonly #acceptedAt: Counter<'position'>;
  readonly #tokensMax: Counter;
  readonly #requestsByFinish: Counter<'finish_reason'>;
  readonly #rejections: Counter<'cause'>;
  readonly #ttft: Histogram;
  readonly #itl: Histogram;
  readonly #e2e: Histogram;
  readonly #queue: Histogram;
  readonly #promptPerRequest: Histogram;
  readonly #generatedPerRequest: Histogram;
  readonly #stepSeconds: Histogram;
  readonly #preemptions: Counter;
  readonly #cacheHits: Counter;
  readonly #cacheMisses: Counter;
  readonly #cacheSaveFailures: Counter;
  readonly #cacheRestoredTokens: Counter;
  readonly #cacheSavedBytes: Counter;
  #busySlotSum = 0;
  #decodeCount = 0;
  // llama-server's buckets: the throughput gauges average over the window since the previous scrape.
  #promptTokenSum = 0;
  #promptSecondSum = 0;
  #predictedTokenSum = 0;
  #predictedSecondSum = 0;
  #maxSequence = 0;
  /** The live view's aggregator gets every event these metrics get. */
  readonly #listener: LiveStatsListener | undefined;

  constructor(live: LiveState, options: { processMetrics?: boolean; listener?: LiveStatsListener } = {}) {
    this.#listener = options.listener;
    const r = [this.registry];
    const counter = (name: string, help: string) => new Counter({ name, help, registers: r });
    this.#promptTokens = counter(
      'llamacpp:prompt_tokens_total',
      'Number of prompt tokens processed, excluding cached tokens',
    );
    this.#promptTokensCached = counter(
      'llamacpp:prompt_tokens_cached_total',
      'Number of prompt tokens reused from the cache',
    );
    this.#promptSeconds = counter('llamacpp:prompt_seconds_total', 'Total time spent processing prompts');
    this.#tokensPredicted = counter('llamacpp:tokens_predicted_total', 'Number of generation tokens processed');
    this.#tokensPredictedSeconds = counter(
      'llamacpp:tokens_predicted_seconds_total',
      'Total time spent generating tokens',
    );
    this.#decodes = counter(
      'llamacpp:n_decode_total',
      'Total number of llama_decode() calls, excluding speculative decoding and multimodal decoding',
    );
    // A counter in llama-server too (its to_metrics() lists it with the counters): it only ever grows.
    this.#tokensMax = counter('llamacpp:n_tokens_max', 'Largest observed sequence length (prompt + generation)');
    // llama-server always reports these; without speculative decoding they stay 0 (as there).
    this.#draftTokens = counter(
      'llamacpp:spec_decode_num_draft_tokens_total',
      'Speculative: Total draft tokens generated',
    );
    this.#draftAccepted = counter(
      'llamacpp:spec_decode_num_accepted_tokens_total',
      'Speculative: Total draft tokens accepted by the target model',
    );
    this.#drafts = counter(
      'llamacpp:spec_decode_num_drafts_total',
      'Speculative: Total speculative decoding verification steps',
    );
    this.#acceptedAt = new Counter({
      name: 'llamacpp:spec_decode_num_accepted_tokens_per_pos_total',
      help: 'Accepted tokens per draft position',
      labelNames: ['position'],
      registers: r,
    });
    const gauge = (name: string, help: string, read: () => number) =>
      new Gauge({
        name,
        help,
        registers: r,
        collect() {
          this.set(read());
        },
      });
    gauge('llamacpp:prompt_tokens_seconds', 'Average prompt throughput in tokens/s', () =>
      this.#promptSecondSum > 0 ? this.#promptTokenSum / this.#promptSecondSum : 0,
    );
    gauge('llamacpp:predicted_tokens_seconds', 'Average generation throughput in tokens/s', () =>
      this.#predictedSecondSum > 0 ? this.#predictedTokenSum / this.#predictedSecondSum : 0,
    );
    gauge('llamacpp:requests_processing', 'Number of requests processing', () => live.busySlots());
    gauge('llamacpp:requests_deferred', 'Number of requests deferred', () => live.queueLength());
    gauge('llamacpp:n_busy_slots_per_decode', 'Average number of busy slots per llama_decode() call', () =>
      this.#decodeCount > 0 ? this.#busySlotSum / this.#decodeCount : 0,
    );
    gauge('llama_slots_busy', 'Slots decoding a request now', () => live.busySlots());
    gauge('llama_slots_queue_length', 'Requests waiting for a slot', () => live.queueLength());
    gauge('llama_slots_kv_cells_used', 'KV cache cells holding tokens, over all slots', () => live.kvCellsUsed());
    // Not *_total: that suffix is for counters (promtool check metrics).
    gauge('llama_slots_kv_cells_capacity', 'KV cache cells, over all slots', () => live.kvCellsTotal());
    const kvUsage = (): number => {
      const total = live.kvCellsTotal();
      return total > 0 ? Math.min(1, live.kvCellsRunning() / total) : 0;
    };
    gauge(
      'llama_slots_kv_cache_usage_ratio',
      "KV cache cells held by running requests over all cells (0..1; idle slots' prompt caches count as free)",
      kvUsage,
    );
    // vLLM's names and meanings, the Endpoint Picker's defaults: waiting = deferred for a slot, running =
    // holding a slot, usage = the fraction of KV cells running requests hold (vLLM counts cached blocks no
    // request holds as free, and so do we).
    gauge('vllm:num_requests_waiting', 'Number of requests waiting to be processed.', () => live.queueLength());
    gauge('vllm:num_requests_running', 'Number of requests in model execution batches.', () => live.busySlots());
    gauge('vllm:kv_cache_usage_perc', 'KV-cache usage. 1 means 100 percent usage.', kvUsage);
    new Gauge({
      name: 'vllm:cache_config_info',
      help: 'Information of the LLMEngine CacheConfig',
      labelNames: ['block_size', 'num_gpu_blocks'],
      registers: r,
      collect() {
        this.reset();
        const blocks = Math.floor(live.kvCellsTotal() / KV_BLOCK_TOKENS);
        this.set({ block_size: String(KV_BLOCK_TOKENS), num_gpu_blocks: String(blocks) }, 1);
      },
    });

    this.#requestsByFinish = new Counter({
      name: 'llama_slots_requests_total',
      help: 'Finished requests by finish reason',
      labelNames: ['finish_reason'],
      registers: r,
    });
    this.#rejections = new Counter({
      name: 'llama_slots_rejections_total',
      help: 'Requests refused before generation, by cause',
      labelNames: ['cause'],
      registers: r,
    });
    const histogram = (name: string, help: string, buckets: number[]) =>
      new Histogram({ name, help, buckets, registers: r });
    this.#ttft = histogram(
      'llama_slots_time_to_first_token_seconds',
      'Time from request to first generated token',
      LATENCY_BUCKETS,
    );
    this.#itl = histogram(
      'llama_slots_inter_token_latency_seconds',
      'Time between consecutive generated tokens',
      ITL_BUCKETS,
    );
    this.#e2e = histogram(
      'llama_slots_request_duration_seconds',
      'Time from request to its last token',
      LATENCY_BUCKETS,
    );
    this.#queue = histogram('llama_slots_queue_time_seconds', 'Time a request waited for a slot', LATENCY_BUCKETS);
    this.#promptPerRequest = histogram('llama_slots_prompt_tokens', 'Prompt tokens per request', TOKEN_BUCKETS);
    this.#generatedPerRequest = histogram(
      'llama_slots_generated_tokens',
      'Generated tokens per request',
      TOKEN_BUCKETS,
    );
    this.#stepSeconds = histogram(
      'llama_slots_step_seconds',
      'Duration of one decoding step (one llama_decode)',
      ITL_BUCKETS,
    );
    this.#preemptions = counter(
      'llama_slots_preemptions_total',
      'Running requests that gave their slot up to a full KV pool (they resume)',
    );
    this.#cacheHits = counter(
      'llama_slots_prompt_cache_hits_total',
      'Prompts whose KV was restored from the host-RAM prompt cache',
    );
    this.#cacheMisses = counter(
      'llama_slots_prompt_cache_misses_total',
      'Prompts that neither a slot nor the host-RAM prompt cache held a reusable prefix of',
    );
    this.#cacheSaveFailures = counter(
      'llama_slots_prompt_cache_save_failures_total',
      'Slot states that could not be saved to the host-RAM prompt cache (the slot kept its cache; only the copy was lost)',
    );
    this.#cacheRestoredTokens = counter(
      'llama_slots_prompt_cache_restored_tokens_total',
      'Prompt tokens whose KV came back from the host-RAM prompt cache',
    );
    this.#cacheSavedBytes = counter(
      'llama_slots_prompt_cache_saved_bytes_total',
      'Bytes of slot state saved to the host-RAM prompt cache',
    );
    gauge(
      'llama_slots_prompt_cache_bytes',
      'Bytes the host-RAM prompt cache holds',
      () => live.promptCache?.().bytes ?? 0,
    );
    gauge(
      'llama_slots_prompt_cache_entries',
      'Slot states the host-RAM prompt cache holds',
      () => live.promptCache?.().entries ?? 0,
    );
    gauge(
      'llama_slots_checkpoint_bytes',
      "Bytes of sliding-window checkpoints the slots hold in host memory (at most --ctx-checkpoints each, beside the prompt cache's)",
      () => live.checkpointBytes?.() ?? 0,
    );
    if (options.processMetrics !== false) collectDefaultMetrics({ register: this.registry });
    for (const cause of ['queue_full', 'auth', 'invalid', 'context_exceeded', 'shutting_down', 'too_large'] as const) {
      this.#rejections.inc({ cause }, 0);
    }
  }

  // SchedulerObserver
  onStep(stats: StepStats): void {
    this.#listener?.onStep?.(stats);
    if (stats.batchTokens === 0) return;
    this.#decodes.inc();
    this.#decodeCount++;
    this.#busySlotSum += stats.busySlots;
    this.#stepSeconds.observe(stats.durationMs / 1000);
    for (const d of stats.drafts ?? []) {
      this.#drafts.inc();
      this.#draftTokens.inc(d.drafted);
      this.#draftAccepted.inc(d.accepted);
      for (let i = 0; i < d.accepted; i++) this.#acceptedAt.inc({ position: String(i) });
    }
  }

  onPreempted(): void {
    this.#preemptions.inc();
  }

  onPromptCache(event: PromptCacheEvent): void {
    if (event.kind === 'hit') {
      this.#cacheHits.inc();
      this.#cacheRestoredTokens.inc(event.tokens);
    } else if (event.kind === 'miss') this.#cacheMisses.inc();
    else if (event.kind === 'save_failed') this.#cacheSaveFailures.inc();
    else this.#cacheSavedBytes.inc(event.bytes);
  }

  rejected(cause: RejectionCause): void {
    this.#listener?.rejected(cause);
    this.#rejections.inc({ cause });
  }

  interTokenGap(seconds: number): void {
    this.#listener?.interTokenGap(seconds);
    this.#itl.observe(seconds);
  }

  responded(r: ResponseRecord): void {
    this.#listener?.responded(r);
    const fresh = r.promptTokens - r.cachedTokens;
    this.#promptTokens.inc(fresh);
    this.#promptTokensCached.inc(r.cachedTokens);
    this.#tokensPredicted.inc(r.completionTokens);
    if (r.promptSeconds !== undefined) {
      this.#promptSeconds.inc(r.promptSeconds);
      this.#promptTokenSum += fresh;
      this.#promptSecondSum += r.promptSeconds;
    }
    if (r.generationSeconds !== undefined) {
      this.#tokensPredictedSeconds.inc(r.generationSeconds);
      this.#predictedTokenSum += r.completionTokens;
      this.#predictedSecondSum += r.generationSeconds;
    }
    const sequence = r.promptTokens + r.completionTokens;
    if (sequence > this.#maxSequence) {
      this.#tokensMax.inc(sequence - this.#maxSequence);
      this.#maxSequence = sequence;
    }
    this.#requestsByFinish.inc({ finish_reason: r.finishReason });
    if (r.ttftSeconds !== undefined) this.#ttft.observe(r.ttftSeconds);
    if (r.queueSeconds !== undefined) this.#queue.observe(r.queueSeconds);
    this.#e2e.observe(r.e2eSeconds);
    this.#promptPerRequest.observe(r.promptTokens);
    this.#generatedPerRequest.observe(r.completionTokens);
  }

  async exposition(): Promise<{ contentType: string; body: string }> {
    const body = await this.registry.metrics();
    this.resetWindow();
    return { contentType: this.registry.contentType, body };
  }

  /** Starts a new throughput window (after each scrape, as llama-server's reset_bucket). */
  resetWindow(): void {
    this.#promptTokenSum = 0;
    this.#promptSecondSum = 0;
    this.#predictedTokenSum = 0;
    this.#predictedSecondSum = 0;
  }
}
