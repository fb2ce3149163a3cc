// What the soak reads from the server while it runs: /metrics (prom-client's process and event-loop figures, and
// llama-server's slot gauges), /slots and the /health round trip.
import { authHeaders } from '../loadgen/request.ts';
import type { Sample } from './verdict.ts';

/** The unlabelled series of a Prometheus text exposition, by name. */
export function parseExposition(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)\s+(\S+)/.exec(line);
    if (m?.[1] !== undefined && m[2] !== undefined) out.set(m[1], Number(m[2]));
  }
  return out;
}

export class MetricsUnavailable extends Error {}

export async function readMetrics(url: string, apiKey: string | null): Promise<Map<string, number>> {
  const res = await fetch(`${url}/metrics`, { headers: authHeaders(apiKey), signal: AbortSignal.timeout(10_000) });
  const body = await res.text();
  if (res.status !== 200)
    throw new MetricsUnavailable(`GET /metrics answered ${res.status}: the server must run with --metrics`);
  return parseExposition(body);
}

export async function busySlots(url: string, apiKey: string | null): Promise<number> {
  const res = await fetch(`${url}/slots`, { headers: authHeaders(apiKey), signal: AbortSignal.timeout(10_000) });
  const slots = (await res.json()) as Array<{ is_processing?: boolean }>;
  return slots.filter((s) => s.is_processing === true).length;
}

async function healthMs(url: string): Promise<number | null> {
  const t0 = performance.now();
  try {
    const res = await fetch(`${url}/health`, { signal: AbortSignal.timeout(10_000) });
    await res.text();
    return res.status === 200 ? performance.now() - t0 : null;
  } catch {
    return null;
  }
}

export async function sample(url: string, apiKey: string | null, t: number): Promise<Sample> {
  const [metrics, health] = await Promise.all([readMetrics(url, apiKey), healthMs(url)]);
  const get = (name: string): number => metrics.get(name) ?? 0;
  return {
    t,
    rssBytes: get('process_resident_memory_bytes'),
    promptCacheBytes: get('llama_slots_prompt_cache_bytes'),
    checkpointBytes: get('llama_slots_checkpoint_bytes'),
    heapUsedBytes: get('nodejs_heap_size_used_bytes'),
    lagP99Ms: get('nodejs_eventloop_lag_p99_seconds') * 1000,
    lagMaxMs: get('nodejs_eventloop_lag_max_seconds') * 1000,
    handles: get('nodejs_active_handles_total'),
    busySlots: get('llamacpp:requests_processing'),
    queued: get('llamacpp:requests_deferred'),
    healthMs: health,
  };
}
