// Router mode's /metrics: one scrape for every model. Each model keeps its own ServerMetrics (created with the model's
// first load and kept across unloads, so its counters never go back), and its series get a `model` label here.
// The gauges the Kubernetes inference gateway reads (vllm:*) are the server's, not a model's: the gateway picks a
// server, so they come without the label, summed over the loaded models (KV usage: the fullest model's, the one a
// new request may find full). Beside them, the router's own: loads and unloads by model and result, load time, and
// the models in each status.
import {
  AggregatorRegistry,
  Counter,
  collectDefaultMetrics,
  Gauge,
  Histogram,
  type MetricObjectWithValues,
  type MetricValue,
  Registry,
} from 'prom-client';
import type { GenerationMetrics, RejectionCause } from '../server/deps.ts';

type MetricJson = MetricObjectWithValues<MetricValue<string>>;

const LOAD_BUCKETS = [0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300];
const STATUSES = ['unloaded', 'loading', 'loaded', 'unloading', 'sleeping', 'failed'] as const;

export interface RouterMetricsSource {
  /** Every model that has metrics, loaded or not, with its registry (and its throughput window, reset per scrape). */
  models(): Iterable<{ id: string; registry: Registry; resetWindow?: () => void }>;
  /** How many models are in each status now. */
  statusCounts(): Record<string, number>;
}

export class RouterMetrics implements GenerationMetrics {
  readonly registry = new Registry();
  readonly #source: RouterMetricsSource;
  readonly #loads: Counter<'model' | 'result'>;
  readonly #unloads: Counter<'model'>;
  readonly #loadSeconds: Histogram<'model'>;
  readonly #rejections: Counter<'cause'>;

  constructor(source: RouterMetricsSource, options: { processMetrics?: boolean } = {}) {
    this.#source = source;
    const registers = [this.registry];
    this.#loads = new Counter({
      name: 'llama_router_model_loads_total',
      help: 'Model loads by model and result (success or failure)',
      labelNames: ['model', 'result'],
      registers,
    });
    this.#unloads = new Counter({
      name: 'llama_router_model_unloads_total',
      help: 'Model unloads (asked for, made room for another, or idle), by model',
      labelNames: ['model'],
      registers,
    });
    this.#loadSeconds = new Histogram({
      name: 'llama_router_model_load_seconds',
      help: 'Time to load a model (weights, chat template, KV cache), by model',
      labelNames: ['model'],
      buckets: LOAD_BUCKETS,
      registers,
    });
    new Gauge({
      name: 'llama_router_models',
      help: 'Models known to the router, by status',
      labelNames: ['status'],
      registers,
      collect() {
        const counts = source.statusCounts();
        for (const status of STATUSES) this.set({ status }, counts[status] ?? 0);
      },
    });
    // Refusals before any model is chosen (a bad API key, an unknown model...): the server's, not a model's.
    this.#rejections = new Counter({
      name: 'llama_slots_rejections_total',
      help: 'Requests refused before generation, by cause',
      labelNames: ['cause'],
      registers,
    });
    if (options.processMetrics !== false) collectDefaultMetrics({ register: this.registry });
  }

  loaded(model: string, seconds: number): void {
    this.#loads.inc({ model, result: 'success' });
    this.#loadSeconds.observe({ model }, seconds);
  }

  failed(model: string): void {
    this.#loads.inc({ model, result: 'failure' });
  }

  unloaded(model: string): void {
    this.#unloads.inc({ model });
  }

  // GenerationMetrics: responses are counted by the model that served them; only refusals reach the router's.
  responded(): void {}
  interTokenGap(): void {}
  rejected(cause: RejectionCause): void {
    this.#rejections.inc({ cause });
  }

  async exposition(): Promise<{ contentType: string; body: string }> {
    const all: MetricJson[][] = [await this.registry.getMetricsAsJSON()];
    for (const { id, registry, resetWindow } of this.#source.models()) {
      all.push(labelled(await registry.getMetricsAsJSON(), id));
      resetWindow?.();
    }
    const merged = AggregatorRegistry.aggregate(all);
    return { contentType: this.registry.contentType, body: await merged.metrics() };
  }
}

/** A model's series with its `model` label; the gateway's vllm:* left unlabelled so that they add up. */
function labelled(metrics: MetricJson[], model: string): MetricJson[] {
  return metrics.map((m) => {
    if (m.name.startsWith('vllm:')) {
      // Summed over models, except the KV usage ratio (the fullest model's) and the cache info (one series a size).
      return m.name === 'vllm:kv_cache_usage_perc' || m.name === 'vllm:cache_config_info'
        ? { ...m, aggregator: 'max' }
        : m;
    }
    return { ...m, values: m.values.map((v) => ({ ...v, labels: { ...v.labels, model } })) };
  });
}
