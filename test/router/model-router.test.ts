// ModelRouter's policy with fake hosts: `open` gives back a promise the test settles by hand, every open and close
// is logged in order, and the tests wait on those events and on the router's promises (never on a fixed sleep).
import type { Test } from 'tap';
import t from 'tap';
import type { CatalogEntry } from '../../src/router/catalog.ts';
import {
  type HostedModel,
  type ModelLease,
  ModelRouter,
  type ModelStatus,
  type RouterOptions,
} from '../../src/router/model-router.ts';

/** What a fake host serves with: which model, and which of its opens (1 = the first). */
interface Deps {
  id: string;
  gen: number;
}

function entry(id: string, extra: Partial<CatalogEntry> = {}): CatalogEntry {
  return {
    id,
    source: 'preset',
    path: `/models/${id}.gguf`,
    aliases: [],
    argv: [],
    loadOnStartup: false,
    stopTimeoutSeconds: 10,
    ...extra,
  };
}

interface Settle<T> {
  resolve(value: T): void;
  reject(err: unknown): void;
}

type Options = Partial<Omit<RouterOptions<Deps>, 'catalog' | 'open'>>;

/** A router over fake hosts, with a log of opens, closes and status changes. */
class Harness {
  /** 'open A', 'close A 0', in the order they happened. */
  readonly log: string[] = [];
  /** 'A loading', 'A loaded', ... */
  readonly statuses: string[] = [];
  readonly errors = new Map<string, string | undefined>();
  entries: CatalogEntry[];
  /** When true, close() waits for closeDone(id). */
  manualClose = false;
  readonly router: ModelRouter<Deps>;
  readonly #opens = new Map<string, Settle<HostedModel<Deps>>>();
  readonly #closes = new Map<string, Settle<void>>();
  readonly #gen = new Map<string, number>();
  readonly #checks: Array<{ cond: () => boolean; resolve: () => void }> = [];
  /** Keeps the process up while a check waits (the router's idle timers are unref'd). */
  #keepAlive: ReturnType<typeof setInterval> | undefined;

  constructor(entries: CatalogEntry[], options: Options = {}) {
    this.entries = entries;
    const events = {
      status: (id: string, status: ModelStatus, detail: { error?: string }) => {
        this.statuses.push(`${id} ${status}`);
        if (status === 'failed') this.errors.set(id, detail.error);
        this.#check();
      },
    };
    this.router = new ModelRouter<Deps>({
      modelsMax: 0,
      autoload: true,
      ...options,
      events,
      catalog: async () => this.entries,
      open: (e) => this.#open(e),
    });
  }

  #open(e: CatalogEntry): Promise<HostedModel<Deps>> {
    const gen = (this.#gen.get(e.id) ?? 0) + 1;
    this.#gen.set(e.id, gen);
    return new Promise<HostedModel<Deps>>((resolve, reject) => {
      this.#opens.set(e.id, {
        resolve: (host) => {
          this.#opens.delete(e.id);
          resolve(host);
        },
        reject: (err) => {
          this.#opens.delete(e.id);
          reject(err);
        },
      });
      this.note(`open ${e.id}`);
    });
  }

  #host(id: string): HostedModel<Deps> {
    const gen = this.#gen.get(id) ?? 0;
    return {
      deps: { id, gen },
      meta: { id, gen },
      close: (graceMs) => {
        this.note(`close ${id} ${graceMs}`);
        if (!this.manualClose) return Promise.resolve();
        return new Promise<void>((resolve, reject) => this.#closes.set(id, { resolve, reject }));
      },
    };
  }

  note(line: string): void {
    this.log.push(line);
    this.#check();
  }

  #check(): void {
    for (const c of [...this.#checks])
      if (c.cond()) {
        this.#checks.splice(this.#checks.indexOf(c), 1);
        c.resolve();
      }
    if (this.#checks.length === 0 && this.#keepAlive !== undefined) {
      clearInterval(this.#keepAlive);
      this.#keepAlive = undefined;
    }
  }

  /** Resolves once cond() holds (checked now and after every open, close and status change). */
  until(cond: () => boolean): Promise<void> {
    if (cond()) return Promise.resolve();
    this.#keepAlive ??= setInterval(() => {}, 60_000);
    return new Promise((resolve) => this.#checks.push({ cond, resolve }));
  }

  /** Resolves when `line` is in the log `n` times. */
  logged(line: string, n = 1): Promise<void> {
    return this.until(() => this.count(line) >= n);
  }

  count(line: string): number {
    return this.log.filter((l) => l === line).length;
  }

  /** Resolves when the model's status is `status`. */
  reaches(id: string, status: ModelStatus): Promise<void> {
    return this.until(() => this.status(id) === status);
  }

  status(id: string): ModelStatus | undefined {
    return this.router.list().find((m) => m.entry.id === id)?.status;
  }

  opening(id: string): boolean {
    return this.#opens.has(id);
  }

  /** Lets the pending open of `id` succeed (waiting for it to be called first). */
  async finishOpen(id: string): Promise<void> {
    await this.until(() => this.#opens.has(id));
    this.#opens.get(id)?.resolve(this.#host(id));
  }

  async failOpen(id: string, err: unknown): Promise<void> {
    await this.until(() => this.#opens.has(id));
    this.#opens.get(id)?.reject(err);
  }

  /** Closes the router, letting any open still pending succeed (so a test that failed midway ends cleanly). */
  async shutdown(graceMs = 0): Promise<void> {
    this.manualClose = false;
    for (const c of this.#closes.values()) c.resolve();
    this.#closes.clear();
    const closing = this.router.close(graceMs);
    for (const [id, o] of [...this.#opens]) o.resolve(this.#host(id));
    await closing;
    // Waits nobody will see end (a race's loser) must not keep the process up.
    this.#checks.length = 0;
    clearInterval(this.#keepAlive);
    this.#keepAlive = undefined;
  }

  closeDone(id: string): void {
    const c = this.#closes.get(id);
    if (c === undefined) throw new Error(`no pending close of ${id}`);
    this.#closes.delete(id);
    c.resolve();
  }

  acquire(name: string, options: { autoload?: boolean; signal?: AbortSignal } = {}): Promise<ModelLease<Deps>> {
    return this.router.acquire(name, { autoload: options.autoload ?? true, ...options });
  }

  /** Acquires `id`, letting its open succeed: the model ends loaded and the lease is returned. */
  async loaded(id: string): Promise<ModelLease<Deps>> {
    const lease = this.acquire(id);
    if (this.status(id) !== 'loaded') await this.finishOpen(id);
    return lease;
  }
}

/** Lets every pending callback run (no time passes: a turn of the event loop). */
const settle = async (turns = 3): Promise<void> => {
  for (let i = 0; i < turns; i++) await new Promise<void>((resolve) => setImmediate(resolve));
};

/** A promise's outcome without awaiting it, for asserting that it has not settled yet. */
function track<T>(p: Promise<T>): { settled: () => boolean; promise: Promise<T> } {
  let done = false;
  p.then(
    () => {
      done = true;
    },
    () => {
      done = true;
    },
  );
  return { settled: () => done, promise: p };
}

/** A subtest with a safety net: a broken wait fails it instead of hanging the file. */
const test = (name: string, fn: (t: Test) => Promise<void>) => t.test(name, { timeout: 10_000 }, fn);

async function started(entries: CatalogEntry[], options: Options = {}): Promise<Harness> {
  const h = new Harness(entries, options);
  await h.router.start();
  return h;
}

test('an unknown model is 404 model_not_found; an alias means its entry', async (t) => {
  const h = await started([entry('A', { aliases: ['a-alias', 'gpt-x'] }), entry('B')]);
  await t.rejects(h.acquire('nope'), { statusCode: 404, code: 'model_not_found', message: /'nope' not found/ });
  t.throws(() => h.router.load('nope'), { statusCode: 404, code: 'model_not_found' });
  t.throws(() => h.router.unload('nope'), { statusCode: 404, code: 'model_not_found' });
  t.equal(h.router.find('gpt-x')?.id, 'A');
  const pending = h.acquire('gpt-x');
  await h.finishOpen('A');
  const lease = await pending;
  t.equal(lease.id, 'A', 'the lease names the entry, not the alias');
  t.same(lease.deps, { id: 'A', gen: 1 });
  t.same(h.log, ['open A'], 'only A was opened');
  lease.release();
  await h.shutdown();
});

test('autoload off: an unloaded model is refused until load(); a sleeping one still loads', async (t) => {
  const h = await started([entry('A'), entry('B')], { autoload: false, sleepIdleMs: 5 });
  await t.rejects(h.acquire('A', { autoload: false }), {
    statusCode: 400,
    code: 'model_not_loaded',
    message: /POST \/models\/load/,
  });
  t.same(h.log, [], 'nothing opened');
  t.equal(h.status('A'), 'unloaded');

  h.router.load('A');
  t.equal(h.status('A'), 'loading');
  t.throws(() => h.router.load('A'), { statusCode: 400, code: 'model_loaded' }, 'loading twice is refused');
  // A request while it loads waits for it, autoload or not.
  const during = h.acquire('A', { autoload: false });
  await h.finishOpen('A');
  const lease = await during;
  t.same(lease.deps, { id: 'A', gen: 1 });
  lease.release();
  const after = await h.acquire('A', { autoload: false });
  t.same(after.deps, { id: 'A', gen: 1 }, 'served by the same load');
  after.release();

  // Idle for sleepIdleMs: it sleeps, and a request without autoload wakes it.
  await h.reaches('A', 'sleeping');
  t.same(h.log, ['open A', 'close A 0']);
  const woken = h.acquire('A', { autoload: false });
  await h.finishOpen('A');
  t.same((await woken).deps, { id: 'A', gen: 2 }, 'a sleeping model loads again without autoload');
  t.same(h.log, ['open A', 'close A 0', 'open A']);
  (await woken).release();
  await h.shutdown();
});

test('concurrent requests for one unloaded model share one load', async (t) => {
  const h = await started([entry('A')]);
  const pending = [h.acquire('A'), h.acquire('A'), h.acquire('A')];
  await h.logged('open A');
  await settle();
  t.equal(h.count('open A'), 1, 'opened once');
  t.equal(h.router.list()[0]?.requests, 3, 'three requests wait for it');
  await h.finishOpen('A');
  const leases = await Promise.all(pending);
  t.same(
    leases.map((l) => l.deps),
    [1, 2, 3].map(() => ({ id: 'A', gen: 1 })),
  );
  t.equal(h.router.list()[0]?.requests, 3, 'three leases held');
  for (const l of leases) l.release();
  t.equal(h.router.list()[0]?.requests, 0);
  t.same(h.log, ['open A']);
  await h.shutdown();
});

test('models-max 1: a held model is not evicted; the next waits, then A is closed before B opens', async (t) => {
  const h = await started([entry('A'), entry('B')], { modelsMax: 1 });
  const a = await h.loaded('A');
  const b = track(h.acquire('B'));
  await settle();
  t.same(h.log, ['open A'], "B's open waits while A is held");
  t.notOk(b.settled());
  t.equal(h.status('A'), 'loaded');
  t.equal(h.status('B'), 'unloaded');
  t.equal(h.router.list().find((m) => m.entry.id === 'B')?.requests, 1, 'B has a waiting request');

  a.release();
  await h.logged('open B');
  t.same(h.log, ['open A', 'close A 0', 'open B'], 'A closed (evicted) before B opened');
  t.equal(h.status('A'), 'unloaded');
  t.equal(h.status('B'), 'loading');
  await h.finishOpen('B');
  const lease = await b.promise;
  t.same(lease.deps, { id: 'B', gen: 1 });
  t.equal(h.status('B'), 'loaded');
  t.same(
    h.statuses,
    ['A loading', 'A loaded', 'A unloading', 'A unloaded', 'B loading', 'B loaded'],
    'status events in order',
  );
  lease.release();
  await h.shutdown();
});

test('models-max 1: a release in the same tick as the queued request still starts its load', async (t) => {
  // acquire(B) queues B and starts an admission pass that finds no room; A's release in the same tick must not be
  // lost while that pass winds down.
  const h = await started([entry('A'), entry('B')], { modelsMax: 1 });
  const a = await h.loaded('A');
  const b = track(h.acquire('B'));
  a.release();
  const opened = await Promise.race([
    h.logged('open B').then(() => true),
    settle(10).then(() => h.count('open B') > 0),
  ]);
  t.ok(opened, "B's load starts once A is released");
  t.same(h.log, opened ? ['open A', 'close A 0', 'open B'] : ['open A']);
  if (opened) {
    await h.finishOpen('B');
    (await b.promise).release();
  }
  await h.shutdown();
});

test('models-max 1: queued loads go first come first served, each to its requester', async (t) => {
  const h = await started([entry('A'), entry('B'), entry('C')], { modelsMax: 1 });
  const a = await h.loaded('A');
  const b = track(h.acquire('B'));
  await settle();
  const c = track(h.acquire('C'));
  await settle();
  t.same(h.log, ['open A']);
  a.release();
  await h.logged('open B');
  t.same(h.log, ['open A', 'close A 0', 'open B'], 'B (first in line) opens, not C');
  await h.finishOpen('B');
  await settle();
  t.same(h.log, ['open A', 'close A 0', 'open B'], 'B is not evicted before its requester holds it; C waits');
  t.ok(b.settled(), "B's requester has its lease");
  t.notOk(c.settled());
  if (!b.settled()) return h.shutdown(); // the rest would wait forever
  const bLease = await b.promise;
  t.same(bLease.deps, { id: 'B', gen: 1 }, "B's requester gets B");
  t.equal(h.status('B'), 'loaded');
  bLease.release();
  await h.logged('open C');
  t.same(h.log, ['open A', 'close A 0', 'open B', 'close B 0', 'open C']);
  await h.finishOpen('C');
  const cLease = await c.promise;
  t.same(cLease.deps, { id: 'C', gen: 1 });
  cLease.release();
  await h.shutdown();
});

test('LRU: the least recently used idle model is evicted; held ones never are', async (t) => {
  let clock = 0;
  const h = await started([entry('A'), entry('B'), entry('C'), entry('D')], { modelsMax: 2, now: () => ++clock });
  (await h.loaded('A')).release();
  (await h.loaded('B')).release();
  (await h.acquire('A')).release(); // A is now more recently used than B
  t.same(h.log, ['open A', 'open B']);
  const c = h.acquire('C');
  await h.logged('open C');
  t.same(h.log, ['open A', 'open B', 'close B 0', 'open C'], 'B (least recently used) evicted, not A');
  t.equal(h.status('A'), 'loaded');
  t.equal(h.status('B'), 'unloaded');
  await h.finishOpen('C');
  const cLease = await c;

  // A is now the least recently used but C is held: D evicts A, never C.
  const d = h.acquire('D');
  await h.logged('open D');
  t.same(h.log.slice(4), ['close A 0', 'open D'], 'A (idle) evicted; C (held) kept');
  await h.finishOpen('D');
  const dLease = await d;

  // Both held: a request for A waits, nothing is evicted.
  const a = track(h.acquire('A'));
  await settle();
  t.same(h.log.slice(6), [], 'nothing closed or opened while both are held');
  t.notOk(a.settled());
  dLease.release();
  await h.logged('open A', 2);
  t.same(h.log.slice(6), ['close D 0', 'open A'], 'the first to go idle (D) makes room; C stays');
  t.equal(h.status('C'), 'loaded');
  await h.finishOpen('A');
  (await a.promise).release();
  cLease.release();
  await h.shutdown();
});

test('a model that is awaited (loading with waiters) is not evicted', async (t) => {
  const h = await started([entry('A'), entry('B')], { modelsMax: 1 });
  const a = track(h.acquire('A'));
  await h.logged('open A');
  const b = track(h.acquire('B'));
  await settle();
  t.same(h.log, ['open A'], 'B waits while A loads');
  await h.finishOpen('A');
  await settle();
  t.same(h.log, ['open A'], "A is not evicted between its load and its requester's lease");
  t.ok(a.settled(), "A's requester has its lease");
  t.notOk(b.settled());
  if (!a.settled()) return h.shutdown();
  const aLease = await a.promise;
  t.same(aLease.deps, { id: 'A', gen: 1 });
  aLease.release();
  await h.finishOpen('B');
  (await b.promise).release();
  t.same(h.log, ['open A', 'close A 0', 'open B']);
  await h.shutdown();
});

test('a client that leaves while queued: its acquire rejects, its load leaves the queue', async (t) => {
  const h = await started([entry('A'), entry('B')], { modelsMax: 1 });
  const a = await h.loaded('A');
  const ac = new AbortController();
  const b = h.acquire('B', { signal: ac.signal });
  await settle();
  t.equal(h.router.list().find((m) => m.entry.id === 'B')?.requests, 1);
  ac.abort();
  await t.rejects(b, { name: 'ApiError', statusCode: 499 });
  t.equal(h.router.list().find((m) => m.entry.id === 'B')?.requests, 0, 'B has no request');
  a.release();
  await settle();
  t.same(h.log, ['open A'], 'A stays loaded, B is never opened');
  t.equal(h.status('A'), 'loaded');
  t.equal(h.status('B'), 'unloaded');
  // An already aborted signal: rejected at once, nothing loads.
  const gone = new AbortController();
  gone.abort();
  const held = await h.acquire('A');
  await t.rejects(h.acquire('B', { signal: gone.signal }), { name: 'ApiError', statusCode: 499 });
  held.release();
  await settle();
  t.same(h.log, ['open A']);
  await h.shutdown();
});

test('a failed load: every waiter gets 500 model_load_failed; others serve; a later request retries', async (t) => {
  const h = await started([entry('A'), entry('B')]);
  const b = await h.loaded('B');
  const waiters = [h.acquire('A'), h.acquire('A'), h.acquire('A')];
  await h.failOpen('A', new Error('bad file'));
  for (const w of waiters)
    await t.rejects(w, { statusCode: 500, code: 'model_load_failed', message: /'A' failed to load: bad file/ });
  const view = h.router.list().find((m) => m.entry.id === 'A');
  t.equal(view?.status, 'failed');
  t.match(view?.error, /bad file/);
  t.equal(view?.requests, 0);
  t.match(h.errors.get('A'), /bad file/, 'the status event carries the error');
  b.release();
  const again = await h.acquire('B');
  t.same(again.deps, { id: 'B', gen: 1 }, 'B keeps serving');
  again.release();
  t.equal(h.count('open A'), 1);
  const retry = h.acquire('A');
  await h.logged('open A', 2);
  t.equal(h.status('A'), 'loading');
  t.equal(h.router.list().find((m) => m.entry.id === 'A')?.error, undefined, 'the error clears when it retries');
  await h.finishOpen('A');
  t.same((await retry).deps, { id: 'A', gen: 2 });
  await h.shutdown();
});

test('unload while held: close gets the stop timeout, later requests wait and load it again', async (t) => {
  const h = await started([entry('A', { stopTimeoutSeconds: 3 })]);
  h.manualClose = true;
  const a = await h.loaded('A');
  const unloaded = track(h.router.unload('A'));
  t.equal(h.status('A'), 'unloading');
  t.same(h.log, ['open A', 'close A 3000'], 'close(stopTimeoutSeconds * 1000)');
  t.throws(() => h.router.unload('A'), { statusCode: 400, code: 'model_not_loaded' });
  const again = track(h.acquire('A'));
  await settle();
  t.notOk(again.settled(), 'a request during the unload waits');
  t.notOk(unloaded.settled());
  t.equal(h.count('open A'), 1);
  h.closeDone('A');
  await unloaded.promise;
  a.release(); // the old lease ends late: harmless
  await h.logged('open A', 2);
  t.same(h.statuses.slice(2), ['A unloading', 'A unloaded', 'A loading']);
  await h.finishOpen('A');
  const lease = await again.promise;
  t.same(lease.deps, { id: 'A', gen: 2 }, 'served by the new load');
  lease.release();
  h.manualClose = false;
  await h.shutdown();
});

test('unload of a queued load: it leaves the queue and its waiters get 503', async (t) => {
  const h = await started([entry('A'), entry('B')], { modelsMax: 1 });
  const a = await h.loaded('A');
  const b = h.acquire('B');
  await settle();
  await h.router.unload('B');
  await t.rejects(b, { name: 'ApiError', statusCode: 503 });
  a.release();
  await settle();
  t.same(h.log, ['open A']);
  await h.shutdown();
});

test('sleep-idle: an idle model sleeps (closed), a request wakes it, a held one never sleeps', async (t) => {
  const h = await started([entry('A'), entry('B')], { sleepIdleMs: 5 });
  const held = await h.loaded('B');
  const lease = await h.loaded('A');
  lease.release();
  await h.reaches('A', 'sleeping');
  t.same(h.log, ['open B', 'open A', 'close A 0']);
  t.same(h.statuses.slice(2), ['A loading', 'A loaded', 'A unloading', 'A sleeping']);
  t.equal(h.status('B'), 'loaded', 'B, held since before A loaded, does not sleep');
  const woken = h.acquire('A');
  await h.finishOpen('A');
  const again = await woken;
  t.same(again.deps, { id: 'A', gen: 2 });
  again.release();
  await h.reaches('A', 'sleeping');
  t.equal(h.count('close A 0'), 2);
  held.release();
  await h.reaches('B', 'sleeping');
  t.same(h.log, ['open B', 'open A', 'close A 0', 'open A', 'close A 0', 'close B 0']);
  await h.shutdown();
});

test('memory budget: eviction by footprint, a model too big fails naming MiB, a small one fits', async (t) => {
  const MiB = 2 ** 20;
  const sizes: Record<string, number> = { A: 60 * MiB, B: 60 * MiB, C: 30 * MiB, Huge: 200 * MiB };
  const h = await started([entry('A'), entry('B'), entry('C'), entry('Huge')], {
    budget: { bytes: 100 * MiB, footprint: async (e) => sizes[e.id] ?? 0 },
  });
  (await h.loaded('A')).release();
  const b = h.acquire('B');
  await h.logged('open B');
  t.same(h.log, ['open A', 'close A 0', 'open B'], 'A (idle) evicted to fit B');
  await h.finishOpen('B');
  const bLease = await b;

  await t.rejects(h.acquire('Huge'), {
    statusCode: 500,
    code: 'model_load_failed',
    message: /needs 200 MiB, more than the whole budget of 100 MiB/,
  });
  t.equal(h.status('Huge'), 'failed');
  t.equal(h.status('B'), 'loaded', 'B untouched by the refusal');

  const c = h.acquire('C');
  await h.finishOpen('C');
  (await c).release();
  t.same(h.log, ['open A', 'close A 0', 'open B', 'open C'], 'C fits beside B: nothing evicted');
  t.equal(h.status('B'), 'loaded');
  bLease.release();
  await h.shutdown();
});

test('the budget with the literal figures of the brief: bytes 100, A 60, B 60, C 30', async (t) => {
  const sizes: Record<string, number> = { A: 60, B: 60, C: 30, D: 101 };
  const h = await started([entry('A'), entry('B'), entry('C'), entry('D')], {
    budget: { bytes: 100, footprint: async (e) => sizes[e.id] ?? 0 },
  });
  (await h.loaded('A')).release();
  const b = await h.loaded('B');
  t.same(h.log, ['open A', 'close A 0', 'open B']);
  await t.rejects(h.acquire('D'), { statusCode: 500, message: /MiB/ });
  (await h.loaded('C')).release();
  t.same(h.log, ['open A', 'close A 0', 'open B', 'open C']);
  b.release();
  await h.shutdown();
});

test('an entry with a problem: acquire is 500 naming it, load() is 400', async (t) => {
  const h = await started([entry('P', { problem: 'no model file: give `model = /path/file.gguf` in [P]' })]);
  await t.rejects(h.acquire('P'), { statusCode: 500, code: 'model_load_failed', message: /no model file/ });
  t.throws(() => h.router.load('P'), { statusCode: 400, message: /no model file/ });
  await t.rejects(h.acquire('P', { autoload: false }), { statusCode: 400, code: 'model_not_loaded' });
  t.same(h.log, [], 'never opened');
  t.equal(h.router.list()[0]?.requests, 0);
  await h.shutdown();
});

test('reload: a removed loaded model is closed and dropped, a new one is listed', async (t) => {
  const h = await started([entry('A'), entry('B')]);
  (await h.loaded('A')).release();
  h.entries = [entry('B'), entry('N')];
  await h.router.reload();
  await h.logged('close A 0');
  t.same(
    h.router.list().map((m) => [m.entry.id, m.status]),
    [
      ['B', 'unloaded'],
      ['N', 'unloaded'],
    ],
  );
  await t.rejects(h.acquire('A'), { statusCode: 404, code: 'model_not_found' });
  const n = h.acquire('N');
  await h.finishOpen('N');
  (await n).release();
  t.same(h.log, ['open A', 'close A 0', 'open N']);
  await h.shutdown();
});

test('reload: a model removed while it loads keeps its room until it is closed', async (t) => {
  const h = await started([entry('A'), entry('B')], { modelsMax: 1 });
  const a = track(h.acquire('A'));
  await h.until(() => h.opening('A'));
  h.entries = [entry('B')];
  await h.router.reload();
  t.same(
    h.router.list().map((m) => m.entry.id),
    ['B'],
    'unlisted at once',
  );
  const b = track(h.acquire('B'));
  await settle();
  t.notOk(h.opening('B'), 'B waits: A still takes the only room');
  await h.finishOpen('A');
  await t.rejects(a.promise, { name: 'ApiError', statusCode: 503, message: /removed from the catalog/ });
  await h.finishOpen('B');
  (await b.promise).release();
  t.same(h.log, ['open A', 'close A 0', 'open B']);
  await h.shutdown();
});

test('reload: a changed model that is not loaded takes its new settings', async (t) => {
  const h = await started([entry('A', { argv: ['--ctx-size', '1024'] })]);
  h.entries = [entry('A', { argv: ['--ctx-size', '4096'] })];
  await h.router.reload();
  t.same(h.router.find('A')?.argv, ['--ctx-size', '4096']);
  await h.shutdown();
});

test('close: every loaded model is closed, queued requests get 503, new ones too', async (t) => {
  const h = await started([entry('A'), entry('B'), entry('C')], { modelsMax: 2 });
  const a = await h.loaded('A');
  const b = await h.loaded('B');
  const c = h.acquire('C');
  await settle();
  const closing = h.router.close(250);
  await t.rejects(c, { name: 'ApiError', statusCode: 503 });
  a.release();
  b.release();
  await closing;
  t.same(h.log.slice(2).sort(), ['close A 250', 'close B 250'], 'both closed with the grace');
  t.equal(h.count('open C'), 0);
  t.same(
    h.router.list().map((m) => m.status),
    ['unloaded', 'unloaded', 'unloaded'],
  );
  await t.rejects(h.acquire('A'), { name: 'ApiError', statusCode: 503 });
});

test('close while a model loads: it waits for the load, then closes the host', async (t) => {
  const h = await started([entry('A')]);
  const a = h.acquire('A');
  await h.logged('open A');
  const closing = track(h.router.close(0));
  await settle();
  t.notOk(closing.settled(), 'close waits for the load in progress');
  await h.finishOpen('A');
  await closing.promise;
  await t.rejects(a, { name: 'ApiError', statusCode: 503 });
  t.same(h.log, ['open A', 'close A 0']);
});

test('start: load-on-startup models load without a request', async (t) => {
  const h = await started([entry('A', { loadOnStartup: true }), entry('B')]);
  await h.logged('open A');
  await h.finishOpen('A');
  await h.reaches('A', 'loaded');
  t.same(h.log, ['open A']);
  await h.shutdown();
});
