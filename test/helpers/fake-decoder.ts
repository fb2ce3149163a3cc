// A deterministic stand-in for the engine's BatchDecoder, so scheduler policy is tested without native
// code. It follows the real decoder's rules (native/core/batch_decoder.cpp): one step at a time,
// generating slots first and prompt chunks filling the budget round-robin, the KV cache keeps the prompt
// plus generated tokens less the last one, start() refuses during a step (BUSY), cancel() is safe at
// any time. Tokens are a function of the prompt and position, so tests know what to expect.

import { readFile, writeFile } from 'node:fs/promises';
import { ArgumentError, ContextExceededError, NativeError, StateError } from '../../src/errors.ts';
import type { EndReason, SlotEvent, StartOptions, StepResult } from '../../src/scheduler/decoder.ts';
import type { Decoder } from '../../src/scheduler/types.ts';

/**
 * What cancel() does while a step is in flight. The real decoder does each, depending on where its step
 * thread is: 'reported' (the step holds the slot: cancel returns false and the step ends the slot with a
 * 'cancelled' event after any token it produced), 'at-once' (the step has not begun: cancel returns true
 * and the step never sees the slot), 'late' (the step is past its last check: cancel returns false and
 * the step reports nothing; the next step, or a cancel() between steps, ends the slot).
 */
export type CancelDuringStep = 'reported' | 'at-once' | 'late';

export interface FakeDecoderOptions {
  slots?: number;
  ctxPerSlot?: number;
  batchSize?: number;
  /** Token ids must be below this, as with a real vocabulary. Default 32000. */
  vocab?: number;
  cancelDuringStep?: CancelDuringStep;
  /** True ends generation with 'stop' instead of emitting the token at `index` (like an end-of-generation token). */
  stopWhen?: (prompt: readonly number[], index: number) => boolean;
  /** Each step waits this long (a real timer) before decoding. */
  stepDelayMs?: number;
  /** One pool of this many KV cells for all slots (a unified KV), each slot still at most ctxPerSlot. */
  kvCells?: number;
}

export type DecoderCall =
  | { op: 'start'; slot: number; promptTokens: number; reusedTokens: number }
  | { op: 'cancel'; slot: number; freed: boolean; inFlight: boolean }
  | { op: 'step'; budget: number }
  | { op: 'copyPrefix'; src: number; dst: number; count: number }
  | { op: 'save' | 'restore' | 'erase' | 'saveState' | 'restoreState'; slot: number };

export interface StepRecord {
  budget: number;
  batchTokens: number;
  promptTokens: number;
  generatedTokens: number;
  /** Prompt tokens each slot decoded in this step. */
  prompt: Map<number, number>;
  /** Slots that decoded their last token (generating) in this step. */
  generating: number[];
}

interface FakeSlot {
  state: 'idle' | 'prefill' | 'generating';
  prompt: readonly number[];
  cache: number[];
  pending: number[];
  maxTokens: number;
  generated: number;
  last: number | null;
  /** Top alternatives reported per token (StartOptions.nProbs). */
  nProbs: number;
  /** Requested during step `step`; applied at its end ('step') or at the start of the next one ('next'). */
  cancel: { when: 'step' | 'next'; step: number } | null;
}

/** The token the fake generates at `index` (0 = first generated token) for a prompt. */
export function fakeToken(prompt: readonly number[], index: number): number {
  let h = 2166136261;
  for (const t of prompt) h = Math.imul(h ^ t, 16777619) >>> 0;
  h = Math.imul(h ^ (index + 1), 16777619) >>> 0;
  return 1000 + (h % 9000);
}

export function fakeText(token: number): string {
  return `t${token} `;
}

/** The first n tokens the fake generates for a prompt (absent stops and context limits). */
export function fakeTokens(prompt: readonly number[], n: number): number[] {
  return Array.from({ length: n }, (_, i) => fakeToken(prompt, i));
}

/** The probabilities the fake reports: the chosen token first at ln 0.5, then token+1.. halving each time. */
export function fakeProbs(
  token: number,
  n: number,
): { chosen: { token: number; logprob: number }; top: { token: number; logprob: number }[] } {
  const top = Array.from({ length: n }, (_, k) => ({ token: token + k, logprob: Math.log(0.5 ** (k + 1)) }));
  return { chosen: { token, logprob: Math.log(0.5) }, top };
}

export class FakeDecoder implements Decoder {
  readonly slots: number;
  readonly ctxPerSlot: number;
  readonly batchSize: number;
  readonly kvCells: number;
  readonly unifiedKv: boolean;
  readonly vocab: number;
  cancelDuringStep: CancelDuringStep;
  readonly stopWhen: ((prompt: readonly number[], index: number) => boolean) | undefined;
  stepDelayMs: number;

  /** Every call, in order. */
  readonly calls: DecoderCall[] = [];
  /** Every step that decoded something. */
  readonly steps: StepRecord[] = [];
  /** Rule breaks by the caller (start during a step, overlapping steps); a correct scheduler leaves it empty. */
  readonly violations: string[] = [];
  /** Called when a step is in flight, before it decodes: tests act "during a step" here. */
  onStepStart: ((stepIndex: number) => void) | undefined;
  /** Called after each call is recorded. */
  onCall: ((call: DecoderCall) => void) | undefined;

  readonly #slots: FakeSlot[];
  #inFlight = false;
  #stepCount = 0;
  #nextPrefill = 0;
  #failures: Error[] = [];
  #saveFailures: Error[] = [];
  #gate: { promise: Promise<void>; open: () => void } | null = null;
  #stepStartWaiters: Array<() => void> = [];

  constructor(options: FakeDecoderOptions = {}) {
    this.slots = options.slots ?? 4;
    this.ctxPerSlot = options.ctxPerSlot ?? 256;
    this.unifiedKv = options.kvCells !== undefined;
    this.kvCells = options.kvCells ?? this.ctxPerSlot * (options.slots ?? 4);
    this.batchSize = options.batchSize ?? 64;
    this.vocab = options.vocab ?? 32000;
    this.cancelDuringStep = options.cancelDuringStep ?? 'reported';
    this.stopWhen = options.stopWhen;
    this.stepDelayMs = options.stepDelayMs ?? 0;
    this.#slots = Array.from({ length: this.slots }, () => ({
      state: 'idle',
      prompt: [],
      cache: [],
      pending: [],
      maxTokens: 0,
      generated: 0,
      last: null,
      nProbs: 0,
      cancel: null,
    }));
  }

  get stepInFlight(): boolean {
    return this.#inFlight;
  }

  /** Steps begun so far. */
  get stepCount(): number {
    return this.#stepCount;
  }

  slotState(slot: number): 'idle' | 'prefill' | 'generating' {
    return this.#slot(slot).state;
  }

  /** Steps that begin from now on wait (in flight) until resume(). */
  pause(): void {
    if (this.#gate) return;
    let open = () => {};
    const promise = new Promise<void>((resolve) => {
      open = resolve;
    });
    this.#gate = { promise, open };
  }

  resume(): void {
    const gate = this.#gate;
    this.#gate = null;
    gate?.open();
  }

  /** Resolves once the next step is in flight (after onStepStart ran). */
  nextStepStarted(): Promise<void> {
    return new Promise((resolve) => this.#stepStartWaiters.push(resolve));
  }

  /** The next step rejects with this error, leaving every slot as it was. */
  failNextStep(error: Error = new NativeError('DECODE_FAILED', 'fake llama_decode failure')): void {
    this.#failures.push(error);
  }

  /** The next saveState() rejects with this error, changing nothing. */
  failNextSave(error: Error = new NativeError('NATIVE_ERROR', 'fake llama_state_seq_get_data failure')): void {
    this.#saveFailures.push(error);
  }

  start(
    slot: number,
    tokens: readonly number[],
    options: StartOptions,
  ): { reusedTokens: number; promptTokens: number } {
    if (this.#inFlight) {
      this.violations.push(`start(${slot}) while step ${this.#stepCount} was in flight`);
      throw new StateError('BUSY', 'a step is running; start slots between steps');
    }
    const s = this.#slot(slot);
    if (s.state !== 'idle') throw new StateError('BUSY', `slot ${slot} is busy`);
    if (tokens.length === 0) throw new ArgumentError('INVALID_ARGUMENT', 'the prompt must contain at least one token');
    if (!Number.isInteger(options.maxTokens) || options.maxTokens < 1)
      throw new ArgumentError('INVALID_ARGUMENT', 'maxTokens must be an integer >= 1');
    const bad = tokens.find((tok) => !Number.isInteger(tok) || tok < 0 || tok >= this.vocab);
    if (bad !== undefined)
      throw new ArgumentError('INVALID_ARGUMENT', `token ${bad} is outside the vocabulary (0..${this.vocab - 1})`);
    if (tokens.length >= this.ctxPerSlot) {
      throw new ContextExceededError(
        'CONTEXT_EXCEEDED',
        `the prompt has ${tokens.length} tokens but a slot holds at most ${this.ctxPerSlot}`,
      );
    }
    let keep = 0;
    while (keep < s.cache.length && keep < tokens.length && s.cache[keep] === tokens[keep]) keep++;
    if (keep >= tokens.length) keep = tokens.length - 1;
    s.cache.length = keep;
    s.pending = tokens.slice(keep);
    // A resumed request's prompt ends with its own output: it goes on generating as if never interrupted.
    const resumed = options.resumeTokens ?? 0;
    s.prompt = tokens.slice(0, tokens.length - resumed);
    s.maxTokens = resumed + options.maxTokens;
    s.generated = resumed;
    s.last = null;
    s.nProbs = options.nProbs ?? 0;
    s.cancel = null;
    s.state = 'prefill';
    this.#record({ op: 'start', slot, promptTokens: tokens.length, reusedTokens: keep });
    return { reusedTokens: keep, promptTokens: tokens.length };
  }

  cancel(slot: number): boolean {
    const s = this.#slot(slot);
    let freed = true;
    if (!this.#inFlight || this.cancelDuringStep === 'at-once') {
      if (s.state !== 'idle') this.#end(slot, 'cancelled', []);
    } else if (s.state !== 'idle') {
      s.cancel = { when: this.cancelDuringStep === 'reported' ? 'step' : 'next', step: this.#stepCount - 1 };
      freed = false;
    } else {
      freed = false;
    }
    this.#record({ op: 'cancel', slot, freed, inFlight: this.#inFlight });
    return freed;
  }

  cachedPrefix(slot: number): readonly number[] {
    return [...this.#slot(slot).cache];
  }

  copyPrefix(src: number, dst: number, count: number): number {
    this.#between('copyPrefix');
    const from = this.#slot(src);
    const to = this.#slot(dst);
    if (to.state !== 'idle') throw new StateError('BUSY', `slot ${dst} is busy`);
    const n = Math.max(0, Math.min(count, from.cache.length));
    to.cache = from.cache.slice(0, n);
    this.#record({ op: 'copyPrefix', src, dst, count: n });
    return n;
  }

  /** Cells holding tokens, over all slots. */
  get cellsUsed(): number {
    return this.#slots.reduce((n, s) => n + s.cache.length, 0);
  }

  /** The idle slot's tokens as its "state" (4 bytes a token, as a stand-in for llama.cpp's serialised KV). */
  async saveState(slot: number): Promise<{ tokens: number[]; state: Uint8Array }> {
    const s = this.#idleSlot(slot);
    this.#record({ op: 'saveState', slot });
    const failure = this.#saveFailures.shift();
    if (failure) throw failure;
    return { tokens: [...s.cache], state: new Uint8Array(new Int32Array(s.cache).buffer) };
  }

  async restoreState(slot: number, saved: { tokens: readonly number[]; state: Uint8Array }): Promise<number> {
    const s = this.#idleSlot(slot);
    this.#record({ op: 'restoreState', slot });
    const tokens = Array.from(new Int32Array(saved.state.slice().buffer));
    if (tokens.length !== saved.tokens.length || tokens.some((t, i) => t !== saved.tokens[i]))
      throw new ArgumentError('INVALID_ARGUMENT', 'the state does not hold these tokens');
    s.cache = tokens;
    return tokens.length;
  }

  /** Writes the idle slot's cached tokens as JSON (the real decoder writes llama.cpp's sequence state). */
  async saveSlot(slot: number, path: string): Promise<number> {
    const s = this.#idleSlot(slot);
    this.#record({ op: 'save', slot });
    await writeFile(path, JSON.stringify(s.cache));
    return s.cache.length;
  }

  async restoreSlot(slot: number, path: string): Promise<number> {
    const s = this.#idleSlot(slot);
    this.#record({ op: 'restore', slot });
    const tokens = JSON.parse(await readFile(path, 'utf8')) as number[];
    s.cache = tokens;
    return tokens.length;
  }

  async eraseSlot(slot: number): Promise<void> {
    this.#idleSlot(slot).cache = [];
    this.#record({ op: 'erase', slot });
  }

  #idleSlot(slot: number): FakeSlot {
    const s = this.#slot(slot);
    if (s.state !== 'idle') throw new StateError('BUSY', `slot ${slot} is busy`);
    return s;
  }

  #between(op: string): void {
    if (this.#inFlight) {
      this.violations.push(`${op} while step ${this.#stepCount} was in flight`);
      throw new StateError('BUSY', 'a step is running');
    }
  }

  async step(tokenBudget: number): Promise<StepResult> {
    this.#record({ op: 'step', budget: tokenBudget });
    if (this.#inFlight) {
      this.violations.push(`step() while step ${this.#stepCount} was in flight`);
      throw new StateError('BUSY', 'overlapping steps');
    }
    this.#inFlight = true;
    const index = this.#stepCount++;
    try {
      // Like the real decoder, the result arrives in a later turn of the event loop, so timers run.
      await new Promise<void>((resolve) => setImmediate(resolve));
      this.onStepStart?.(index);
      for (const resolve of this.#stepStartWaiters.splice(0)) resolve();
      if (this.stepDelayMs > 0) await new Promise<void>((resolve) => setTimeout(resolve, this.stepDelayMs));
      while (this.#gate) await this.#gate.promise;
      const failure = this.#failures.shift();
      if (failure) throw failure;
      return this.#decode(tokenBudget, index);
    } finally {
      this.#inFlight = false;
    }
  }

  #decode(tokenBudget: number, index: number): StepResult {
    const events: SlotEvent[] = [];
    this.#applyCancels(index, 'start', events);
    const nGen = this.#slots.filter((s) => s.state === 'generating').length;
    const budget = Math.min(Math.max(tokenBudget, 1), this.batchSize);
    let remaining = Math.max(0, budget - nGen);
    if (this.unifiedKv) {
      // One pool: the generating slots' tokens first; a prompt gets what is left, like llama_decode's retries.
      const free = this.kvCells - this.cellsUsed;
      if (free < nGen) {
        this.#applyCancels(index, 'end', events);
        return {
          events,
          batchTokens: 0,
          promptTokens: 0,
          generatedTokens: 0,
          retries: 1,
          decodeMicros: 0,
          kvFull: true,
        };
      }
      remaining = Math.min(remaining, free - nGen);
    }
    const take = new Map<number, number>();
    let lastServed = -1;
    for (let k = 0; k < this.slots && remaining > 0; k++) {
      const id = (this.#nextPrefill + k) % this.slots;
      const s = this.#slot(id);
      if (s.state !== 'prefill') continue;
      const n = Math.min(s.pending.length, remaining);
      take.set(id, n);
      remaining -= n;
      lastServed = id;
    }
    const promptTokens = [...take.values()].reduce((a, b) => a + b, 0);
    const record: StepRecord = {
      budget: tokenBudget,
      batchTokens: nGen + promptTokens,
      promptTokens,
      generatedTokens: nGen,
      prompt: take,
      generating: [],
    };
    if (record.batchTokens > 0) {
      if (lastServed >= 0) this.#nextPrefill = (lastServed + 1) % this.slots;
      this.#slots.forEach((s, id) => {
        const generating = s.state === 'generating';
        const n = take.get(id) ?? 0;
        if (generating && s.last !== null) {
          s.cache.push(s.last);
          record.generating.push(id);
        }
        if (n > 0) s.cache.push(...s.pending.splice(0, n));
        const samples = generating || (n > 0 && s.pending.length === 0);
        if (!samples) {
          if (n > 0) events.push({ slot: id, token: null, text: '', end: null, promptProcessed: n });
          return;
        }
        s.state = 'generating';
        const index = s.generated;
        if (this.stopWhen?.(s.prompt, index)) {
          events.push({ slot: id, token: null, text: '', end: 'stop', promptProcessed: n });
          this.#idle(s);
          return;
        }
        const token = fakeToken(s.prompt, index);
        s.generated++;
        s.last = token;
        const end: EndReason | null =
          s.generated >= s.maxTokens ? 'length' : s.cache.length >= this.ctxPerSlot ? 'context_full' : null;
        const event: SlotEvent = { slot: id, token, text: fakeText(token), end, promptProcessed: n };
        if (s.nProbs > 0) event.probs = fakeProbs(token, s.nProbs);
        events.push(event);
        if (end !== null) this.#idle(s);
      });
      this.steps.push(record);
    }
    this.#applyCancels(index, 'end', events);
    return {
      events,
      batchTokens: record.batchTokens,
      promptTokens,
      generatedTokens: nGen,
      retries: 0,
      decodeMicros: 0,
    };
  }

  #applyCancels(step: number, at: 'start' | 'end', events: SlotEvent[]): void {
    this.#slots.forEach((s, id) => {
      const c = s.cancel;
      if (c === null) return;
      // At its start a step sees the 'late' cancels of earlier steps; at its end, the ones made during it
      // (a 'late' one made during it is missed).
      const due = at === 'start' ? c.when === 'next' && c.step < step : c.when === 'step' && c.step === step;
      if (!due) return;
      if (s.state !== 'idle') this.#end(id, 'cancelled', events);
      s.cancel = null;
    });
  }

  #end(slot: number, reason: EndReason, events: SlotEvent[]): void {
    events.push({ slot, token: null, text: '', end: reason, promptProcessed: 0 });
    this.#idle(this.#slot(slot));
  }

  #idle(s: FakeSlot): void {
    s.state = 'idle';
    s.pending = [];
    s.last = null;
    s.cancel = null;
  }

  #slot(slot: number): FakeSlot {
    const s = this.#slots[slot];
    if (s === undefined) throw new ArgumentError('INVALID_ARGUMENT', `slot ${slot} does not exist`);
    return s;
  }

  #record(call: DecoderCall): void {
    this.calls.push(call);
    this.onCall?.(call);
  }
}
