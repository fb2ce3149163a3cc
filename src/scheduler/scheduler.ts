// The step loop: admits waiting requests to idle slots between steps, runs one decoder step at a time
// (continuous batching with chunked prefill) and turns the decoder's per-slot events into each request's
// handler calls, and ends requests (their deadlines, aborts, cancels, shutdown). Policy only: the decoder does
// the work, the fair queue decides who waits least, the KV pool decides where a request goes and what its cells
// cost (kv-pool.ts: the slots' caches, the host-RAM prompt cache, making room, which request gives its slot up),
// llama-server's slot actions live in slot-actions.ts. A request the pool preempts waits at the head of its
// client's line and resumes where it stopped, so no admitted request fails because of the others.
import { ArgumentError, ContextExceededError, RejectedError } from '../errors.ts';
import type { StepResult } from './decoder.ts';
import { DraftPolicy } from './draft-policy.ts';
import { type ClientWaiting, DEFAULT_PRIORITY, FairQueue } from './fair-queue.ts';
import { KvPool, type Placement } from './kv-pool.ts';
import type { PromptCacheStats } from './prompt-cache.ts';
import { type SlotAction, type SlotActionResult, SlotActions } from './slot-actions.ts';
import { MIN_REUSE_PREFIX } from './slot-choice.ts';
import type { StepTurns } from './step-turns.ts';
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
  /** Speculative decoding: draft tokens the target verified for this request, and how many it accepted. */
  drafts: { drafted: number; accepted: number };
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

export class Scheduler {
  readonly #decoder: Decoder;
  /** Shared with the other models' schedulers: a step runs only in this scheduler's turn. */
  readonly #turns: StepTurns | undefined;
  readonly #observer: SchedulerObserver;
  readonly #now: () => number;
  // Read once: the real decoder's getters call into native code that a running step may be changing.
  readonly #ctxPerSlot: number;
  readonly #batchSize: number;
  readonly #stepTokenBudget: number;
  readonly #retryAfterSeconds: number;
  readonly #pool: KvPool<Job>;
  readonly #slotActions: SlotActions;
  /** Null without speculative decoding. */
  readonly #drafts: DraftPolicy | null;
  readonly #queue: FairQueue<Job>;
  /** Every request not yet ended, queued or running. */
  readonly #live = new Map<string, Job>();
  #nextId = 1;
  #looping = false;
  #stepInFlight = false;
  #closing = false;
  #closed: { promise: Promise<void>; resolve: () => void; timers: Array<ReturnType<typeof setTimeout>> } | null = null;

  constructor(decoder: Decoder, options: SchedulerOptions = {}, observer: SchedulerObserver = {}) {
    this.#decoder = decoder;
    this.#turns = options.turns;
    this.#observer = observer;
    this.#now = options.now ?? (() => performance.now());
    this.#ctxPerSlot = decoder.ctxPerSlot;
    this.#batchSize = decoder.batchSize;
    this.#stepTokenBudget = Math.min(
      positiveInteger('stepTokenBudget', options.stepTokenBudget ?? this.#batchSize),
      this.#batchSize,
    );
    this.#retryAfterSeconds = nonNegative('retryAfterSeconds', options.retryAfterSeconds ?? 1);
    const minReusePrefix = nonNegative('minReusePrefix', options.minReusePrefix ?? MIN_REUSE_PREFIX);
    const outputReserve = nonNegative('outputReserve', options.outputReserve ?? 128);
    const promptCacheBytes = nonNegative('promptCacheBytes', options.promptCacheBytes ?? 0);
    this.#pool = new KvPool<Job>(decoder, { minReusePrefix, outputReserve, promptCacheBytes }, (event) =>
      this.#observer.onPromptCache?.(event),
    );
    this.#queue = new FairQueue({
      maxRequests: nonNegative('maxQueuedRequests', options.maxQueuedRequests ?? 64),
      maxTokens: nonNegative('maxQueuedTokens', options.maxQueuedTokens ?? 16 * this.#ctxPerSlot),
    });
    this.#slotActions = new SlotActions(this.#pool, decoder, this.#now, () => this.#wake());
    const maxDraft = decoder.draftMax ?? 0;
    this.#drafts =
      maxDraft > 0
        ? new DraftPolicy({ maxDraft, slots: this.#pool.size, mode: options.draftPolicy ?? 'adaptive' })
        : null;
  }

  /** The host-RAM prompt cache's figures. */
  promptCacheStats(): PromptCacheStats {
    return this.#pool.promptCacheStats();
  }

  /** KV cells holding tokens, idle slots' caches included (the scheduler's count, readable during a step). */
  get kvCellsUsed(): number {
    return this.#pool.cellsUsed;
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
    return this.#pool.busy;
  }

  /**
   * KV cells the running requests hold: prompt and generated tokens so far, less the last token, which the
   * next step decodes. Idle slots' prompt caches are not counted (the next request may take them over).
   */
  get runningKvTokens(): number {
    return this.#pool.runningCells;
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
      !(Number.isInteger(request.slot) && request.slot >= 0 && request.slot < this.#pool.size)
    )
      throw new ArgumentError(
        'INVALID_ARGUMENT',
        `slot ${request.slot} does not exist (slots 0..${this.#pool.size - 1})`,
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
    const idle = this.#pool.size - this.busySlots;
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
      drafts: { drafted: 0, accepted: 0 },
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
    this.#watch(job);
    this.#wake();
    return { id, cancel: () => this.#cancel(job, 'cancelled'), done };
  }

  snapshot(): SlotSnapshot[] {
    return Array.from({ length: this.#pool.size }, (_, id) => {
      const job = this.#pool.tenant(id);
      const cachedTokens = this.#pool.cachedCount(id);
      if (job === null) return { id, state: 'idle', cachedTokens, request: null };
      return {
        id,
        state: this.#prefilled(job) ? 'generating' : 'prefill',
        cachedTokens,
        request: {
          id: job.id,
          client: job.request.client,
          priority: job.request.priority ?? DEFAULT_PRIORITY,
          promptTokens: job.request.tokens.length,
          reusedTokens: job.reusedTokens,
          generatedTokens: job.generated,
          draftTokens: job.drafts.drafted,
          draftAccepted: job.drafts.accepted,
          startedAt: job.startedAt ?? job.queuedAt,
        },
      };
    });
  }

  /**
   * Saves, restores or erases a slot's cache (llama-server's slot actions). The slot must be idle; no request
   * starts on it until the action ends. Rejects with a StateError when it is busy.
   */
  slotAction(slotId: number, action: SlotAction, path?: string): Promise<SlotActionResult> {
    return this.#slotActions.run(slotId, action, path);
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
      const { job, placement } = plan;
      this.#queue.shift((j) => j === job);
      job.state = 'admitting';
      const first = job.startedAt === null;
      const preparing = this.#now();
      if (first) job.timeline.admittedAt = preparing;
      const prompt = this.#promptOf(job);
      const restored = await this.#pool.prepare(placement, prompt);
      if (first) {
        if (restored > 0) job.timeline.restoredTokens = restored;
        job.timeline.prepareMs += this.#now() - preparing;
      }
      // Cancelled while its slot was being prepared: #end took care of it.
      if (job.state !== 'admitting') continue;
      if (job.output.length === 0) this.#pool.countLookup(placement, prompt);
      this.#start(job, placement.slot);
    }
  }

  /** The next request that can start now and where it goes (the KV pool's placement); null: none. */
  #plan(): { job: Job; placement: Placement } | null {
    const idle = this.#pool.idleSlots();
    if (idle.length === 0) return null;
    // A request pinned to a slot (llama-server's id_slot) waits for that one; the others go by fairness.
    const job = this.#queue.peek((j) => j.request.slot === undefined || idle.includes(j.request.slot));
    if (job === undefined) return null;
    const placement = this.#pool.place(
      this.#promptOf(job),
      job.request.options.maxTokens - job.generated,
      job.request.slot,
    );
    return placement === null ? null : { job, placement };
  }

  /** The tokens a request starts from: its prompt, or after a preemption its prompt and its output so far. */
  #promptOf(job: Job): readonly number[] {
    return job.output.length === 0 ? job.request.tokens : [...job.request.tokens, ...job.output];
  }

  #start(job: Job, slot: number): void {
    const prompt = this.#promptOf(job);
    const resumed = job.output.length;
    let started: { reusedTokens: number; promptTokens: number };
    try {
      // n choices of one prompt: the KV another slot holds for it, copied into this one.
      const from = job.request.copyFrom;
      if (resumed === 0 && from !== undefined) this.#pool.copyPrefix(from.slot, from.tokens, slot);
      const options =
        resumed === 0
          ? job.request.options
          : {
              ...job.request.options,
              maxTokens: job.request.options.maxTokens - resumed,
              resumeTokens: resumed,
            };
      started = this.#decoder.start(slot, prompt, options);
    } catch (err) {
      // E.g. a token id outside the vocabulary or a sampling parameter out of range: this request fails,
      // the slot stays idle for the next one.
      this.#pool.forget(slot);
      this.#end(job, 'error', '', messageOf(err));
      return;
    }
    const first = job.startedAt === null;
    job.state = 'running';
    job.slot = slot;
    job.run = { reused: started.reusedTokens, processed: 0, promptLength: prompt.length, generatedBefore: resumed };
    if (first) {
      job.reusedTokens = started.reusedTokens;
      job.startedAt = this.#now();
    }
    this.#pool.occupy(slot, job, started.reusedTokens, prompt.length, job.request.options.maxTokens - resumed);
    this.#drafts?.reset(slot);
    if (first) {
      const info = { slot, reusedTokens: started.reusedTokens };
      this.#callHandler(job, 'onStart', () => job.handlers.onStart?.(info));
    }
  }

  async #step(): Promise<void> {
    // Another model's decode may be running: wait for this model's turn. Requests may end meanwhile.
    const release = this.#turns ? await this.#turns.acquire() : undefined;
    if (this.busySlots === 0) {
      release?.();
      return;
    }
    const busy = this.busySlots;
    const generating: number[] = [];
    let prompt = 0;
    for (let id = 0; id < this.#pool.size; id++) {
      const job = this.#pool.tenant(id);
      if (job === null) continue;
      if (this.#prefilled(job)) generating.push(id);
      else prompt += job.run.promptLength - job.run.reused - job.run.processed;
    }
    // Generating slots always get their token; keep room for at least one prompt token so a prompt is
    // never starved when the budget is smaller than the number of generating slots.
    const budget = Math.min(
      this.#batchSize,
      Math.max(this.#stepTokenBudget, busy > generating.length ? generating.length + 1 : 1),
    );
    // Drafts take what the step's budget leaves after the generating slots' tokens and the prompts' share.
    const promptShare = Math.min(prompt, budget - generating.length);
    const draftLimits = this.#drafts?.limits(generating, promptShare, budget - generating.length - promptShare);
    const t0 = this.#now();
    this.#stepInFlight = true;
    let result: StepResult;
    try {
      result = await this.#decoder.step(budget, draftLimits);
    } catch (err) {
      this.#stepInFlight = false;
      this.#failRunning(err);
      return;
    } finally {
      release?.();
    }
    this.#stepInFlight = false;
    const durationMs = this.#now() - t0;
    if (result.kvFull === true) {
      // The pool frees cells: an idle cache goes back, else the latest request to start gives its slot up.
      await this.#pool.makeRoom({
        preempt: (slot, job) => this.#preempt(slot, job),
        // One request alone fills the pool: it is the slot's context that ran out.
        overflow: (jobs) => {
          for (const job of jobs) this.#cancel(job, 'error', 'the KV cache is full');
        },
      });
      return;
    }
    this.#drafts?.observe({
      durationMicros: durationMs * 1000,
      batchTokens: result.batchTokens,
      promptTokens: result.promptTokens,
      drafts: result.drafts ?? [],
    });
    for (const d of result.drafts ?? []) {
      const job = this.#pool.tenant(d.slot);
      if (job === null) continue;
      job.drafts.drafted += d.drafted;
      job.drafts.accepted += d.accepted;
    }
    this.#apply(result, durationMs);
    const stats = {
      durationMs,
      decodeMs: result.decodeMicros / 1000,
      batchTokens: result.batchTokens,
      promptTokens: result.promptTokens,
      generatedTokens: result.generatedTokens,
      busySlots: busy,
      drafts: result.drafts ?? [],
    };
    guard(() => this.#observer.onStep?.(stats));
  }

  /**
   * The KV pool takes the slot of a running request back: it stops, and waits at the head of its client's line to
   * resume where it stopped (the pool keeps its state in RAM, or drops it).
   */
  #preempt(slot: number, job: Job): void {
    try {
      this.#decoder.cancel(slot);
    } catch {
      // The decoder is gone: the request ends like the others will.
    }
    job.slot = null;
    job.state = 'queued';
    job.heldText = '';
    job.preemptions++;
    this.#queue.pushFront(job.id, job.request.client, job.request.tokens.length, job, job.request.priority);
    guard(() => this.#observer.onPreempted?.({ id: job.id, generatedTokens: job.generated }));
  }

  /** Hands a step's events to their requests. No step is in flight here, so cancels free slots at once. */
  #apply(result: StepResult, durationMs: number): void {
    for (const ev of result.events) {
      const job = this.#pool.tenant(ev.slot);
      // No job: a stale event for a request already ended (cancelled at once while this step was queued).
      if (job === null) continue;
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
      this.#pool.recount(ev.slot, run.reused + run.processed + Math.max(0, generatedHere - 1) - job.shifted);
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
    for (let id = 0; id < this.#pool.size; id++) {
      const job = this.#pool.tenant(id);
      if (job === null) continue;
      if (job.cancel !== null) {
        // The cancel came after the step's last look at its slots: apply it now, between steps.
        this.#cancel(job, job.cancel.reason, job.cancel.error, true);
      }
    }
    if (result.batchTokens === 0 && result.events.length === 0 && result.kvFull !== true) {
      // The decoder has nothing to do for requests we think are running: it lost them. Fail them rather
      // than spin on empty steps.
      for (let id = 0; id < this.#pool.size; id++) {
        const job = this.#pool.tenant(id);
        if (job) this.#cancel(job, 'error', `the decoder has no work for slot ${id}`);
      }
    }
  }

  /** A step failed: the decoder's slot states are unknown, so every running request ends with an error. */
  #failRunning(err: unknown): void {
    const message = messageOf(err);
    for (let id = 0; id < this.#pool.size; id++) {
      const job = this.#pool.tenant(id);
      if (job === null) continue;
      try {
        this.#decoder.cancel(id);
      } catch {
        // The slot is given up on either way.
      }
      this.#pool.forget(id);
      if (job.cancel !== null) this.#end(job, job.cancel.reason, '', job.cancel.error);
      else this.#end(job, 'error', '', message);
    }
  }

  // --- ending requests --------------------------------------------------------------------------------

  /** Its deadline (timeoutMs) and its client going away (the abort signal) cancel a request; #end stops both. */
  #watch(job: Job): void {
    const { signal, timeoutMs } = job.request;
    if (signal?.aborted) {
      // Already gone: end it, but not inside submit(), which promises no handler calls.
      queueMicrotask(() => this.#cancel(job, 'cancelled'));
    } else if (signal) {
      job.onAbort = () => this.#cancel(job, 'cancelled');
      signal.addEventListener('abort', job.onAbort, { once: true });
    }
    if (timeoutMs !== undefined) job.timer = setTimeout(() => this.#cancel(job, 'timeout'), timeoutMs);
  }

  #unwatch(job: Job): void {
    if (job.timer !== null) clearTimeout(job.timer);
    job.timer = null;
    if (job.onAbort !== null) job.request.signal?.removeEventListener('abort', job.onAbort);
    job.onAbort = null;
  }

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
    this.#unwatch(job);
    if (job.slot !== null && this.#pool.tenant(job.slot) === job) this.#pool.vacate(job.slot);
    this.#live.delete(job.id);
    const summary: RequestSummary = {
      id: job.id,
      reason,
      ...(error !== undefined ? { error } : {}),
      slot: job.slot,
      promptTokens: job.request.tokens.length,
      cachedTokens: job.reusedTokens,
      generatedTokens: job.generated,
      draftTokens: job.drafts.drafted,
      draftAccepted: job.drafts.accepted,
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
