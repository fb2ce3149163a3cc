// Several models in one server (llama-server's router mode, in one process): which models there are, which are
// loaded, and which request goes to which. A request names its model; one that is not loaded is loaded first
// (autoload) while the request waits. Loads wait in one first-come queue for room: --models-max models at most, and
// their footprints within the memory budget. Room is made by unloading the least recently used idle model; a model
// that serves or awaits a request is never unloaded under it, so the head of the queue waits until one goes idle.
// Requests for a model that is already queued share its place (one load, one eviction); a queued load whose
// requests have all gone leaves the queue.
//
// The router knows nothing of llama.cpp: `open` (src/entry/router-host.ts) loads a model and gives back what
// serves it, so tests drive the policy with fakes.
import { ApiError, invalidRequest } from '../server/errors.ts';
import type { CatalogEntry } from './catalog.ts';

export type ModelStatus = 'unloaded' | 'loading' | 'loaded' | 'unloading' | 'sleeping' | 'failed';

/** A loaded model, as `open` gives it. */
export interface HostedModel<D> {
  /** What the HTTP layer serves the model's requests with. */
  deps: D;
  /** Facts for the model listing (llama-server's /v1/models `meta`). */
  meta: Record<string, unknown>;
  /** Lets running requests finish for up to graceMs, cancels the rest, then frees the model's memory. */
  close(graceMs: number): Promise<void>;
}

export interface MemoryBudget {
  /** Named in the error when a model is bigger than all of it ('VRAM', 'host memory'). */
  name?: string;
  bytes: number;
  footprint: (entry: CatalogEntry) => Promise<number>;
}

export interface RouterEvents {
  /** A model's status changed (`error` with 'failed'; `seconds`: how long the load took, with 'loaded'). */
  status?(id: string, status: ModelStatus, detail: { error?: string; seconds?: number }): void;
}

export interface RouterOptions<D> {
  /** Reads the models there are (again on reload). */
  catalog: () => Promise<CatalogEntry[]>;
  /** Loads one model; a rejection is its load error. */
  open: (entry: CatalogEntry) => Promise<HostedModel<D>>;
  /** Models loaded at once at most (0: no limit). llama-server's --models-max, default 4. */
  modelsMax: number;
  /** A request for a model that is not loaded loads it (--models-autoload, default on). */
  autoload: boolean;
  /** A model idle this long is unloaded ('sleeping'), and loaded again by its next request. */
  sleepIdleMs?: number;
  /** Memory the loaded models may take together, with each model's footprint (known before it loads). */
  budget?: MemoryBudget;
  /** More budgets (host memory and VRAM): a model loads only when it fits every one. */
  budgets?: MemoryBudget[];
  events?: RouterEvents;
  now?: () => number;
  /**
   * llama-server's LLAMA_SERVER_DEBUG_FAKE_TIMING, for its router tests: every load waits this long before it
   * starts, and every request holds its model this long before it runs (so that it counts as busy). Default 0.
   */
  debugDelayMs?: number;
}

/** A request's hold on its model: the model is not unloaded until release(). */
export interface ModelLease<D> {
  id: string;
  deps: D;
  release(): void;
}

/** One model in the listing. */
export interface ModelView {
  entry: CatalogEntry;
  status: ModelStatus;
  error?: string;
  /** Requests holding or awaiting it. */
  requests: number;
  meta?: Record<string, unknown>;
}

interface Deferred<T> {
  promise: Promise<T>;
  resolve(value: T): void;
  reject(err: unknown): void;
}

function deferred<T>(): Deferred<T> {
  let resolve: (value: T) => void = () => {};
  let reject: (err: unknown) => void = () => {};
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  // Nobody may be waiting (an explicit load): a failure is reported in the status, never unhandled.
  promise.catch(() => {});
  return { promise, resolve, reject };
}

interface Tracked<D> {
  entry: CatalogEntry;
  status: ModelStatus;
  error?: string | undefined;
  host?: HostedModel<D> | undefined;
  /** While queued or loading: settles when the load ends. */
  load?: Deferred<HostedModel<D>> | undefined;
  /** Queued or loading because someone asked with POST /models/load (it stays queued without waiters). */
  explicit: boolean;
  /** While unloading: settles when it is unloaded. */
  unloading?: Promise<void> | undefined;
  /** Leases held, and requests waiting for it to load. */
  holds: number;
  waiters: number;
  /** Its footprint in each budget, once known (empty: not asked yet). */
  footprints: number[];
  lastUsed: number;
  idleTimer?: ReturnType<typeof setTimeout> | undefined;
  /** Dropped from the catalog by a reload: unlisted, and forgotten once it is unloaded. */
  removed?: boolean;
}

const messageOf = (err: unknown): string => (err instanceof Error ? err.message : String(err));

export function modelNotFound(name: string): ApiError {
  return new ApiError(404, 'invalid_request_error', `model '${name}' not found`, {
    param: 'model',
    code: 'model_not_found',
  });
}

export class ModelRouter<D> {
  readonly #o: RouterOptions<D>;
  readonly #now: () => number;
  #models = new Map<string, Tracked<D>>();
  /** Loads waiting for room, first come first served. */
  readonly #queue: Tracked<D>[] = [];
  #closed = false;

  constructor(options: RouterOptions<D>) {
    this.#o = options;
    this.#now = options.now ?? (() => performance.now());
  }

  /** Reads the catalog and starts the models marked load-on-startup. */
  async start(): Promise<void> {
    await this.reload();
    for (const t of this.#models.values()) if (t.entry.loadOnStartup) this.#enqueue(t, true);
    this.#pump();
  }

  /**
   * Reads the catalog again (GET /models?reload=1): new models are listed, removed ones unloaded and dropped,
   * changed ones that are not loaded take their new settings (a loaded one keeps running as it is).
   */
  async reload(): Promise<void> {
    const entries = await this.#o.catalog();
    const seen = new Set<string>();
    const names = new Map<string, string>();
    for (const entry of entries) {
      for (const name of [entry.id, ...entry.aliases]) {
        const other = names.get(name);
        if (other !== undefined)
          throw new Error(
            name === entry.id && other === entry.id
              ? `model '${name}' appears twice`
              : `model name '${name}' is used by '${other}' and '${entry.id}'`,
          );
        names.set(name, entry.id);
      }
      seen.add(entry.id);
      const t = this.#models.get(entry.id);
      if (t === undefined)
        this.#models.set(entry.id, {
          entry,
          status: 'unloaded',
          explicit: false,
          holds: 0,
          waiters: 0,
          footprints: [],
          lastUsed: 0,
        });
      else {
        t.removed = false;
        if (t.status === 'unloaded' || t.status === 'failed' || t.status === 'sleeping') t.entry = entry;
      }
    }
    for (const [id, t] of this.#models) {
      if (seen.has(id) || t.removed) continue;
      // Gone from the catalog: unlisted at once, but it keeps its room until it is unloaded.
      t.removed = true;
      if (t.status !== 'loading') this.#dequeue(t);
      if (t.status !== 'loading') t.load?.reject(modelNotFound(id));
      if (t.host !== undefined && t.status === 'loaded') void this.#unload(t, 'unloaded', 0);
      else if (t.status !== 'loading' && t.status !== 'unloading') this.#models.delete(id);
    }
  }

  /** Every model, in the catalog's order. */
  list(): ModelView[] {
    return [...this.#models.values()]
      .filter((t) => t.removed !== true)
      .map((t) => ({
        entry: t.entry,
        status: t.status,
        ...(t.error !== undefined ? { error: t.error } : {}),
        requests: t.holds + t.waiters,
        ...(t.host !== undefined ? { meta: t.host.meta } : {}),
      }));
  }

  /** The model a name (its id or an alias) means. */
  find(name: string): CatalogEntry | undefined {
    return this.#find(name)?.entry;
  }

  /** Loaded models' deps, for the metrics and the live view. */
  loaded(): Array<{ id: string; deps: D }> {
    const out: Array<{ id: string; deps: D }> = [];
    for (const [id, t] of this.#models)
      if (t.host !== undefined && t.status === 'loaded') out.push({ id, deps: t.host.deps });
    return out;
  }

  /**
   * The model `name` serves the caller until release(). A model that is not loaded is loaded first when `autoload`
   * (or it went to sleep), else refused; the wait ends early with `signal` (the client left).
   */
  async acquire(name: string, options: { autoload: boolean; signal?: AbortSignal }): Promise<ModelLease<D>> {
    const t = this.#find(name);
    if (t === undefined) throw modelNotFound(name);
    for (;;) {
      if (this.#closed) throw new ApiError(503, 'unavailable_error', 'the server is shutting down');
      if (t.status === 'loaded' && t.host !== undefined) return this.#served(this.#lease(t, t.host));
      if (t.status === 'unloading') {
        await t.unloading;
        continue;
      }
      if (t.status !== 'loading' && t.load === undefined) {
        if (!options.autoload && t.status !== 'sleeping')
          throw invalidRequest(
            `model '${t.entry.id}' is not loaded: load it with POST /models/load (autoload is off)`,
            'model',
            'model_not_loaded',
          );
        if (t.entry.problem !== undefined) throw loadFailed(t.entry.id, t.entry.problem);
        this.#enqueue(t, false);
      }
      const lease = await this.#awaitLoad(t, options.signal);
      if (lease !== undefined) return this.#served(lease);
    }
  }

  /** POST /models/load: queues the load and returns (the listing shows how it goes). */
  load(name: string): void {
    const t = this.#find(name);
    if (t === undefined) throw modelNotFound(name);
    if (t.status === 'loaded' || t.status === 'loading')
      throw invalidRequest(`model '${t.entry.id}' is already loaded`, 'model', 'model_loaded');
    if (t.entry.problem !== undefined) throw invalidRequest(`model '${t.entry.id}': ${t.entry.problem}`, 'model');
    this.#enqueue(t, true);
    this.#pump();
  }

  /**
   * POST /models/unload: no new request starts on it; running ones get up to the model's stop-timeout to finish
   * (then they are cancelled), and it is freed. Resolves when it is.
   */
  unload(name: string): Promise<void> {
    const t = this.#find(name);
    if (t === undefined) throw modelNotFound(name);
    if (t.load !== undefined && t.status !== 'loading') {
      // Still queued: it leaves the queue; whoever waits for it is told.
      this.#dequeue(t);
      t.load.reject(new ApiError(503, 'unavailable_error', `model '${t.entry.id}' was unloaded before it loaded`));
      t.load = undefined;
      return Promise.resolve();
    }
    if (t.status !== 'loaded') throw invalidRequest(`model '${t.entry.id}' is not loaded`, 'model', 'model_not_loaded');
    return this.#unload(t, 'unloaded', t.entry.stopTimeoutSeconds * 1000);
  }

  /** Unloads every model (their requests get graceMs to finish). */
  async close(graceMs: number): Promise<void> {
    this.#closed = true;
    for (const t of this.#queue.splice(0)) {
      t.load?.reject(new ApiError(503, 'unavailable_error', 'the server is shutting down'));
      t.load = undefined;
    }
    const loading = [...this.#models.values()].flatMap((t) =>
      t.status === 'loading' && t.load ? [t.load.promise] : [],
    );
    await Promise.allSettled(loading);
    await Promise.all(
      [...this.#models.values()].map((t) =>
        t.host !== undefined && t.status === 'loaded' ? this.#unload(t, 'unloaded', graceMs) : t.unloading,
      ),
    );
  }

  /** The lease, after LLAMA_SERVER_DEBUG_FAKE_TIMING's delay (the model counts as busy meanwhile). */
  async #served(lease: ModelLease<D>): Promise<ModelLease<D>> {
    const wait = this.#o.debugDelayMs ?? 0;
    if (wait > 0) await delay(wait);
    return lease;
  }

  #find(name: string): Tracked<D> | undefined {
    const direct = this.#models.get(name);
    if (direct !== undefined) return direct.removed === true ? undefined : direct;
    for (const t of this.#models.values()) if (t.removed !== true && t.entry.aliases.includes(name)) return t;
    return undefined;
  }

  #lease(t: Tracked<D>, host: HostedModel<D>): ModelLease<D> {
    t.holds++;
    t.lastUsed = this.#now();
    this.#clearIdle(t);
    let released = false;
    return {
      id: t.entry.id,
      deps: host.deps,
      release: () => {
        if (released) return;
        released = true;
        t.holds--;
        t.lastUsed = this.#now();
        this.#wentIdle(t);
      },
    };
  }

  /** Waits for t's load; the lease when it loaded, taken while this request still counts as a waiter. */
  async #awaitLoad(t: Tracked<D>, signal?: AbortSignal): Promise<ModelLease<D> | undefined> {
    const load = t.load;
    if (load === undefined) return undefined;
    t.waiters++;
    let onAbort: (() => void) | undefined;
    try {
      const aborted = new Promise<never>((_, reject) => {
        if (signal === undefined) return;
        onAbort = () => reject(new ApiError(499, 'invalid_request_error', 'the client went away'));
        if (signal.aborted) onAbort();
        else signal.addEventListener('abort', onAbort, { once: true });
      });
      aborted.catch(() => {});
      const host = await Promise.race([load.promise, aborted]);
      // Leased before `waiters` drops: the model is never idle (evictable) between its load and this request.
      if (!this.#closed && t.status === 'loaded' && t.host === host) return this.#lease(t, host);
      return undefined;
    } finally {
      if (onAbort !== undefined) signal?.removeEventListener('abort', onAbort);
      t.waiters--;
      // Nobody wants it any more and it has not started loading: it gives its place up.
      if (t.waiters === 0 && !t.explicit && t.status !== 'loading' && t.load === load && this.#queue.includes(t)) {
        this.#dequeue(t);
        t.load = undefined;
        load.reject(new ApiError(499, 'invalid_request_error', 'the client went away'));
        this.#pump();
      }
      this.#wentIdle(t);
    }
  }

  #enqueue(t: Tracked<D>, explicit: boolean): void {
    t.explicit = t.explicit || explicit;
    if (t.load !== undefined) return;
    t.load = deferred();
    this.#queue.push(t);
    this.#pump();
  }

  #dequeue(t: Tracked<D>): void {
    const i = this.#queue.indexOf(t);
    if (i >= 0) this.#queue.splice(i, 1);
  }

  /** Starts queued loads while there is room, making room from idle models; the head waits for one to go idle. */
  #pump(): void {
    if (this.#closed) return;
    const head = this.#queue[0];
    if (head === undefined) return;
    void this.#admit(head);
  }

  #admitting = false;

  /** A pump that came while a pass was running: that pass may have decided before what the pump announced. */
  #pumpAgain = false;

  async #admit(head: Tracked<D>): Promise<void> {
    if (this.#admitting) {
      this.#pumpAgain = true;
      return;
    }
    this.#admitting = true;
    this.#pumpAgain = false;
    let progressed = true;
    try {
      progressed = await this.#admitHead(head);
    } finally {
      this.#admitting = false;
    }
    if (progressed || this.#pumpAgain) this.#pump();
  }

  /** Starts (or fails) the head of the queue; false when it must wait for a model to go idle. */
  async #admitHead(head: Tracked<D>): Promise<boolean> {
    const budgets = this.#budgets;
    if (budgets.length > 0 && head.footprints.length === 0) {
      try {
        for (const budget of budgets) head.footprints.push(await budget.footprint(head.entry));
      } catch (err) {
        head.footprints = [];
        this.#failQueued(head, messageOf(err));
        return true;
      }
      const over = budgets.findIndex((b, i) => (head.footprints[i] ?? 0) > b.bytes);
      const budget = budgets[over];
      if (budget !== undefined) {
        const needs = head.footprints[over] ?? 0;
        head.footprints = [];
        const what = budget.name !== undefined ? ` ${budget.name}` : '';
        this.#failQueued(
          head,
          `it needs ${mib(needs)} MiB, more than the whole${what} budget of ${mib(budget.bytes)} MiB`,
        );
        return true;
      }
    }
    while (!this.#fits(head)) {
      const victim = this.#leastRecentlyUsedIdle();
      if (victim === undefined) return false; // #wentIdle pumps again.
      await this.#unload(victim, 'unloaded', 0);
    }
    if (this.#queue[0] !== head || head.load === undefined) return true;
    this.#queue.shift();
    this.#startLoad(head, head.load);
    return true;
  }

  #failQueued(t: Tracked<D>, error: string): void {
    this.#dequeue(t);
    const load = t.load;
    t.load = undefined;
    t.explicit = false;
    this.#setStatus(t, 'failed', { error });
    load?.reject(loadFailed(t.entry.id, error));
  }

  #fits(head: Tracked<D>): boolean {
    const resident = [...this.#models.values()].filter(
      (t) => t.status === 'loaded' || t.status === 'loading' || t.status === 'unloading',
    );
    if (this.#o.modelsMax > 0 && resident.length >= this.#o.modelsMax) return false;
    return this.#budgets.every(
      (b, i) => resident.reduce((sum, t) => sum + (t.footprints[i] ?? 0), 0) + (head.footprints[i] ?? 0) <= b.bytes,
    );
  }

  get #budgets(): MemoryBudget[] {
    return [...(this.#o.budget !== undefined ? [this.#o.budget] : []), ...(this.#o.budgets ?? [])];
  }

  #leastRecentlyUsedIdle(): Tracked<D> | undefined {
    let best: Tracked<D> | undefined;
    for (const t of this.#models.values()) {
      if (t.status !== 'loaded' || t.holds > 0 || t.waiters > 0) continue;
      if (best === undefined || t.lastUsed < best.lastUsed) best = t;
    }
    return best;
  }

  #startLoad(t: Tracked<D>, load: Deferred<HostedModel<D>>): void {
    const t0 = this.#now();
    this.#setStatus(t, 'loading', {});
    const wait = this.#o.debugDelayMs ?? 0;
    (wait > 0 ? delay(wait).then(() => this.#o.open(t.entry)) : this.#o.open(t.entry)).then(
      (host) => {
        t.load = undefined;
        t.explicit = false;
        if (this.#closed || t.removed === true) {
          const why = this.#closed
            ? 'the server is shutting down'
            : `model '${t.entry.id}' was removed from the catalog`;
          load.reject(new ApiError(503, 'unavailable_error', why));
          // A removed model keeps its room until it is closed; then the queue may use it.
          void host.close(0).finally(() => {
            if (t.removed === true) this.#models.delete(t.entry.id);
            this.#pump();
          });
          return;
        }
        t.host = host;
        t.lastUsed = this.#now();
        t.error = undefined;
        this.#setStatus(t, 'loaded', { seconds: (this.#now() - t0) / 1000 });
        load.resolve(host);
        this.#wentIdle(t);
        this.#pump();
      },
      (err: unknown) => {
        t.load = undefined;
        t.explicit = false;
        this.#setStatus(t, 'failed', { error: messageOf(err) });
        if (t.removed === true) this.#models.delete(t.entry.id);
        load.reject(loadFailed(t.entry.id, messageOf(err)));
        this.#pump();
      },
    );
  }

  #unload(t: Tracked<D>, to: 'unloaded' | 'sleeping', graceMs: number): Promise<void> {
    if (t.unloading !== undefined) return t.unloading;
    const host = t.host;
    this.#clearIdle(t);
    this.#setStatus(t, 'unloading', {});
    t.unloading = (async () => {
      try {
        await host?.close(graceMs);
      } finally {
        t.host = undefined;
        t.unloading = undefined;
        t.footprints = [];
        this.#setStatus(t, to, {});
        if (t.removed === true) this.#models.delete(t.entry.id);
        this.#pump();
      }
    })();
    return t.unloading;
  }

  /** A model nobody holds or awaits: the queue may take its room, and it sleeps after --sleep-idle-seconds. */
  #wentIdle(t: Tracked<D>): void {
    if (t.holds > 0 || t.waiters > 0 || t.status !== 'loaded') return;
    this.#pump();
    const ms = this.#o.sleepIdleMs;
    if (ms === undefined || t.idleTimer !== undefined) return;
    t.idleTimer = setTimeout(() => {
      t.idleTimer = undefined;
      if (t.holds === 0 && t.waiters === 0 && t.status === 'loaded') void this.#unload(t, 'sleeping', 0);
    }, ms);
    t.idleTimer.unref?.();
  }

  #clearIdle(t: Tracked<D>): void {
    if (t.idleTimer === undefined) return;
    clearTimeout(t.idleTimer);
    t.idleTimer = undefined;
  }

  #setStatus(t: Tracked<D>, status: ModelStatus, detail: { error?: string; seconds?: number }): void {
    t.status = status;
    if (detail.error !== undefined) t.error = detail.error;
    else if (status === 'loading') t.error = undefined;
    this.#o.events?.status?.(t.entry.id, status, detail);
  }
}

function loadFailed(id: string, error: string): ApiError {
  return new ApiError(500, 'server_error', `model '${id}' failed to load: ${error}`, {
    param: 'model',
    code: 'model_load_failed',
  });
}

const mib = (bytes: number): number => Math.round(bytes / 2 ** 20);

const delay = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
