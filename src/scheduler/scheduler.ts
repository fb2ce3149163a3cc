// The step loop: admits waiting requests to idle slots between steps, runs one decoder step at a time
// (continuous batching with chunked prefill) and turns the decoder's per-slot events into each request's
// handler calls. Policy only: the decoder does the work, the fair queue decides who waits least, the
// slot choice decides where a request goes, the prompt cache keeps slot states in host RAM for prompts that
// come back. With a unified KV pool, a request starts only when its prompt and an output reservation fit the
// free cells (idle slots' caches give theirs back, least recently used first); should the pool still run out,
// the most recently started request gives its slot up and resumes later, so no admitted request fails because
// of the others.
import { ArgumentError, ContextExceededError, RejectedError, StateError } from '../errors.ts';
import { type ResumePoints, reusablePrefix, type StepResult } from './decoder.ts';
import { type ClientWaiting, DEFAULT_PRIORITY, FairQueue } from './fair-queue.ts';
import { type CachedPrompt, PromptCache, type PromptCacheStats } from './prompt-cache.ts';
import { chooseSlot, commonPrefix, MIN_REUSE_PREFIX } from './slot-choice.ts';
import type {
  Decoder,
  GenerationHandlers,
  GenerationRequest,
  RequestEndReason,
  RequestHandle,
  RequestSummary,
  RequestTimeline,
  SchedulerObserver,
  SchedulerOptions,
  SlotSnapshot,
} from './types.ts';

/** Reasons the scheduler itself ends a running request for. */
type CancelReason = 'cancelled' | 'timeout' | 'shutdown' | 'error';

interface Job {
  readonly id: string;
  readonly request: GenerationRequest;
  readonly handlers: GenerationHandlers;
  /** 'admitting': taken from the queue, its slot being prepared (cache saves, a restore) between steps. */
  state: 'queued' | 'admitting' | 'running' | 'ended';
  slot: number | null;
  /** Set while a cancel waits for the step in flight to end the slot; events for the job are ignored meanwhile. */
  cancel: { reason: CancelReason; error?: string } | null;
  /** Prompt tokens whose KV was reused when it first started (what usage reports as cached). */
  reusedTokens: number;
  /** This run on its slot: tokens it started with in the KV, prompt tokens decoded since, output before it. */
  run: { reused: number; processed: number; promptLength: number; generatedBefore: number };
  generated: number;
  /** Every generated token, for resuming after a preemption. */
  readonly output: number[];
  preemptions: number;
  shifted: number;
  /** Text from events that carried no token, handed over with onEnd (the real decoder sends none). */
  heldText: string;
  readonly queuedAt: number;
  startedAt: number | null;
  firstTokenAt: number | null;
  readonly timeline: RequestTimeline;
  timer: ReturnType<typeof setTimeout> | null;
  onAbort: (() => void) | null;
  readonly resolve: (summary: RequestSummary) => void;
}

interface Slot {
  readonly id: number;
  job: Job | null;
  /** The slot's cached tokens, read from the decoder between steps; null until read after a change. */
  cache: readonly number[] | null;
  /** Cached token count for snapshots (estimated while a request runs: the decoder can't be read during a step). */
  cachedCount: number;
  /** Use counter value when the slot last ended a request (for least-recently-used choice). */
  lastUsed: number;
  /** A slot action (save, restore, erase) or an admission holds it: no request starts on it meanwhile. */
  reserved: boolean;
  /** The RAM cache holds the slot's cache as it is now (nothing new to save); false once a request changes it. */
  saved: boolean;
}

/** What admitting one request needs done first. */
interface AdmissionPlan {
  job: Job;
  slot: Slot;
  /** Idle slots whose cells go back to the pool (saved to RAM first). */
  evict: Slot[];
  /** A RAM entry to load into the slot instead of its own cache. */
  restore: CachedPrompt | null;
  restorePrefix: number;
}

export class Scheduler {
  readonly #decoder: Decoder;
  readonly #observer: SchedulerObserver;
  readonly #now: () => number;
  // Read once: the real decoder's getters call into native code that a running step may be changing.
  readonly #ctxPerSlot: number;
  readonly #batchSize: number;
  readonly #stepTokenBudget: number;
  readonly #retryAfterSeconds: number;
  readonly #minReusePrefix: number;
  readonly #outputReserve: number;
  readonly #kvCells: number;
  readonly #unified: boolean;
  readonly #promptCache: PromptCache;
  readonly #queue: FairQueue<Job>;
  readonly #slots: Slot[];
  /** Every request not yet ended, queued or running. */
  readonly #live = new Map<string, Job>();
  #nextId = 1;
  #uses = 0;
  #looping = false;
  #stepInFlight = false;
  #closing = false;
  #closed: { promise: Promise<void>; resolve: () => void; timers: Array<ReturnType<typeof setTimeout>> } | null = null;

  constructor(decoder: Decoder, options: SchedulerOptions = {}, observer: SchedulerObserver = {}) {
    this.#decoder = decoder;
    this.#observer = observer;
    this.#now = options.now ?? (() => performance.now());
    this.#ctxPerSlot = decoder.ctxPerSlot;
    this.#batchSize = decoder.batchSize;
    this.#stepTokenBudget = Math.min(
      positiveInteger('stepTokenBudget', options.stepTokenBudget ?? this.#batchSize),
      this.#batchSize,
    );
    this.#retryAfterSeconds = nonNegative('retryAfterSeconds', options.retryAfterSeconds ?? 1);
    this.#minReusePrefix = nonNegative('minReusePrefix', options.minReusePrefix ?? MIN_REUSE_PREFIX);
    this.#outputReserve = nonNegative('outputReserve', options.outputReserve ?? 128);
    this.#kvCells = decoder.kvCells;
    this.#unified = decoder.unifiedKv;
    this.#promptCache = new PromptCache(nonNegative('promptCacheBytes', options.promptCacheBytes ?? 0));
    this.#queue = new FairQueue({
      maxRequests: nonNegative('maxQueuedRequests', options.maxQueuedRequests ?? 64),
      maxTokens: nonNegative('maxQueuedTokens', options.maxQueuedTokens ?? 16 * this.#ctxPerSlot),
    });
    this.#slots = Array.from({ length: decoder.slots }, (_, id) => ({
      id,
      job: null,
      cache: null,
      cachedCount: 0,
      lastUsed: -Infinity,
      reserved: false,
      saved: false,
    }));
  }

  /** The host-RAM prompt cache's figures. */
  promptCacheStats(): PromptCacheStats {
    return this.#promptCache.stats();
  }

  /** KV cells holding tokens, idle slots' caches included (the scheduler's count, readable during a step). */
  get kvCellsUsed(): number {
    return this.#slots.reduce((n, s) => n + s.cachedCount, 0);
  }

  /** Requests waiting for a slot. */
  get queueLength(): number {
    return this.#queue.size;
  }

  /** Prompt tokens waiting for a slot, summed. */
  get queuedTokens(): number {
    return this.#queue.tokens;
  }

  /** Requests and prompt tokens waiting per client, in the order their turns come. */
  queueByClient(): ClientWaiting[] {
    return this.#queue.waitingByClient();
  }

  /** Slots running a request. */
  get busySlots(): number {
    return this.#slots.reduce((n, s) => n + (s.job ? 1 : 0), 0);
  }

  /**
   * KV cells the running requests hold: prompt and generated tokens so far, less the last token, which the
   * next step decodes. Idle slots' prompt caches are not counted (the next request may take them over).
   */
  get runningKvTokens(): number {
    return this.#slots.reduce((n, s) => n + (s.job ? s.cachedCount : 0), 0);
  }

  /** True once close() was called: new requests are refused. */
  get closing(): boolean {
    return this.#closing;
  }

  /**
   * Queues a request; it starts when a slot frees up and its client's turn comes. Throws, without calling
   * any handler: RejectedError (QUEUE_FULL, SHUTTING_DOWN), ContextExceededError, ArgumentError.
   * Handlers are never called during submit(); the request starts in a later microtask at the earliest.
   */
  submit(request: GenerationRequest, handlers: GenerationHandlers): RequestHandle {
    const n = request.tokens.length;
    if (this.#closing)
      throw this.#reject(
        'shutting_down',
        new RejectedError('SHUTTING_DOWN', 'the server is shutting down', {
          retryAfterSeconds: this.#retryAfterSeconds,
        }),
      );
    if (n === 0) throw new ArgumentError('INVALID_ARGUMENT', 'the prompt must contain at least one token');
    const maxTokens = request.options.maxTokens;
    if (!Number.isInteger(maxTokens) || maxTokens < 1)
      throw new ArgumentError('INVALID_ARGUMENT', `maxTokens must be an integer >= 1 (got ${maxTokens})`);
    const priority = request.priority ?? DEFAULT_PRIORITY;
    if (!Number.isSafeInteger(priority))
      throw new ArgumentError('INVALID_ARGUMENT', `priority must be an integer (got ${request.priority})`);
    if (request.timeoutMs !== undefined && !(request.timeoutMs > 0))
      throw new ArgumentError('INVALID_ARGUMENT', `timeoutMs must be > 0 (got ${request.timeoutMs})`);
    if (
      request.slot !== undefined &&
      !(Number.isInteger(request.slot) && request.slot >= 0 && request.slot < this.#slots.length)
    )
      throw new ArgumentError(
        'INVALID_ARGUMENT',
        `slot ${request.slot} does not exist (slots 0..${this.#slots.length - 1})`,
      );
    if (n >= this.#ctxPerSlot) {
      throw this.#reject(
        'context_exceeded',
        new ContextExceededError(
          'CONTEXT_EXCEEDED',
          `the prompt has ${n} tokens but a slot holds at most ${this.#ctxPerSlot} tokens (prompt and generated tokens together)`,
        ),
      );
    }
    // Requests that idle slots will take at the next admission don't wait, so they don't fill the queue.
    const idle = this.#slots.length - this.busySlots;
    const overflow = this.#queue.overflow(n, idle);
    if (overflow !== null) {
      const { maxRequests, maxTokens } = this.#queue.limits;
      const what =
        overflow === 'requests'
          ? `${this.#queue.size - idle} requests waiting, at most ${maxRequests}`
          : `${this.#queue.tokens} prompt tokens waiting, at most ${maxTokens}; this request has ${n}`;
      throw this.#reject(
        'queue_full',
        new RejectedError('QUEUE_FULL', `the queue is full (${what}); retry later`, {
          retryAfterSeconds: this.#retryAfterSeconds,
        }),
      );
    }

    const id = `req-${this.#nextId++}`;
    let resolve: (summary: RequestSummary) => void = () => {};
    const done = new Promise<RequestSummary>((r) => {
      resolve = r;
    });
    const job: Job = {
      id,
      request,
      handlers,
      state: 'queued',
      slot: null,
      cancel: null,
      reusedTokens: 0,
      run: { reused: 0, processed: 0, promptLength: n, generatedBefore: 0 },
      generated: 0,
      output: [],
      preemptions: 0,
      shifted: 0,
      heldText: '',
      queuedAt: this.#now(),
      startedAt: null,
      firstTokenAt: null,
      timeline: { admittedAt: null, prepareMs: 0, restoredTokens: 0, prefillSteps: 0, prefillStepMs: 0 },
      timer: null,
      onAbort: null,
      resolve,
    };
    this.#live.set(id, job);
    this.#queue.push(id, request.client, n, job, priority);
    const { signal } = request;
    if (signal?.aborted) {
      // Already gone: end it, but not inside submit(), which promises no handler calls.
      queueMicrotask(() => this.#cancel(job, 'cancelled'));
    } else if (signal) {
      job.onAbort = () => this.#cancel(job, 'cancelled');
      signal.addEventListener('abort', job.onAbort, { once: true });
    }
    if (request.timeoutMs !== undefined) job.timer = setTimeout(() => this.#cancel(job, 'timeout'), request.timeoutMs);
    this.#wake();
    return { id, cancel: () => this.#cancel(job, 'cancelled'), done };
  }

  snapshot(): SlotSnapshot[] {
    return this.#slots.map((s) => {
      const job = s.job;
      if (job === null) return { id: s.id, state: 'idle', cachedTokens: s.cachedCount, request: null };
      return {
        id: s.id,
        state: this.#prefilled(job) ? 'generating' : 'prefill',
        cachedTokens: s.cachedCount,
        request: {
          id: job.id,
          client: job.request.client,
          priority: job.request.priority ?? DEFAULT_PRIORITY,
          promptTokens: job.request.tokens.length,
          reusedTokens: job.reusedTokens,
          generatedTokens: job.generated,
          startedAt: job.startedAt ?? job.queuedAt,
        },
      };
    });
  }

  /**
   * Stops accepting requests (they get SHUTTING_DOWN), lets queued and running ones finish for up to
   * graceMs, then ends the rest with reason 'shutdown'. Resolves when every request has ended and no
   * step is in flight. Calling it again returns the same promise; the shortest grace wins.
   */
  close(graceMs = 0): Promise<void> {
    this.#closing = true;
    if (this.#closed === null) {
      let resolve: () => void = () => {};
      const promise = new Promise<void>((r) => {
        resolve = r;
      });
      this.#closed = { promise, resolve, timers: [] };
    }
    const closed = this.#closed;
    if (this.#live.size > 0) {
      if (graceMs <= 0) this.#shutdown();
      else closed.timers.push(setTimeout(() => this.#shutdown(), graceMs));
    }
    this.#checkClosed();
    return closed.promise;
  }

  #shutdown(): void {
    for (const job of [...this.#live.values()]) this.#cancel(job, 'shutdown');
  }

  #checkClosed(): void {
    const closed = this.#closed;
    if (closed === null || this.#live.size > 0 || this.#stepInFlight || this.#looping) return;
    for (const t of closed.timers) clearTimeout(t);
    closed.timers.length = 0;
    closed.resolve();
  }

  #reject(cause: 'queue_full' | 'context_exceeded' | 'shutting_down', error: Error): Error {
    guard(() => this.#observer.onRejected?.(cause));
    return error;
  }

  // --- the loop ---------------------------------------------------------------------------------------

  /** Starts the loop if it is idle. It runs while any slot is busy and stops (no timers, no polling) when none is. */
  #wake(): void {
    if (this.#looping) return;
    this.#looping = true;
    queueMicrotask(() => void this.#loop());
  }

  async #loop(): Promise<void> {
    try {
      for (;;) {
        await this.#admit();
        if (this.busySlots === 0) break;
        await this.#step();
      }
    } catch (err) {
      // Every decoder and handler call is guarded, so this is a bug; still, never strand a request (nor
      // spin on the same bug): end them all.
      this.#failRunning(err);
      for (const job of [...this.#live.values()]) this.#cancel(job, 'error', `scheduler error: ${messageOf(err)}`);
    } finally {
      this.#looping = false;
      if (this.#queue.size > 0) this.#wake();
      this.#checkClosed();
    }
  }

  /**
   * Starts waiting requests on idle slots, between steps (the decoder refuses start() during one). Preparing a
   * slot may save caches to RAM or restore one from it first: those wait for the decoder, no step runs meanwhile.
   */
  async #admit(): Promise<void> {
    while (!this.#stepInFlight && this.#queue.size > 0) {
      const plan = this.#plan();
      if (plan === null) return;
      const { job, slot } = plan;
      this.#queue.shift((j) => j === job);
      job.state = 'admitting';
      slot.reserved = true;
      const first = job.startedAt === null;
      const preparing = this.#now();
      if (first) job.timeline.admittedAt = preparing;
      try {
        for (const victim of plan.evict) await this.#giveBack(victim);
        // The slot's own cache is about to be overwritten by another prompt: keep it in RAM first.
        if (plan.restore !== null || commonPrefix(this.#cachedPrefix(slot), this.#promptOf(job)) < slot.cachedCount)
          await this.#keep(slot);
        if (plan.restore !== null) await this.#restore(slot, plan.restore, plan.restorePrefix, job);
      } catch (err) {
        // A save or restore failed: the slot's cache is unknown; the request can still start, cold.
        slot.cache = null;
        guard(() => this.#observer.onPromptCache?.({ kind: 'miss' }));
        void err;
      } finally {
        slot.reserved = false;
        if (first) job.timeline.prepareMs += this.#now() - preparing;
      }
      // Cancelled while its slot was being prepared: #end took care of it.
      if (job.state !== 'admitting') continue;
      if (this.#promptCache.enabled && plan.restore === null && job.output.length === 0) {
        const own = this.#reusable(slot, this.#promptOf(job));
        if (own < this.#minReusePrefix) {
          this.#promptCache.missed();
          guard(() => this.#observer.onPromptCache?.({ kind: 'miss' }));
        }
      }
      this.#start(job, slot);
    }
  }

  /** The next request that can start now, on which slot, and what must be freed or restored first; null: none. */
  #plan(): AdmissionPlan | null {
    const idle = this.#slots.filter((s) => s.job === null && !s.reserved);
    if (idle.length === 0) return null;
    // A request pinned to a slot waits for that one; the others go by fairness.
    const job = this.#queue.peek((j) => j.request.slot === undefined || idle.some((s) => s.id === j.request.slot));
    if (job === undefined) return null;
    const prompt = this.#promptOf(job);
    const pinned = job.request.slot;
    let slot: Slot | undefined;
    let own = 0;
    if (pinned !== undefined) {
      slot = this.#slots[pinned];
      if (slot !== undefined) own = this.#reusable(slot, prompt);
    } else {
      const candidates = idle.map((s) => ({
        id: s.id,
        cachedPrefix: this.#cachedPrefix(s),
        resume: this.#resumePoints(s),
        lastUsed: s.lastUsed,
      }));
      const choice = chooseSlot(candidates, prompt, this.#minReusePrefix);
      slot = choice === null ? undefined : this.#slots[choice.slot];
      own = choice?.prefix ?? 0;
    }
    if (slot === undefined) throw new Error('no idle slot was chosen');
    // A prompt the slot has forgotten but the RAM cache kept: restore it when that reuses clearly more.
    let restore: CachedPrompt | null = null;
    let restorePrefix = 0;
    if (this.#promptCache.enabled) {
      const best = this.#promptCache.best(prompt);
      const usable = best === null ? 0 : Math.min(best.prefix, prompt.length - 1);
      if (best !== null && usable >= this.#minReusePrefix && usable > own + this.#minReusePrefix) {
        restore = best.entry;
        restorePrefix = usable;
        // Not the slot whose own cache served this prompt best: that one may serve the next.
        if (pinned === undefined) slot = lruOf(idle) ?? slot;
      }
    }
    const evict = this.#unified ? this.#cellsFor(job, slot, restore !== null ? restorePrefix : own, idle) : [];
    if (evict === null) return null;
    return { job, slot, evict, restore, restorePrefix };
  }

  /**
   * With a unified pool: the idle slots whose caches must go back to the pool (least recently used first) so that
   * `job` fits on `slot`; null when even that is not enough while others run (it waits for them).
   */
  #cellsFor(job: Job, slot: Slot, reuse: number, idle: readonly Slot[]): Slot[] | null {
    const prompt = this.#promptOf(job).length;
    const remaining = job.request.options.maxTokens - job.generated;
    // What the others hold: a running request at least its prompt and its own reservation.
    let held = 0;
    for (const s of this.#slots) {
      if (s === slot) continue;
      held += s.job !== null ? Math.max(s.cachedCount, this.#reservedCells(s.job)) : s.cachedCount;
    }
    const need = reuse + (prompt - reuse) + Math.min(remaining, this.#outputReserve);
    const evict: Slot[] = [];
    const candidates = idle.filter((s) => s !== slot && s.cachedCount > 0).sort((a, b) => a.lastUsed - b.lastUsed);
    while (held + need > this.#kvCells && candidates.length > 0) {
      const victim = candidates.shift() as Slot;
      evict.push(victim);
      held -= victim.cachedCount;
    }
    if (held + need <= this.#kvCells) return evict;
    // Nothing else runs: it goes alone (its prompt fits a slot, so it fits the pool).
    return this.busySlots === 0 ? evict : null;
  }

  /** Cells a running request was admitted with: its prompt and its output reservation. */
  #reservedCells(job: Job): number {
    const remaining = job.request.options.maxTokens - job.run.generatedBefore;
    return job.run.promptLength + Math.min(remaining, this.#outputReserve);
  }

  /** The tokens a request starts from: its prompt, or after a preemption its prompt and its output so far. */
  #promptOf(job: Job): readonly number[] {
    return job.output.length === 0 ? job.request.tokens : [...job.request.tokens, ...job.output];
  }

  #start(job: Job, slot: Slot): void {
    const prompt = this.#promptOf(job);
    const resumed = job.output.length;
    let started: { reusedTokens: number; promptTokens: number };
    try {
      if (resumed === 0) this.#copyPrefix(job, slot);
      const options =
        resumed === 0
          ? job.request.options
          : {
              ...job.request.options,
              maxTokens: job.request.options.maxTokens - resumed,
              resumeTokens: resumed,
            };
      started = this.#decoder.start(slot.id, prompt, options);
    } catch (err) {
      // E.g. a token id outside the vocabulary or a sampling parameter out of range: this request fails,
      // the slot stays idle for the next one.
      slot.cache = null;
      this.#end(job, 'error', '', messageOf(err));
      return;
    }
    const first = job.startedAt === null;
    job.state = 'running';
    job.slot = slot.id;
    job.run = { reused: started.reusedTokens, processed: 0, promptLength: prompt.length, generatedBefore: resumed };
    if (first) {
      job.reusedTokens = started.reusedTokens;
      job.startedAt = this.#now();
    }
    slot.job = job;
    slot.cache = null;
    slot.cachedCount = started.reusedTokens;
    slot.saved = false;
    if (first) {
      const info = { slot: slot.id, reusedTokens: started.reusedTokens };
      this.#callHandler(job, 'onStart', () => job.handlers.onStart?.(info));
    }
  }

  /**
   * Saves an idle slot's cache to the RAM cache (when it is on and the slot holds something it lacks). A failed save
   * loses only that copy: the slot's cache is as it was, and nothing else depends on the save.
   */
  async #keep(slot: Slot): Promise<void> {
    if (!this.#promptCache.enabled || slot.saved || slot.cachedCount < this.#minReusePrefix) return;
    // A conversation that came back and went the same way (greedy, the same answer) left what an entry holds already.
    if (this.#promptCache.holds(this.#cachedPrefix(slot), this.#resumePoints(slot))) {
      slot.saved = true;
      return;
    }
    let saved: Awaited<ReturnType<Decoder['saveState']>>;
    try {
      saved = await this.#decoder.saveState(slot.id);
    } catch {
      guard(() => this.#observer.onPromptCache?.({ kind: 'save_failed' }));
      return;
    }
    slot.saved = true;
    if (this.#promptCache.put(saved.tokens, saved.state, saved.resume))
      guard(() =>
        this.#observer.onPromptCache?.({ kind: 'saved', tokens: saved.tokens.length, bytes: saved.state.byteLength }),
      );
  }

  /** Gives an idle slot's cells back to the pool, keeping its state in RAM first. */
  async #giveBack(slot: Slot): Promise<void> {
    await this.#keep(slot);
    await this.#decoder.eraseSlot(slot.id);
    slot.cache = null;
    slot.cachedCount = 0;
    slot.saved = false;
  }

  async #restore(slot: Slot, entry: CachedPrompt, prefix: number, job: Job): Promise<void> {
    const n = await this.#decoder.restoreState(slot.id, entry);
    if (job.startedAt === null) job.timeline.restoredTokens = prefix;
    slot.cache = null;
    slot.cachedCount = n;
    slot.saved = true;
    this.#promptCache.used(entry, prefix);
    guard(() => this.#observer.onPromptCache?.({ kind: 'hit', tokens: prefix, bytes: entry.state.byteLength }));
  }

  /** The KV another slot holds for this prompt, copied into the slot (when that slot still holds it). */
  #copyPrefix(job: Job, slot: Slot): void {
    const from = job.request.copyFrom;
    if (from === undefined || from.slot === slot.id) return;
    const source = this.#slots[from.slot];
    if (source === undefined || source.reserved) return;
    const held = this.#decoder.cachedPrefix(from.slot);
    let n = 0;
    while (n < held.length && n < from.tokens.length && held[n] === from.tokens[n]) n++;
    if (n === 0) return;
    this.#decoder.copyPrefix(from.slot, slot.id, n);
    slot.cache = null;
  }

  /**
   * Saves, restores or erases a slot's cache (llama-server's slot actions). The slot must be idle; no request
   * starts on it until the action ends. Rejects with a StateError when it is busy.
   */
  async slotAction(
    slotId: number,
    action: 'save' | 'restore' | 'erase',
    path?: string,
  ): Promise<{ tokens: number; bytes?: number; ms: number }> {
    const slot = this.#slots[slotId];
    if (slot === undefined)
      throw new ArgumentError('INVALID_ARGUMENT', `slot ${slotId} does not exist (slots 0..${this.#slots.length - 1})`);
    if (slot.job !== null || slot.reserved) throw new StateError('BUSY', `slot ${slotId} is busy`);
    if (action !== 'erase' && path === undefined) throw new ArgumentError('INVALID_ARGUMENT', `${action} needs a file`);
    slot.reserved = true;
    const t0 = this.#now();
    try {
      if (action === 'save') {
        const tokens = this.#cachedPrefix(slot).length;
        const bytes = await this.#decoder.saveSlot(slotId, path ?? '');
        return { tokens, bytes, ms: this.#now() - t0 };
      }
      if (action === 'restore') {
        slot.cachedCount = 0;
        const tokens = await this.#decoder.restoreSlot(slotId, path ?? '');
        slot.cachedCount = tokens;
        return { tokens, ms: this.#now() - t0 };
      }
      const erased = this.#cachedPrefix(slot).length;
      await this.#decoder.eraseSlot(slotId);
      slot.cachedCount = 0;
      return { tokens: erased, ms: this.#now() - t0 };
    } finally {
      slot.reserved = false;
      // The decoder's copy is the truth now: re-read it when next needed.
      slot.cache = null;
      this.#wake();
    }
  }

  async #step(): Promise<void> {
    const busy = this.busySlots;
    let generating = 0;
    for (const s of this.#slots) if (s.job && this.#prefilled(s.job)) generating++;
    // Generating slots always get their token; keep room for at least one prompt token so a prompt is
    // never starved when the budget is smaller than the number of generating slots.
    const budget = Math.min(this.#batchSize, Math.max(this.#stepTokenBudget, busy > generating ? generating + 1 : 1));
    const t0 = this.#now();
    this.#stepInFlight = true;
    let result: StepResult;
    try {
      result = await this.#decoder.step(budget);
    } catch (err) {
      this.#stepInFlight = false;
      this.#failRunning(err);
      return;
    }
    this.#stepInFlight = false;
    const durationMs = this.#now() - t0;
    if (result.kvFull === true) {
      await this.#makeRoom();
      return;
    }
    this.#apply(result, durationMs);
    const stats = {
      durationMs,
      decodeMs: result.decodeMicros / 1000,
      batchTokens: result.batchTokens,
      promptTokens: result.promptTokens,
      generatedTokens: result.generatedTokens,
      busySlots: busy,
    };
    guard(() => this.#observer.onStep?.(stats));
  }

  /**
   * The pool had no cell for the running requests' next tokens. Idle slots' caches go back first (least recently
   * used first, kept in RAM); failing that, the most recently started request gives its slot up: its state goes
   * to RAM (or is dropped), and it waits at the head of its client's line to resume where it stopped.
   */
  async #makeRoom(): Promise<void> {
    const idle = this.#slots
      .filter((s) => s.job === null && !s.reserved && s.cachedCount > 0)
      .sort((a, b) => a.lastUsed - b.lastUsed);
    const victim = idle[0];
    if (victim !== undefined) {
      victim.reserved = true;
      try {
        await this.#giveBack(victim);
        return;
      } catch {
        // The decoder could not erase it (it is failing): the next steps find out; make room by preemption now.
        victim.cache = null;
      } finally {
        victim.reserved = false;
      }
    }
    const running = this.#slots
      .flatMap((s) => (s.job !== null && s.job.cancel === null ? [{ slot: s, job: s.job }] : []))
      .sort((a, b) => (b.job.startedAt ?? 0) - (a.job.startedAt ?? 0));
    const latest = running[0];
    if (latest === undefined || running.length === 1) {
      // One request alone fills the pool: it is the slot's context that ran out.
      for (const r of running) this.#cancel(r.job, 'error', 'the KV cache is full');
      return;
    }
    await this.#preempt(latest.slot);
  }

  async #preempt(slot: Slot): Promise<void> {
    const job = slot.job;
    if (job === null) return;
    try {
      this.#decoder.cancel(slot.id);
    } catch {
      // The decoder is gone: the request ends like the others will.
    }
    slot.job = null;
    slot.lastUsed = ++this.#uses;
    slot.cache = null;
    job.slot = null;
    job.state = 'queued';
    job.heldText = '';
    job.preemptions++;
    this.#queue.pushFront(job.id, job.request.client, job.request.tokens.length, job, job.request.priority);
    guard(() => this.#observer.onPreempted?.({ id: job.id, generatedTokens: job.generated }));
    slot.reserved = true;
    try {
      await this.#giveBack(slot);
    } catch {
      slot.cache = null;
    } finally {
      slot.reserved = false;
    }
  }

  /** Hands a step's events to their requests. No step is in flight here, so cancels free slots at once. */
  #apply(result: StepResult, durationMs: number): void {
    for (const ev of result.events) {
      const slot = this.#slots[ev.slot];
      const job = slot?.job;
      // No job: a stale event for a request already ended (cancelled at once while this step was queued).
      if (slot === undefined || job === null || job === undefined) continue;
      if (job.cancel !== null) {
        if (ev.end !== null) this.#end(job, job.cancel.reason, '', job.cancel.error);
        continue;
      }
      const run = job.run;
      run.processed += ev.promptProcessed;
      if (ev.promptProcessed > 0 && job.firstTokenAt === null) {
        job.timeline.prefillSteps++;
        job.timeline.prefillStepMs += durationMs;
      }
      job.shifted += ev.shifted ?? 0;
      // A resumed request re-reads its own prompt: its client heard about that prompt already.
      if (ev.promptProcessed > 0 && run.generatedBefore === 0 && job.handlers.onPromptProgress !== undefined) {
        const progress = {
          processed: run.reused + run.processed,
          total: job.request.tokens.length,
          cached: run.reused,
        };
        this.#callHandler(job, 'onPromptProgress', () => job.handlers.onPromptProgress?.(progress));
      }
      if (ev.token !== null) {
        job.generated++;
        job.output.push(ev.token);
      }
      // The KV holds the prompt and every generated token but the last, which the next step decodes.
      const generatedHere = job.generated - run.generatedBefore;
      slot.cachedCount = run.reused + run.processed + Math.max(0, generatedHere - 1) - job.shifted;
      if (ev.token !== null) {
        job.firstTokenAt ??= this.#now();
        const { token, text, probs } = ev;
        this.#callHandler(job, 'onToken', () => job.handlers.onToken?.(token, text, probs));
      } else {
        job.heldText += ev.text;
      }
      if (ev.end !== null && job.state === 'running') {
        this.#end(job, ev.end, job.heldText, ev.error);
      }
    }
    for (const slot of this.#slots) {
      const job = slot.job;
      if (job === null) continue;
      if (job.cancel !== null) {
        // The cancel came after the step's last look at its slots: apply it now, between steps.
        this.#cancel(job, job.cancel.reason, job.cancel.error, true);
      }
    }
    if (result.batchTokens === 0 && result.events.length === 0 && result.kvFull !== true) {
      // The decoder has nothing to do for requests we think are running: it lost them. Fail them rather
      // than spin on empty steps.
      for (const slot of this.#slots)
        if (slot.job) this.#cancel(slot.job, 'error', `the decoder has no work for slot ${slot.id}`);
    }
  }

  /** A step failed: the decoder's slot states are unknown, so every running request ends with an error. */
  #failRunning(err: unknown): void {
    const message = messageOf(err);
    for (const slot of this.#slots) {
      const job = slot.job;
      if (job === null) continue;
      try {
        this.#decoder.cancel(slot.id);
      } catch {
        // The slot is given up on either way.
      }
      slot.cache = null;
      if (job.cancel !== null) this.#end(job, job.cancel.reason, '', job.cancel.error);
      else this.#end(job, 'error', '', message);
    }
  }

  // --- ending requests --------------------------------------------------------------------------------

  /**
   * Ends a request for the scheduler's own reasons. Queued: at once. Running: the decoder frees the slot
   * at once when no step holds it; otherwise the step in flight ends it and its events are ignored.
   * `retry`: the pending cancel is applied again between steps.
   */
  #cancel(job: Job, reason: CancelReason, error?: string, retry = false): void {
    if (job.state === 'ended') return;
    if (job.state === 'queued' || job.state === 'admitting') {
      this.#end(job, reason, '', error);
      return;
    }
    if (job.cancel !== null && !retry) return;
    const slot = job.slot;
    let freed = true;
    if (slot !== null) {
      try {
        freed = this.#decoder.cancel(slot);
      } catch {
        freed = true; // the decoder is gone (disposed): nothing will report this slot again
      }
    }
    if (freed) this.#end(job, reason, job.heldText, error);
    else job.cancel = error === undefined ? { reason } : { reason, error };
  }

  /** The one way a request ends: releases its slot or queue place, calls onEnd once, resolves done. */
  #end(job: Job, reason: RequestEndReason, text: string, error?: string): void {
    if (job.state === 'ended') return;
    if (job.state === 'queued') this.#queue.remove(job.id);
    job.state = 'ended';
    if (job.timer !== null) clearTimeout(job.timer);
    job.timer = null;
    if (job.onAbort !== null) job.request.signal?.removeEventListener('abort', job.onAbort);
    job.onAbort = null;
    const slot = job.slot === null ? undefined : this.#slots[job.slot];
    if (slot !== undefined && slot.job === job) {
      slot.job = null;
      slot.cache = null;
      slot.lastUsed = ++this.#uses;
    }
    this.#live.delete(job.id);
    const summary: RequestSummary = {
      id: job.id,
      reason,
      ...(error !== undefined ? { error } : {}),
      slot: job.slot,
      promptTokens: job.request.tokens.length,
      cachedTokens: job.reusedTokens,
      generatedTokens: job.generated,
      shiftedTokens: job.shifted,
      preemptions: job.preemptions,
      queuedAt: job.queuedAt,
      startedAt: job.startedAt,
      firstTokenAt: job.firstTokenAt,
      endedAt: this.#now(),
      timeline: { ...job.timeline },
    };
    guard(() => job.handlers.onEnd(summary, text));
    guard(() => this.#observer.onRequestEnd?.(summary));
    job.resolve(summary);
    if (this.#queue.size > 0) this.#wake();
    this.#checkClosed();
  }

  /** A throwing handler ends its own request (its consumer is broken) and nothing else. */
  #callHandler(job: Job, name: string, call: () => void): void {
    try {
      call();
    } catch (err) {
      this.#cancel(job, 'error', `${name} handler threw: ${messageOf(err)}`);
    }
  }

  #prefilled(job: Job): boolean {
    const run = job.run;
    return job.generated > run.generatedBefore || run.reused + run.processed >= run.promptLength;
  }

  /** Only between steps (admission): the decoder's cache must not be read while a step may change it. */
  /** Prompt tokens the slot's cache lets it skip: the common prefix, as far as it can resume there. */
  #reusable(slot: Slot, prompt: readonly number[]): number {
    return reusablePrefix(commonPrefix(this.#cachedPrefix(slot), prompt), this.#resumePoints(slot));
  }

  #resumePoints(slot: Slot): ResumePoints | undefined {
    try {
      return this.#decoder.resumePoints?.(slot.id);
    } catch {
      return { from: Number.POSITIVE_INFINITY, checkpoints: [] };
    }
  }

  #cachedPrefix(slot: Slot): readonly number[] {
    if (slot.cache === null) {
      try {
        slot.cache = this.#decoder.cachedPrefix(slot.id);
      } catch {
        slot.cache = [];
      }
      slot.cachedCount = slot.cache.length;
    }
    return slot.cache;
  }
}

/** The least recently used of these slots. */
function lruOf(slots: readonly Slot[]): Slot | undefined {
  let best: Slot | undefined;
  for (const s of slots) if (best === undefined || s.lastUsed < best.lastUsed) best = s;
  return best;
}

function guard(call: () => void): void {
  try {
    call();
  } catch {
    // Observers and onEnd run after the request's fate is settled; their failures change nothing.
  }
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function positiveInteger(name: string, value: number): number {
  if (!Number.isInteger(value) || value < 1)
    throw new ArgumentError('INVALID_ARGUMENT', `${name} must be an integer >= 1 (got ${value})`);
  return value;
}

function nonNegative(name: string, value: number): number {
  if (!(value >= 0)) throw new ArgumentError('INVALID_ARGUMENT', `${name} must be >= 0 (got ${value})`);
  return value;
}
