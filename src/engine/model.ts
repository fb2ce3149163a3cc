// A loaded model: metadata, tokenizer, chat template. The file is validated in TypeScript
// (src/gguf/reader.ts) before llama.cpp sees it, so a bad file is a ModelFileError, never a crash.
import { resolve } from 'node:path';
import { ArgumentError, ModelLoadError } from '../errors.ts';
import { readGguf } from '../gguf/reader.ts';
import {
  awaitNative,
  callNative,
  loadAddon,
  type NativeLoadOptions,
  type NativeModel,
  type NativeModelInfo,
  nativeDefaults,
} from './native.ts';

export interface ModelLoadOptions {
  /** Layers to offload to the GPU; -1 (default) offloads all that the backend can take. */
  gpuLayers?: number;
  useMmap?: boolean;
  useMlock?: boolean;
  /** Called with 0..1 while tensors load. */
  onProgress?: (fraction: number) => void;
  /** Aborting cancels the load (the promise rejects with LOAD_CANCELLED). */
  signal?: AbortSignal;
}

/** The addon's spelling of the load options; what the caller leaves out is the core's default (native/core/model.h). */
export function nativeLoadOptions(options: Pick<ModelLoadOptions, 'gpuLayers' | 'useMmap' | 'useMlock'>) {
  const d = nativeDefaults().load;
  return {
    nGpuLayers: options.gpuLayers ?? d.nGpuLayers,
    useMmap: options.useMmap ?? d.useMmap,
    useMlock: options.useMlock ?? d.useMlock,
  } satisfies Required<NativeLoadOptions>;
}

export interface ModelInfo extends Omit<NativeModelInfo, 'eogTokens'> {
  path: string;
  fileSizeBytes: number;
  eogTokens: number[];
}

export interface ChatMessage {
  role: string;
  content: string;
}

export class Model {
  readonly path: string;
  readonly info: ModelInfo;
  readonly #native: NativeModel;

  private constructor(native: NativeModel, path: string, fileSizeBytes: number) {
    this.#native = native;
    this.path = path;
    const raw = callNative(() => native.info());
    this.info = { ...raw, eogTokens: Array.from(raw.eogTokens), path, fileSizeBytes };
  }

  static async load(path: string, options: ModelLoadOptions = {}): Promise<Model> {
    if (typeof path !== 'string' || path === '')
      throw new ArgumentError('INVALID_ARGUMENT', 'model path must be a non-empty string');
    const full = resolve(path);
    // The header's facts only (the file checked, its size): llama.cpp reads the vocabulary itself.
    const file = await readGguf(full, { stringArrays: 'skip' });
    if (options.signal?.aborted) throw new ModelLoadError('LOAD_CANCELLED', 'model load was cancelled');
    const addon = loadAddon();
    const native = new addon.Model();
    const onAbort = (): void => native.abortLoad();
    options.signal?.addEventListener('abort', onAbort, { once: true });
    try {
      await awaitNative(() => native.load(full, nativeLoadOptions(options), options.onProgress));
    } catch (err) {
      native.dispose();
      throw err;
    } finally {
      options.signal?.removeEventListener('abort', onAbort);
    }
    return new Model(native, full, file.fileSize);
  }

  /** For other engine classes (the batch decoder) that take the native model. */
  get native(): NativeModel {
    return this.#native;
  }

  get disposed(): boolean {
    return this.#native.disposed;
  }

  tokenize(text: string, options: { addSpecial?: boolean; parseSpecial?: boolean } = {}): Int32Array {
    return callNative(() => this.#native.tokenize(text, options.addSpecial, options.parseSpecial));
  }

  detokenize(
    tokens: Int32Array | readonly number[],
    options: { removeSpecial?: boolean; unparseSpecial?: boolean } = {},
  ): string {
    return callNative(() => this.#native.detokenize(tokens, options.removeSpecial, options.unparseSpecial));
  }

  /** The token's raw bytes: possibly part of a multi-byte UTF-8 character. */
  tokenBytes(token: number, options: { special?: boolean } = {}): Uint8Array {
    return callNative(() => this.#native.tokenToPiece(token, options.special));
  }

  tokenToPiece(token: number, options: { special?: boolean } = {}): string {
    return Buffer.from(this.tokenBytes(token, options)).toString('utf8');
  }

  isEog(token: number): boolean {
    return this.info.eogTokens.includes(token);
  }

  applyChatTemplate(
    messages: readonly ChatMessage[],
    options: { addAssistant?: boolean; template?: string } = {},
  ): string {
    return callNative(() => this.#native.applyChatTemplate(messages, options.addAssistant, options.template));
  }

  /** Greedy tokens from the plain single-sequence loop (the decoder's reference). */
  referenceGreedy(
    tokens: Int32Array | readonly number[],
    options: { nPredict?: number; nCtx?: number; threads?: number; nBatch?: number } = {},
  ): Promise<number[]> {
    const { threads, ...rest } = options;
    return awaitNative(() =>
      this.#native.referenceGreedy(tokens, { ...rest, ...(threads !== undefined ? { nThreads: threads } : {}) }),
    ).then((out) => Array.from(out));
  }

  /** Frees the model. Idempotent; work already running keeps its own reference until it ends. */
  dispose(): void {
    this.#native.dispose();
  }

  /** dispose(), with the weights freed off the JS thread (unmapping a large model takes a while). */
  release(): Promise<void> {
    return awaitNative(() => this.#native.release());
  }

  [Symbol.dispose](): void {
    this.dispose();
  }
}
