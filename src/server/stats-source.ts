// Builds the live view's frames (stats-frame.ts) from what the server already has: the scheduler's slot
// snapshot and queue (each model's, in router mode), the live aggregator (src/metrics/live-stats.ts), the decoder's KV use, the model and
// the devices. Everything is read through getters, so the entry point can hand them in before the model has
// loaded, and tests can hand in plain objects.
import type { ClientWaiting, SlotSnapshot } from '../scheduler/types.ts';
import type {
  ClientShare,
  DeviceView,
  LiveFigures,
  ModelView,
  ServerInfo,
  SlotView,
  StatsFrame,
} from './stats-frame.ts';

/** The part of the Scheduler the live view reads. */
export interface StatsScheduler {
  snapshot(): SlotSnapshot[];
  readonly queueLength: number;
  readonly queuedTokens: number;
  queueByClient(): ClientWaiting[];
}

/** The part of the loaded model's info the live view shows. */
export interface StatsModelInfo {
  description: string;
  nParams: number;
  sizeBytes: number;
  /** -1: llama.cpp reported no offload (CPU). */
  offloadedLayers: number;
  offloadableLayers: number;
}

export interface StatsDevice {
  name: string;
  description: string;
  type: string;
  memoryFreeBytes: number;
  memoryTotalBytes: number;
  computeCapability?: string;
}

/** Router mode: one model the server knows, as the live view reads it. */
export interface StatsModel {
  id: string;
  status: ModelView['status'];
  requests: number;
  /** Its scheduler while it is loaded (or unloading). */
  scheduler?: StatsScheduler | undefined;
  /** The slots and context it loaded with (0 before its first load). */
  slots: number;
  ctxPerSlot: number;
}

export interface StatsSourceOptions {
  modelId: string;
  slots: number;
  ctxPerSlot: number;
  live: { snapshot(): LiveFigures };
  /** undefined while the model loads. */
  scheduler: () => StatsScheduler | undefined;
  model: () => StatsModelInfo | undefined;
  kv: () => { cellsUsed: number; cellsTotal: number };
  devices: () => readonly StatsDevice[];
  /** Router mode: every model, each with its own scheduler while loaded (the frame's `models`). */
  models?: () => readonly StatsModel[];
  /** Free VRAM changes slowly; devices are asked again after this long. Default 5000 ms. */
  devicesRefreshMs?: number;
  /** The scheduler's clock (its startedAt times are on it). Default performance.now. */
  schedulerNow?: () => number;
  /** Epoch milliseconds. Default Date.now. */
  now?: () => number;
}

export class StatsSource {
  readonly #o: StatsSourceOptions;
  readonly #now: () => number;
  readonly #schedulerNow: () => number;
  readonly #startedAt: number;
  #devices: { at: number; list: DeviceView[] } | null = null;

  constructor(options: StatsSourceOptions) {
    this.#o = options;
    this.#now = options.now ?? Date.now;
    this.#schedulerNow = options.schedulerNow ?? (() => performance.now());
    this.#startedAt = this.#now();
  }

  frame(state: StatsFrame['state']): StatsFrame {
    const time = this.#now();
    const scheduler = this.#o.scheduler();
    const snapshot = scheduler?.snapshot() ?? [];
    const schedulerNow = this.#schedulerNow();
    const models = this.#o.models?.();
    // The queue counts every scheduler's: the one model's, or in router mode each loaded model's.
    const queues = [scheduler, ...(models ?? []).map((m) => m.scheduler)].filter((s) => s !== undefined);
    const shares = queues.map((s) => clientShares(s.queueByClient(), s === scheduler ? snapshot : s.snapshot()));
    return {
      time,
      state,
      server: this.#server(time),
      slots: slotViews(snapshot, schedulerNow),
      queue: {
        requests: queues.reduce((n, s) => n + s.queueLength, 0),
        tokens: queues.reduce((n, s) => n + s.queuedTokens, 0),
        clients: shares.length === 1 ? (shares[0] ?? []) : mergeShares(shares),
      },
      kv: this.#o.kv(),
      live: this.#o.live.snapshot(),
      ...(models !== undefined ? { models: models.map((m) => modelView(m, schedulerNow)) } : {}),
    };
  }

  #server(time: number): ServerInfo {
    const model = this.#o.model();
    const devices = this.#deviceList(time);
    const gpu = devices.find((d) => d.type !== 'cpu');
    const offloaded = model !== undefined && model.offloadedLayers >= 0;
    return {
      model: this.#o.modelId,
      description: model?.description ?? '',
      params: model?.nParams ?? 0,
      sizeBytes: model?.sizeBytes ?? 0,
      backend: gpu !== undefined && offloaded ? `${gpu.description || gpu.name} (GPU)` : 'CPU',
      devices,
      slots: this.#o.slots,
      ctxPerSlot: this.#o.ctxPerSlot,
      layersOffloaded: offloaded ? `${model.offloadedLayers}/${model.offloadableLayers}` : null,
      startedAt: this.#startedAt,
    };
  }

  #deviceList(time: number): DeviceView[] {
    const refresh = this.#o.devicesRefreshMs ?? 5000;
    if (this.#devices === null || time - this.#devices.at >= refresh) {
      let list: DeviceView[];
      try {
        list = this.#o.devices().map((d) => ({
          name: d.name,
          description: d.description,
          type: d.type,
          memoryTotalBytes: d.memoryTotalBytes,
          memoryFreeBytes: d.memoryFreeBytes,
          computeCapability: d.computeCapability ?? null,
        }));
      } catch {
        // A backend that cannot report its devices must not take the live view down with it.
        list = this.#devices?.list ?? [];
      }
      this.#devices = { at: time, list };
    }
    return this.#devices.list;
  }
}

function slotViews(snapshot: readonly SlotSnapshot[], schedulerNow: number): SlotView[] {
  return snapshot.map((s) => ({
    id: s.id,
    state: s.state,
    cachedTokens: s.cachedTokens,
    request:
      s.request === null
        ? null
        : {
            id: s.request.id,
            client: s.request.client,
            promptTokens: s.request.promptTokens,
            reusedTokens: s.request.reusedTokens,
            generatedTokens: s.request.generatedTokens,
            draftTokens: s.request.draftTokens,
            draftAccepted: s.request.draftAccepted,
            runningMs: Math.max(0, schedulerNow - s.request.startedAt),
          },
  }));
}

function modelView(m: StatsModel, schedulerNow: number): ModelView {
  const scheduler = m.scheduler;
  return {
    id: m.id,
    status: m.status,
    requests: m.requests,
    slotCount: m.slots,
    ctxPerSlot: m.ctxPerSlot,
    slots: scheduler !== undefined ? slotViews(scheduler.snapshot(), schedulerNow) : [],
    queue: { requests: scheduler?.queueLength ?? 0, tokens: scheduler?.queuedTokens ?? 0 },
  };
}

/** Waiting clients in the order their turns come, then clients that only have running requests. */
export function clientShares(
  waiting: readonly ClientWaiting[],
  slots: readonly SlotSnapshot[],
): StatsFrame['queue']['clients'] {
  const running = new Map<string, number>();
  for (const s of slots)
    if (s.request !== null) running.set(s.request.client, (running.get(s.request.client) ?? 0) + 1);
  const out = waiting.map((w) => ({
    client: w.client,
    waiting: w.requests,
    waitingTokens: w.tokens,
    running: running.get(w.client) ?? 0,
  }));
  const listed = new Set(waiting.map((w) => w.client));
  for (const [client, n] of running)
    if (!listed.has(client)) out.push({ client, waiting: 0, waitingTokens: 0, running: n });
  return out;
}

/** Several schedulers' client shares as one list: each client once, with waiting ones first. */
function mergeShares(lists: ReadonlyArray<StatsFrame['queue']['clients']>): StatsFrame['queue']['clients'] {
  const byClient = new Map<string, ClientShare>();
  for (const list of lists)
    for (const c of list) {
      const seen = byClient.get(c.client);
      if (seen === undefined) byClient.set(c.client, { ...c });
      else {
        seen.waiting += c.waiting;
        seen.waitingTokens += c.waitingTokens;
        seen.running += c.running;
      }
    }
  const all = [...byClient.values()];
  return [...all.filter((c) => c.waiting > 0), ...all.filter((c) => c.waiting === 0)];
}
