// Shared by the metrics tests: a parser for the Prometheus text exposition format (0.0.4), and an app with a
// ServerMetrics over the real tiny model, BatchDecoder and Scheduler (as in test/server/harness.ts, which
// builds its apps without metrics), whose decoding steps can be held to make concurrency deterministic.

import type { FastifyInstance } from 'fastify';
import type { Test } from 'tap';
import { BatchDecoder, ChatTemplates, type Model } from '../../src/engine/index.ts';
import { assembleServer } from '../../src/entry/assemble.ts';
import type { ServerMetrics } from '../../src/metrics/server-metrics.ts';
import type { Scheduler } from '../../src/scheduler/scheduler.ts';
import type { Decoder, SchedulerOptions } from '../../src/scheduler/types.ts';
import type { ServerOptions } from '../../src/server/options.ts';

// --- the exposition format ------------------------------------------------------------------------------

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

export interface Family {
  name: string;
  help: string | undefined;
  type: string | undefined;
  samples: Sample[];
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const SUFFIXES: Record<string, readonly string[]> = {
  histogram: ['_bucket', '_sum', '_count'],
  summary: ['_sum', '_count'],
};

function unescapeText(s: string, what: 'help' | 'label'): string {
  return s.replace(/\\(.)/g, (m, c: string) => {
    if (c === '\\') return '\\';
    if (c === 'n') return '\n';
    if (c === '"' && what === 'label') return '"';
    throw new Error(`bad escape ${m} in ${what}`);
  });
}

/**
 * As Prometheus reads values (Go's strconv.ParseFloat): NaN and Inf in any case. prom-client writes 'Nan' for
 * the event-loop lag gauges of a process that has not measured any lag yet.
 */
function parseValue(s: string): number {
  const special = s.toLowerCase();
  if (special === '+inf' || special === 'inf' || special === '+infinity' || special === 'infinity')
    return Number.POSITIVE_INFINITY;
  if (special === '-inf' || special === '-infinity') return Number.NEGATIVE_INFINITY;
  if (special === 'nan') return Number.NaN;
  if (!/^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(s)) throw new Error(`bad sample value '${s}'`);
  return Number(s);
}

/** `name{a="x",b="y"} value [timestamp]` */
function parseSample(line: string): Sample {
  const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{)?/.exec(line);
  if (!m?.[1]) throw new Error(`bad sample line '${line}'`);
  const name = m[1];
  let i = name.length;
  const labels: Record<string, string> = {};
  if (m[2] === '{') {
    i++;
    for (;;) {
      if (line[i] === '}') {
        i++;
        break;
      }
      const eq = line.indexOf('=', i);
      if (eq < 0) throw new Error(`bad labels in '${line}'`);
      const label = line.slice(i, eq);
      if (!LABEL.test(label)) throw new Error(`bad label name '${label}' in '${line}'`);
      if (line[eq + 1] !== '"') throw new Error(`unquoted label value in '${line}'`);
      let j = eq + 2;
      let raw = '';
      while (j < line.length && line[j] !== '"') {
        if (line[j] === '\\') raw += line[j++];
        raw += line[j++];
      }
      if (j >= line.length) throw new Error(`unterminated label value in '${line}'`);
      if (label in labels) throw new Error(`duplicate label '${label}' in '${line}'`);
      labels[label] = unescapeText(raw, 'label');
      i = j + 1;
      if (line[i] === ',') i++;
      else if (line[i] !== '}') throw new Error(`bad labels in '${line}'`);
    }
  }
  const rest = line.slice(i).trim().split(/\s+/);
  if (line[i] !== ' ' || rest.length < 1 || rest.length > 2 || rest[0] === undefined)
    throw new Error(`bad sample line '${line}'`);
  if (rest[1] !== undefined && !/^-?\d+$/.test(rest[1])) throw new Error(`bad timestamp in '${line}'`);
  return { name, labels, value: parseValue(rest[0]) };
}

/**
 * Families by name. Strict: every sample belongs to the family whose HELP/TYPE came last (histograms and
 * summaries own their _bucket/_sum/_count series), a family appears once, and HELP/TYPE come once each.
 */
export function parseExposition(text: string): Map<string, Family> {
  const families = new Map<string, Family>();
  let current: Family | undefined;
  const family = (name: string): Family => {
    if (!NAME.test(name)) throw new Error(`bad metric name '${name}'`);
    if (current?.name === name) return current;
    if (families.has(name)) throw new Error(`family ${name} appears twice`);
    current = { name, help: undefined, type: undefined, samples: [] };
    families.set(name, current);
    return current;
  };
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue;
    const meta = /^# (HELP|TYPE) (\S+)(?: (.*))?$/.exec(line);
    if (meta) {
      const [, kind, name = '', rest = ''] = meta;
      const f = family(name);
      if (f.samples.length > 0) throw new Error(`${kind} of ${name} after its samples`);
      if (kind === 'HELP') {
        if (f.help !== undefined) throw new Error(`two HELP lines for ${name}`);
        f.help = unescapeText(rest, 'help');
      } else {
        if (f.type !== undefined) throw new Error(`two TYPE lines for ${name}`);
        if (!['counter', 'gauge', 'histogram', 'summary', 'untyped'].includes(rest))
          throw new Error(`bad type '${rest}' for ${name}`);
        f.type = rest;
      }
      continue;
    }
    if (line.startsWith('#')) continue;
    const sample = parseSample(line);
    const owner = current;
    const owns =
      owner !== undefined &&
      (sample.name === owner.name || (SUFFIXES[owner.type ?? ''] ?? []).some((s) => sample.name === owner.name + s));
    if (!owns) throw new Error(`sample ${sample.name} outside its family (after ${owner?.name ?? 'nothing'})`);
    owner.samples.push(sample);
  }
  return families;
}

function sameLabels(a: Record<string, string>, b: Record<string, string>): boolean {
  const ka = Object.keys(a);
  return ka.length === Object.keys(b).length && ka.every((k) => a[k] === b[k]);
}

/** The value of the one sample `name{labels}` (exactly these labels). */
export function sampleValue(families: Map<string, Family>, name: string, labels: Record<string, string> = {}): number {
  for (const f of families.values()) {
    const hits = f.samples.filter((s) => s.name === name && sameLabels(s.labels, labels));
    if (hits.length > 1) throw new Error(`${name}${JSON.stringify(labels)} appears ${hits.length} times`);
    if (hits[0]) return hits[0].value;
  }
  throw new Error(`no sample ${name}${JSON.stringify(labels)}`);
}

export interface HistogramValue {
  buckets: Array<{ le: number; count: number }>;
  sum: number;
  count: number;
}

/** An unlabelled histogram, checked for shape: cumulative buckets ending in +Inf equal to _count. */
export function histogramOf(families: Map<string, Family>, name: string): HistogramValue {
  const f = families.get(name);
  if (f === undefined) throw new Error(`no histogram ${name}`);
  if (f.type !== 'histogram') throw new Error(`${name} is a ${f.type}, not a histogram`);
  const buckets = f.samples
    .filter((s) => s.name === `${name}_bucket`)
    .map((s) => {
      const le = s.labels.le;
      if (le === undefined) throw new Error(`${name}_bucket without le`);
      return { le: parseValue(le), count: s.value };
    });
  for (let i = 1; i < buckets.length; i++) {
    const [a, b] = [buckets[i - 1], buckets[i]];
    if (!a || !b || !(a.le < b.le) || !(a.count <= b.count)) throw new Error(`${name}: buckets not cumulative at ${i}`);
  }
  const count = sampleValue(families, `${name}_count`);
  const last = buckets.at(-1);
  if (last?.le !== Number.POSITIVE_INFINITY || last.count !== count)
    throw new Error(`${name}: +Inf bucket missing or not equal to _count`);
  return { buckets, sum: sampleValue(families, `${name}_sum`), count };
}

// --- an app with metrics ----------------------------------------------------------------------------------

/** Holds decoding steps while closed; open() lets the held one and every later one through. */
export class StepGate {
  #held: Promise<void> | null = null;
  #release: () => void = () => {};
  close(): void {
    if (this.#held !== null) return;
    this.#held = new Promise((resolve) => {
      this.#release = resolve;
    });
  }
  open(): void {
    const release = this.#release;
    this.#held = null;
    release();
  }
  wait(): Promise<void> | null {
    return this.#held;
  }
}

export interface MetricsApp {
  app: FastifyInstance;
  scheduler: Scheduler;
  metrics: ServerMetrics;
  gate: StepGate;
}

export interface MetricsAppOptions {
  slots?: number;
  ctxPerSlot?: number;
  config?: Partial<ServerOptions>;
  scheduler?: SchedulerOptions;
}

/** The app as src/entry/serve.ts wires it: the ServerMetrics observes the scheduler and serves /metrics. */
export function makeMetricsApp(t: Test, model: Model, options: MetricsAppOptions = {}): MetricsApp {
  const slots = options.slots ?? 2;
  const ctxPerSlot = options.ctxPerSlot ?? 256;
  const real = new BatchDecoder(model, { slots, ctxPerSlot });
  const gate = new StepGate();
  const decoder: Decoder = {
    slots: real.slots,
    ctxPerSlot: real.ctxPerSlot,
    batchSize: real.batchSize,
    start: (slot, tokens, opts) => real.start(slot, tokens, opts),
    cancel: (slot) => real.cancel(slot),
    cachedPrefix: (slot) => real.cachedPrefix(slot),
    copyPrefix: (src, dst, count) => real.copyPrefix(src, dst, count),
    saveSlot: (slot, path) => real.saveSlot(slot, path),
    restoreSlot: (slot, path) => real.restoreSlot(slot, path),
    eraseSlot: (slot) => real.eraseSlot(slot),
    kvCells: real.kvCells,
    unifiedKv: real.unifiedKv,
    saveState: (slot) => real.saveState(slot),
    restoreState: (slot, saved) => real.restoreState(slot, saved),
    step: async (budget) => {
      const held = gate.wait();
      if (held !== null) await held;
      return real.step(budget);
    },
  };
  const chat = new ChatTemplates(model);
  const server = assembleServer({
    path: model.info.path,
    config: { ctxPerSlot, slots, ...options.config, endpoints: { metrics: true, ...options.config?.endpoints } },
    app: { ready: true },
    ...(options.scheduler ? { scheduler: options.scheduler } : {}),
    kvCellsTotal: ctxPerSlot * slots,
  });
  const scheduler = server.attach({ model, chat, decoder });
  const { app, metrics } = server;
  const owned = scheduler;
  t.teardown(async () => {
    gate.open();
    await app.close();
    await owned.close(0);
    real.dispose();
    chat.dispose();
  });
  return { app, scheduler: owned, metrics, gate };
}

// --- vLLM's gauges, as the Endpoint Picker reads them ----------------------------------------------------------

/** The vllm:* families /metrics exports (docs/SCALING.md): the gateway's model-server protocol. */
export const VLLM_METRICS = [
  'vllm:num_requests_waiting',
  'vllm:num_requests_running',
  'vllm:kv_cache_usage_perc',
  'vllm:cache_config_info',
] as const;

// --- llama-server's metrics -------------------------------------------------------------------------------

/**
 * What llama-server's /metrics reports (vendor/llama.cpp/tools/server/server-task.cpp, to_metrics()): names,
 * types and help texts, verbatim. (spec_decode_num_accepted_tokens_per_pos_total appears there only once a
 * draft was accepted, so never here.)
 */
export const LLAMA_SERVER_METRICS: ReadonlyArray<{ name: string; type: 'counter' | 'gauge'; help: string }> = [
  {
    name: 'llamacpp:prompt_tokens_total',
    type: 'counter',
    help: 'Number of prompt tokens processed, excluding cached tokens',
  },
  {
    name: 'llamacpp:prompt_tokens_cached_total',
    type: 'counter',
    help: 'Number of prompt tokens reused from the cache',
  },
  { name: 'llamacpp:prompt_seconds_total', type: 'counter', help: 'Total time spent processing prompts' },
  { name: 'llamacpp:tokens_predicted_total', type: 'counter', help: 'Number of generation tokens processed' },
  { name: 'llamacpp:tokens_predicted_seconds_total', type: 'counter', help: 'Total time spent generating tokens' },
  {
    name: 'llamacpp:n_decode_total',
    type: 'counter',
    help: 'Total number of llama_decode() calls, excluding speculative decoding and multimodal decoding',
  },
  { name: 'llamacpp:n_tokens_max', type: 'counter', help: 'Largest observed sequence length (prompt + generation)' },
  {
    name: 'llamacpp:spec_decode_num_draft_tokens_total',
    type: 'counter',
    help: 'Speculative: Total draft tokens generated',
  },
  {
    name: 'llamacpp:spec_decode_num_accepted_tokens_total',
    type: 'counter',
    help: 'Speculative: Total draft tokens accepted by the target model',
  },
  {
    name: 'llamacpp:spec_decode_num_drafts_total',
    type: 'counter',
    help: 'Speculative: Total speculative decoding verification steps',
  },
  { name: 'llamacpp:prompt_tokens_seconds', type: 'gauge', help: 'Average prompt throughput in tokens/s' },
  { name: 'llamacpp:predicted_tokens_seconds', type: 'gauge', help: 'Average generation throughput in tokens/s' },
  { name: 'llamacpp:requests_processing', type: 'gauge', help: 'Number of requests processing' },
  { name: 'llamacpp:requests_deferred', type: 'gauge', help: 'Number of requests deferred' },
  {
    name: 'llamacpp:n_busy_slots_per_decode',
    type: 'gauge',
    help: 'Average number of busy slots per llama_decode() call',
  },
];
