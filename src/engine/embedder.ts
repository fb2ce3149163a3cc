// Typed wrapper over the native embedder (native/core/embedder.h): one embedding context, its calls on their own
// thread. Requests that arrive while a call runs are gathered into the next one, so concurrent requests share
// llama_decode calls (up to the sequence and token limits the native side packs by).
import type { Model } from './model.ts';
import {
  awaitNative,
  callNative,
  loadAddon,
  type NativeEmbedder,
  type NativeEmbedderInfo,
  type NativeEmbedResult,
  type NativePooling,
  nativeDefaults,
} from './native.ts';

export type Pooling = 'none' | 'mean' | 'cls' | 'last';
export const POOLINGS: readonly Pooling[] = ['none', 'mean', 'cls', 'last'];

export interface EmbedderOptions {
  /** Inputs in one llama_decode (the server's --parallel). */
  sequences?: number;
  /** The most tokens of one input (default and ceiling: the model's training context). */
  ctxPerInput?: number;
  /** Tokens in one llama_decode; also its ubatch, since a non-causal model must see an input whole. */
  batchSize?: number;
  threads?: number;
  threadsBatch?: number;
  /** Default: the model's (its GGUF's pooling_type). */
  pooling?: Pooling;
}

export interface EmbedderInfo {
  pooling: Pooling;
  /** Floats in one embedding row. */
  dimensions: number;
  maxInputTokens: number;
  sequences: number;
  batchSize: number;
}

export interface Embedding {
  /** rows * dimensions floats, as the model computed them (not normalised). */
  values: Float32Array;
  rows: number;
  tokens: number;
}

export interface EmbedOutput {
  embeddings: Embedding[];
  /** llama_decode calls of the native call that embedded these inputs (shared with requests gathered with them). */
  decodes: number;
  /** Inputs embedded by that native call, these and the others gathered with them. */
  batchedInputs: number;
}

interface Pending {
  inputs: readonly (Int32Array | readonly number[])[];
  resolve: (out: EmbedOutput) => void;
  reject: (err: unknown) => void;
}

/** The most inputs one gathered native call takes; more wait for the next (a bound on one call's memory). */
const MAX_INPUTS_PER_CALL = 2048;

export class Embedder {
  readonly model: Model;
  readonly info: EmbedderInfo;
  readonly #native: NativeEmbedder;
  #queue: Pending[] = [];
  #running = false;

  constructor(model: Model, options: EmbedderOptions = {}) {
    this.model = model;
    const addon = loadAddon();
    const d = nativeDefaults().embedder;
    this.#native = callNative(
      () =>
        new addon.Embedder(model.native, {
          nSeqMax: options.sequences ?? d.nSeqMax,
          nCtx: options.ctxPerInput ?? d.nCtx,
          nBatch: options.batchSize ?? d.nBatch,
          nThreads: options.threads ?? d.nThreads,
          nThreadsBatch: options.threadsBatch ?? d.nThreadsBatch,
          pooling: options.pooling !== undefined ? (POOLINGS.indexOf(options.pooling) as NativePooling) : d.pooling,
        }),
    );
    const raw: NativeEmbedderInfo = callNative(() => this.#native.info());
    this.info = {
      pooling: POOLINGS[raw.pooling] ?? 'none',
      dimensions: raw.nEmbd,
      maxInputTokens: raw.maxInputTokens,
      sequences: raw.nSeqMax,
      batchSize: raw.nBatch,
    };
  }

  /** Embeds token lists; rejects with the native error's class (CONTEXT_EXCEEDED, INVALID_ARGUMENT, ...). */
  embed(inputs: readonly (Int32Array | readonly number[])[]): Promise<EmbedOutput> {
    return new Promise((resolve, reject) => {
      this.#queue.push({ inputs, resolve, reject });
      void this.#drain();
    });
  }

  async #drain(): Promise<void> {
    if (this.#running) return;
    this.#running = true;
    try {
      while (this.#queue.length > 0) {
        const group: Pending[] = [this.#queue.shift()!];
        let count = group[0]!.inputs.length;
        while (this.#queue.length > 0 && count + this.#queue[0]!.inputs.length <= MAX_INPUTS_PER_CALL) {
          const next = this.#queue.shift()!;
          count += next.inputs.length;
          group.push(next);
        }
        await this.#run(group);
      }
    } finally {
      this.#running = false;
    }
  }

  async #run(group: Pending[]): Promise<void> {
    let result: NativeEmbedResult;
    try {
      result = await this.#call(group.flatMap((p) => p.inputs));
    } catch (err) {
      if (group.length === 1) {
        group[0]!.reject(err);
        return;
      }
      // One request's bad input must not fail the others gathered with it: each runs alone.
      for (const p of group) await this.#run([p]);
      return;
    }
    let at = 0;
    for (const p of group) {
      const embeddings = result.embeddings.slice(at, at + p.inputs.length);
      at += p.inputs.length;
      p.resolve({ embeddings, decodes: result.decodes, batchedInputs: result.embeddings.length });
    }
  }

  #call(inputs: readonly (Int32Array | readonly number[])[]): Promise<NativeEmbedResult> {
    return awaitNative(() => this.#native.embed(inputs));
  }

  get disposed(): boolean {
    return this.#native.disposed;
  }

  /** Frees the context. Idempotent; a call already queued still runs and settles. */
  dispose(): void {
    this.#native.dispose();
  }

  [Symbol.dispose](): void {
    this.dispose();
  }
}
