// What llama.cpp allocates for a model and a context, computed from the GGUF alone: weights per layer, the
// output matrix, the KV cache (sliding-window aware), the logits buffer and the compute buffer, plus what the
// CUDA backend adds on top. Pure functions; the planner (planner.ts) searches over them.
//
// Sources, all in vendor/llama.cpp (the numbers below are checked against llama.cpp's own buffer sizes in
// test/fit/cross-check.test.ts):
//  - placement: src/llama-model.cpp load_tensors (i_gpu_start = n_layer + 1 - n_gpu_layers; the input
//    embedding always stays on the CPU; the output layer goes to the GPU only when n_gpu_layers > n_layer;
//    a tied output matrix is token_embd.weight loaded a second time, TENSOR_DUPLICATED, on the output device)
//  - context sizes: src/llama-context.cpp (n_ctx padded to 256; per sequence n_ctx_seq = pad(n_ctx / n_seq, 256)
//    unless the KV cache is unified; n_ubatch = min(n_ubatch, n_batch))
//  - KV cache: src/llama-kv-cache.cpp (per layer a [n_embd_k_gqa, kv_size, n_stream] K and V tensor on the
//    layer's device; n_stream = n_seq_max unless unified) and src/llama-kv-cache-iswa.cpp (the SWA cache
//    holds pad(min(kv_size, n_swa * (unified ? n_seq : 1) + n_ubatch), 256) cells per stream)
//  - output buffer: llama_context::output_reserve (n_vocab * max(n_outputs_max, n_seq_max) floats, in host
//    memory: the CPU buffer type, or the pinned host buffer of the output layer's device)
//  - compute buffer: the graph allocator over src/models/*.cpp (see computeBuffer below)
import { ModelFileError } from '../errors.ts';
import { getArchitecture, getArray, getInt, getString } from '../gguf/metadata.ts';
import { readGguf } from '../gguf/reader.ts';
import type { GgufFile, GgufTensorInfo, KvType } from '../gguf/types.ts';
import { GgmlType, GgufValueType, ggmlTypeName, ggmlTypeTraits } from '../gguf/types.ts';

export const MIB = 1024 * 1024;
export const GIB = 1024 * MIB;

/** The KV cache types the planner plans with, of llama.cpp's (q8_0 needs flash attention). */
export type PlannedKvType = Extract<KvType, 'f16' | 'q8_0'>;
export const PLANNED_KV_TYPES: readonly PlannedKvType[] = ['f16', 'q8_0'];

/**
 * VRAM a CUDA process uses besides ggml's buffers, reserved off the top of the budget:
 *  - the CUDA context: on a Maxwell card with CUDA 12 and lazy module loading about 60-90 MiB (context
 *    state, the default 8 MiB device malloc heap, per-thread local memory/stack reserved for every resident
 *    thread, and the code of the ggml kernels that get loaded);
 *  - cuBLAS: its handle and workspace (4 MiB below Hopper) plus its kernels once a GEMM runs — on CC < 6.1
 *    with batches of at most 8 rows it never runs, on other cards it does for prefill;
 *  - the ggml CUDA memory pool: q8_1 copies of the activations for MMVQ/MMQ, flash-attention scratch
 *    (small at these batch sizes; itemized separately where it scales with the batch).
 * Together 100-150 MiB on a 1 GB card; 128 MiB is the default and it is an option (--overhead).
 */
export const DEFAULT_CUDA_OVERHEAD_BYTES = 128 * MIB;

/** llama.cpp pads n_ctx, n_ctx_seq and the SWA cache to this many cells. */
export const CTX_PAD = 256;
/** MMVQ handles up to this many rows; above it, GPUs without MMQ (CC < 6.1) go through cuBLAS. */
export const MMVQ_MAX_BATCH = 8;
/** GGML_CUDA_CC_DP4A: MMQ (quantized matmul for batches) needs __dp4a, CC 6.1. */
export const CC_DP4A = 610;
/** GGML_CUDA_CC_PASCAL: fast FP16 (cuBLAS then dequantizes to F16 instead of F32), except CC 6.1. */
export const CC_PASCAL = 600;
/** ggml's op_offload_min_batch_size: CPU-resident weights get copied to the GPU for batches this large. */
export const OP_OFFLOAD_MIN_BATCH = 32;

const CUDA_ALIGNMENT = 128;
const MATRIX_ROW_PADDING = 512;

/** Default period of sliding-window layers per architecture, when the GGUF does not say. */
const DEFAULT_SWA_PERIOD: Readonly<Record<string, number>> = { gemma2: 2, gemma3: 6, cohere2: 4 };

export interface LayerInfo {
  index: number;
  /** Sum of the blk.N.* tensors' bytes as stored. */
  bytes: number;
  /** The same tensors as a CUDA buffer holds them (128-byte alignment, quantized rows padded to 512). */
  cudaBytes: number;
  /** The largest weight matrix in elements (what cuBLAS dequantizes at once). */
  largestMatrixElements: number;
  sliding: boolean;
  nHead: number;
  nHeadKv: number;
  /** n_embd_k_gqa / n_embd_v_gqa: K and V values per token. */
  nEmbdKGqa: number;
  nEmbdVGqa: number;
  nFf: number;
}

export interface TensorRef {
  name: string;
  type: string;
  dims: number[];
  bytes: number;
  cudaBytes: number;
}

/** Everything the planner needs from a GGUF. */
export interface ModelShape {
  path: string;
  arch: string;
  name: string;
  nLayer: number;
  nEmbd: number;
  nVocab: number;
  nCtxTrain: number;
  /** Key length (head dimension) of the global layers. */
  headDimK: number;
  headDimV: number;
  /** Query values per token (n_head * head_dim_k), the widest attention activation. */
  nQ: number;
  /** Sliding window in tokens, or 0 when every layer is global. */
  nSwa: number;
  layers: LayerInfo[];
  /** The input embedding: always on the CPU. */
  tokenEmbd: TensorRef;
  /** The output matrix (output.weight, or token_embd.weight when tied). */
  output: TensorRef;
  outputTied: boolean;
  /** output_norm and any other tensor of the output layer. */
  outputNormBytes: number;
  outputNormCudaBytes: number;
  /** Tensors outside blk.N.* that are neither input nor output (e.g. rope_freqs), put with the layers. */
  otherBytes: number;
  otherCudaBytes: number;
  /** Sum of all tensors' bytes (what a CPU-only load maps, CPU_REPACK aside). */
  totalBytes: number;
}

// ---------------------------------------------------------------------------------------------------------
// Model info from the GGUF

/** Reads the GGUF header (no tensor data) and derives the planner's view of the model. */
export async function readModelShape(path: string): Promise<ModelShape> {
  return modelShapeFromGguf(await readGguf(path, { stringArrays: 'skip' }));
}

function perLayer(file: GgufFile, key: string, nLayer: number): number[] | undefined {
  const entry = file.metadata.get(key);
  if (entry === undefined) return undefined;
  if (entry.type === GgufValueType.ARRAY) {
    const values = Array.from(entry.value as ArrayLike<number | bigint | boolean>, (v) => Number(v));
    if (values.length === 0) return undefined;
    return Array.from({ length: nLayer }, (_, i) => values[i] ?? values[values.length - 1] ?? 0);
  }
  const value = getInt(file, key);
  return value === undefined ? undefined : new Array<number>(nLayer).fill(value);
}

/** Bytes a CUDA buffer allocates for a tensor (ggml_backend_cuda_buffer_type_get_alloc_size + alignment). */
export function cudaTensorBytes(t: Pick<GgufTensorInfo, 'type' | 'dims' | 'nbytes'>): number {
  let size = t.nbytes;
  const traits = ggmlTypeTraits(t.type);
  const ne0 = t.dims[0] ?? 1;
  if (traits.blockSize > 1 && ne0 % MATRIX_ROW_PADDING !== 0) {
    size += ((MATRIX_ROW_PADDING - (ne0 % MATRIX_ROW_PADDING)) / traits.blockSize) * traits.typeSize;
  }
  return Math.ceil(size / CUDA_ALIGNMENT) * CUDA_ALIGNMENT;
}

function tensorRef(t: GgufTensorInfo): TensorRef {
  return {
    name: t.name,
    type: ggmlTypeName(t.type),
    dims: [...t.dims],
    bytes: t.nbytes,
    cudaBytes: cudaTensorBytes(t),
  };
}

function elements(dims: readonly number[]): number {
  return dims.reduce((a, b) => a * b, 1);
}

const INPUT_TENSORS = new Set([
  'token_embd.weight',
  'token_types.weight',
  'position_embd.weight',
  'token_embd_norm.weight',
  'token_embd_norm.bias',
]);

export function modelShapeFromGguf(file: GgufFile): ModelShape {
  const arch = getArchitecture(file);
  if (arch === undefined) throw new ModelFileError('GGUF_CORRUPT', `${file.path}: no general.architecture`);
  const key = (k: string): string => `${arch}.${k}`;
  const need = (k: string): number => {
    const v = getInt(file, key(k));
    if (v === undefined) throw new ModelFileError('GGUF_CORRUPT', `${file.path}: missing ${key(k)}`);
    return v;
  };
  const nLayer = need('block_count');
  const nEmbd = need('embedding_length');

  const byName = new Map(file.tensors.map((t) => [t.name, t]));
  const tokenEmbdTensor = byName.get('token_embd.weight');
  if (tokenEmbdTensor === undefined) throw new ModelFileError('GGUF_CORRUPT', `${file.path}: no token_embd.weight`);
  const outputTensor = byName.get('output.weight') ?? tokenEmbdTensor;
  const outputTied = !byName.has('output.weight');

  const nHead = perLayer(file, key('attention.head_count'), nLayer) ?? new Array<number>(nLayer).fill(1);
  const nHeadKv = perLayer(file, key('attention.head_count_kv'), nLayer) ?? nHead;
  const nHead0 = Math.max(...nHead.filter((h) => h > 0), 1);
  const headDimK = getInt(file, key('attention.key_length')) ?? Math.floor(nEmbd / nHead0);
  const headDimV = getInt(file, key('attention.value_length')) ?? headDimK;
  const headDimKSwa = getInt(file, key('attention.key_length_swa')) ?? headDimK;
  const headDimVSwa = getInt(file, key('attention.value_length_swa')) ?? headDimV;

  // Sliding-window layers (llama_hparams::set_swa_pattern with dense_first = false: il % p < p - 1 slides).
  const nSwa = getInt(file, key('attention.sliding_window')) ?? 0;
  let sliding = new Array<boolean>(nLayer).fill(false);
  if (nSwa > 0) {
    const pattern = file.metadata.get(key('attention.sliding_window_pattern'));
    if (pattern?.type === GgufValueType.ARRAY) {
      const values = Array.from(pattern.value as ArrayLike<number | bigint | boolean>, (v) => Boolean(Number(v)));
      sliding = Array.from({ length: nLayer }, (_, i) => values[i] ?? false);
    } else {
      const period =
        pattern !== undefined ? getInt(file, key('attention.sliding_window_pattern')) : DEFAULT_SWA_PERIOD[arch];
      // Unknown layout: count every layer as global (more KV than needed, never less).
      if (period !== undefined)
        sliding = Array.from({ length: nLayer }, (_, i) => period === 0 || i % period < period - 1);
    }
  }

  const tokens = getArrayLength(file, 'tokenizer.ggml.tokens');
  const nVocab = tokens ?? getInt(file, key('vocab_size')) ?? outputTensor.dims[1] ?? 0;

  const layers: LayerInfo[] = Array.from({ length: nLayer }, (_, i) => {
    const swa = sliding[i] ?? false;
    const hkv = nHeadKv[i] ?? 1;
    return {
      index: i,
      bytes: 0,
      cudaBytes: 0,
      largestMatrixElements: 0,
      sliding: swa,
      nHead: nHead[i] ?? nHead0,
      nHeadKv: hkv,
      nEmbdKGqa: (swa ? headDimKSwa : headDimK) * hkv,
      nEmbdVGqa: (swa ? headDimVSwa : headDimV) * hkv,
      nFf: 0,
    };
  });
  const ffFromMetadata = perLayer(file, key('feed_forward_length'), nLayer);

  let outputNormBytes = 0;
  let outputNormCudaBytes = 0;
  let otherBytes = 0;
  let otherCudaBytes = 0;
  let totalBytes = 0;
  for (const t of file.tensors) {
    totalBytes += t.nbytes;
    const m = /^blk\.(\d+)\./.exec(t.name);
    if (m) {
      const layer = layers[Number(m[1])];
      if (layer === undefined) continue; // e.g. a next-token-prediction layer beyond block_count
      layer.bytes += t.nbytes;
      layer.cudaBytes += cudaTensorBytes(t);
      if (t.dims.length >= 2) layer.largestMatrixElements = Math.max(layer.largestMatrixElements, elements(t.dims));
      if (/\.ffn_(up|gate)\.weight$/.test(t.name)) layer.nFf = Math.max(layer.nFf, t.dims[1] ?? 0);
    } else if (INPUT_TENSORS.has(t.name)) {
      // The input layer stays on the CPU.
    } else if (t.name === 'output.weight') {
      // Counted as the output matrix.
    } else if (t.name.startsWith('output')) {
      outputNormBytes += t.nbytes;
      outputNormCudaBytes += cudaTensorBytes(t);
    } else {
      otherBytes += t.nbytes;
      otherCudaBytes += cudaTensorBytes(t);
    }
  }
  for (const layer of layers) {
    const fromMeta = ffFromMetadata?.[layer.index];
    if (fromMeta !== undefined && fromMeta > 0) layer.nFf = fromMeta;
  }

  return {
    path: file.path,
    arch,
    name: getString(file, 'general.name') ?? arch,
    nLayer,
    nEmbd,
    nVocab,
    nCtxTrain: getInt(file, key('context_length')) ?? 4096,
    headDimK,
    headDimV,
    nQ: Math.max(1, ...layers.map((l) => l.nHead * (l.sliding ? headDimKSwa : headDimK))),
    nSwa: sliding.some(Boolean) ? nSwa : 0,
    layers,
    tokenEmbd: tensorRef(tokenEmbdTensor),
    output: tensorRef(outputTensor),
    outputTied,
    outputNormBytes,
    outputNormCudaBytes,
    otherBytes,
    otherCudaBytes,
    totalBytes,
  };
}

function getArrayLength(file: GgufFile, key: string): number | undefined {
  return getArray(file, key)?.value.length;
}

// ---------------------------------------------------------------------------------------------------------
// KV cache

/** Bytes of one row of `n` values of a KV cache type (q8_0: blocks of 32 values in 34 bytes). */
export function kvRowBytes(type: PlannedKvType | 'f32', n: number): number {
  if (type === 'f32') return 4 * n;
  if (type === 'f16') return 2 * n;
  const q8 = ggmlTypeTraits(GgmlType.Q8_0);
  return Math.ceil(n / q8.blockSize) * q8.typeSize;
}

/** K + V bytes one token takes in one layer (V of `typeV` when it differs, as a draft's -ctkd/-ctvd may). */
export function kvBytesPerTokenLayer(
  layer: Pick<LayerInfo, 'nEmbdKGqa' | 'nEmbdVGqa'>,
  type: PlannedKvType | 'f32',
  typeV: PlannedKvType | 'f32' = type,
): number {
  return kvRowBytes(type, layer.nEmbdKGqa) + kvRowBytes(typeV, layer.nEmbdVGqa);
}

export function padTo(n: number, multiple: number): number {
  return Math.ceil(n / multiple) * multiple;
}

export interface ContextShape {
  slots: number;
  ctxPerSlot: number;
  ubatch: number;
  /** llama.cpp n_batch (default 512): n_ubatch is capped by it. */
  batch?: number;
  unified?: boolean;
  swaFull?: boolean;
}

export interface KvCells {
  /** n_ctx after llama.cpp's padding (all slots). */
  nCtx: number;
  /** n_ctx_seq: the context each slot really gets. */
  nCtxSeq: number;
  /** n_ubatch as llama.cpp uses it. */
  nUbatch: number;
  /** KV streams: one per slot, or 1 when unified. */
  streams: number;
  /** Cells per stream of the global layers. */
  base: number;
  /** Cells per stream of the sliding layers (0 when the model has none). */
  swa: number;
}

/** The KV cache geometry llama.cpp derives from our decoder's settings (n_ctx = ctxPerSlot * slots). */
export function kvCells(shape: ContextShape, nSwa: number): KvCells {
  const { slots, ctxPerSlot, unified = false, swaFull = false } = shape;
  let nCtx = padTo(ctxPerSlot * slots, CTX_PAD);
  let nCtxSeq: number;
  if (unified) {
    nCtxSeq = nCtx;
  } else {
    nCtxSeq = padTo(Math.floor(nCtx / slots), CTX_PAD);
    nCtx = nCtxSeq * slots;
  }
  const nBatch = Math.min(nCtx, shape.batch ?? Math.max(512, shape.ubatch));
  const nUbatch = Math.min(nBatch, shape.ubatch);
  const base = nCtxSeq;
  let swa = 0;
  if (nSwa > 0) swa = swaFull ? base : padTo(Math.min(base, nSwa * (unified ? slots : 1) + nUbatch), CTX_PAD);
  return { nCtx, nCtxSeq, nUbatch, streams: unified ? 1 : slots, base, swa };
}

export interface KvBytes {
  global: { layers: number; bytes: number; bytesPerCell: number };
  sliding: { layers: number; bytes: number; bytesPerCell: number };
  bytes: number;
}

/** KV bytes of the given layers (all by default) for a cache geometry; V of `typeV` when it differs from K. */
export function kvBytes(
  model: ModelShape,
  cells: KvCells,
  type: PlannedKvType,
  layers: readonly LayerInfo[] = model.layers,
  typeV: PlannedKvType = type,
): KvBytes {
  const out: KvBytes = {
    global: { layers: 0, bytes: 0, bytesPerCell: 0 },
    sliding: { layers: 0, bytes: 0, bytesPerCell: 0 },
    bytes: 0,
  };
  for (const layer of layers) {
    const part = layer.sliding ? out.sliding : out.global;
    const perCell = kvBytesPerTokenLayer(layer, type, typeV);
    part.layers += 1;
    part.bytesPerCell = Math.max(part.bytesPerCell, perCell);
    part.bytes += perCell * (layer.sliding ? cells.swa : cells.base) * cells.streams;
  }
  out.bytes = out.global.bytes + out.sliding.bytes;
  return out;
}

/** The logits buffer: n_vocab floats per output row, n_outputs_max = the slots in our decoder. Host memory. */
export function outputBufferBytes(model: Pick<ModelShape, 'nVocab'>, slots: number): number {
  return model.nVocab * slots * 4;
}

// ---------------------------------------------------------------------------------------------------------
// Compute buffer
//
// llama.cpp reserves the worst-case graphs (sched_reserve): prompt processing with n_tokens = n_ubatch and
// n_outputs = min(n_ubatch, n_outputs_max), and token generation with n_tokens = n_outputs = n_seq. ggml's
// graph allocator frees each tensor after its last use, so the buffer is the peak of the live tensors.
// From the graphs (src/models/llama.cpp, gemma3.cpp, src/llama-graph.cpp build_attn_mha/build_ffn) and
// calibrated against llama.cpp's reported CPU buffer (test/fit/cross-check.test.ts), with T = n_tokens:
//
//   base        = T * 4 * (3 n_embd + n_q)               flash attention (n_q = n_head * head_dim)
//               = T * 4 * (3 n_embd + 3 n_q)             without: Q, KQV and its permuted copy
//               + T * 4 * n_q + 2 * head_dim^2 * 4       quantized KV: the Hadamard-rotated Q and the rotations
//   ffn(l)      = T * 4 * 3 n_ff                         gate, up and the activated product, all live at once
//   attn(l)     = T * 4 * n_head * n_kv(l)               without flash attention: the KQ scores (softmax in place)
//               = F16 copies of K and V (all streams)    CUDA tile/MMA flash attention with a quantized cache
//   masks       = T * cells * (2 with FA | 4)            one per cache (global, SWA), freed after the last layer using it
//   layer peak  = max(base + ffn(l) + masks used after l, base + attn(l) + masks used from l on)
//   logits      = n_outputs * 4 * (n_vocab + n_embd) + e * T * 4 * n_embd     (e = 2 for gemma's scaled input, else 1)
//   buffer      = max over both graphs of max(layer peaks, logits)
//
// Error against llama.cpp's reported CPU compute buffer on the generated models (test/fit/cross-check.test.ts
// and the calibration runs behind it): gemma3-1b Q4_K_M -0.04% at ubatch 512 (FFN peak, 1 to 8 slots, ctx
// 1024 to 16384, unified or not), -0.02% without flash attention (KQ peak at ctx 16384), -0.1% to -0.3% with
// a q8_0 cache, +0.4% to +3% at ubatch 8 (logits peak, ~40 KB); tiny/tiny-gemma3 F16 -0.1% to -0.3% at
// ubatch 512, up to +7% (9 KB) at ubatch 8, -2.3% at an odd ubatch of 100. One known gap: on the 2- and
// 6-layer tiny models a q8_0 cache moves the allocator's peak and the formula overestimates by 12-14% (the
// safe side). CUDA-only terms (the flash-attention F16 conversion, the pool) cannot be checked on this machine.
// Weights, KV and the logits buffer are exact (KV/logits differ from llama.cpp's log only by its 0.01 MiB rounding).

export interface ComputeOptions {
  cells: KvCells;
  slots: number;
  flashAttn: boolean;
  kvType: PlannedKvType;
  /** true: the CUDA buffer (adds the tile/MMA flash-attention F16 conversion for a quantized cache). */
  cuda: boolean;
  /** Layers whose activations this buffer holds (all by default). */
  layers?: readonly LayerInfo[];
  /** Whether this buffer holds the logits (the output layer runs on this device). */
  logits?: boolean;
}

export interface ComputeEstimate {
  bytes: number;
  /** Which term set the peak. */
  peak: 'ffn' | 'attention' | 'logits';
  nTokens: number;
  nOutputs: number;
}

function graphPeak(model: ModelShape, nTokens: number, nOutputs: number, o: ComputeOptions): ComputeEstimate {
  const { cells, flashAttn, kvType, cuda } = o;
  const layers = o.layers ?? model.layers;
  const maskElement = flashAttn ? 2 : 4;
  // Masks are [n_kv, n_tokens / n_stream, 1, n_stream]: n_kv (cells per stream) by n_tokens in total.
  const maskBase = nTokens * cells.base * maskElement;
  const maskSwa = cells.swa > 0 ? nTokens * cells.swa * maskElement : 0;
  let lastGlobal = -1;
  let lastSwa = -1;
  for (const l of model.layers) {
    if (l.sliding) lastSwa = l.index;
    else lastGlobal = l.index;
  }
  const quantizedKv = kvType !== 'f16';
  const rotation =
    quantizedKv && model.headDimK % 64 === 0 ? nTokens * 4 * model.nQ + 2 * model.headDimK * model.headDimK * 4 : 0;
  const base = nTokens * 4 * (3 * model.nEmbd + (flashAttn ? 1 : 3) * model.nQ) + rotation;
  const tokensPerStream = nTokens / cells.streams;

  let best: ComputeEstimate = { bytes: 0, peak: 'ffn', nTokens, nOutputs };
  for (const l of layers) {
    const cellsL = l.sliding ? cells.swa : cells.base;
    const masksFrom = (l.index <= lastGlobal ? maskBase : 0) + (l.index <= lastSwa ? maskSwa : 0);
    const masksAfter = (l.index < lastGlobal ? maskBase : 0) + (l.index < lastSwa ? maskSwa : 0);
    let attn = 0;
    if (!flashAttn) attn = nTokens * 4 * l.nHead * cellsL;
    else if (cuda && quantizedKv && tokensPerStream > 1)
      attn = (l.nEmbdKGqa + l.nEmbdVGqa) * cellsL * cells.streams * 2;
    const ffn = nTokens * 4 * 3 * (l.nFf || 4 * model.nEmbd);
    const ffnPeak = base + ffn + masksAfter;
    const attnPeak = base + attn + masksFrom;
    if (ffnPeak > best.bytes) best = { bytes: ffnPeak, peak: 'ffn', nTokens, nOutputs };
    if (attnPeak > best.bytes) best = { bytes: attnPeak, peak: 'attention', nTokens, nOutputs };
  }
  if (o.logits ?? true) {
    const inputCopies = model.arch.startsWith('gemma') ? 2 : 1;
    const logits = nOutputs * 4 * (model.nVocab + model.nEmbd) + inputCopies * nTokens * 4 * model.nEmbd;
    if (logits > best.bytes) best = { bytes: logits, peak: 'logits', nTokens, nOutputs };
  }
  return best;
}

/** The compute buffer llama.cpp reserves: the larger of the prompt and the generation graph. */
export function computeBuffer(model: ModelShape, o: ComputeOptions): ComputeEstimate {
  const nTokensPp = Math.min(o.cells.nCtx, o.cells.nUbatch);
  const pp = graphPeak(model, nTokensPp, Math.min(nTokensPp, o.slots), o);
  const tg = graphPeak(model, o.slots, o.slots, o);
  return tg.bytes > pp.bytes ? tg : pp;
}

// ---------------------------------------------------------------------------------------------------------
// A whole configuration on a CUDA device

export interface DeviceSettings {
  /** llama.cpp n_gpu_layers: n_layer + 1 (or more, or -1) puts every layer and the output layer on the GPU. */
  gpuLayers: number;
  slots: number;
  ctxPerSlot: number;
  ubatch: number;
  batch?: number;
  kvType: PlannedKvType;
  flashAttn: boolean;
  unified?: boolean;
  swaFull?: boolean;
}

/**
 * A draft model for speculative decoding (-md): its weights where -ngld puts them, and a context of its own that
 * mirrors the target's (native/core/speculation.cpp: the same n_ctx, n_batch, n_ubatch, sequences, unified pool,
 * swa_full and flash attention), over its own layer shapes and -ctkd/-ctvd types.
 */
export interface DraftSettings {
  model: ModelShape;
  /** The draft's n_gpu_layers; -1 (or n_layer + 1 and more): every layer and its output matrix. */
  gpuLayers: number;
  kvTypeK: PlannedKvType;
  kvTypeV: PlannedKvType;
}

export interface DeviceOptions {
  /** CUDA compute capability as major * 100 + minor * 10 (5.0 -> 500), when known. */
  cc?: number;
  cudaOverheadBytes?: number;
  /** Counted on the same device: the draft model and its context. */
  draft?: DraftSettings;
}

export interface MemoryItem {
  name: string;
  bytes: number;
  formula: string;
  /** vram counts against the budget; host is system memory (pinned or mapped), listed for completeness. */
  where: 'vram' | 'host';
}

export interface MemoryEstimate {
  items: MemoryItem[];
  vramBytes: number;
  hostBytes: number;
  cells: KvCells;
  /** Layers on the GPU (0..n_layer) and whether the output layer is there too. */
  gpuLayerCount: number;
  outputOnGpu: boolean;
  compute: ComputeEstimate;
  kv: KvBytes;
}

export function mib(bytes: number, digits = 2): string {
  return (bytes / MIB).toFixed(digits);
}

function plural(k: number, word: string): string {
  return `${k} ${word}${k === 1 ? '' : 's'}`;
}

function ccText(cc: number): string {
  return `${Math.floor(cc / 100)}.${Math.floor((cc % 100) / 10)}`;
}

/** Whether batches above MMVQ_MAX_BATCH rows fall back to cuBLAS after dequantizing weights (no MMQ). */
export function cublasFallback(cc: number | undefined): boolean {
  return cc !== undefined && cc < CC_DP4A;
}

/**
 * Where a model's layers go with `gpuLayers` (llama.cpp's -ngl: the last layers first, the output layer with n + 1;
 * -1 all) and the KV cells the settings' slots give it.
 */
function placement(model: ModelShape, gpuLayersAsked: number, s: DeviceSettings) {
  const n = model.nLayer;
  const ngl = gpuLayersAsked < 0 ? n + 1 : Math.min(gpuLayersAsked, n + 1);
  const gpuLayerCount = Math.min(ngl, n);
  const firstGpu = n - gpuLayerCount;
  const cells = kvCells(
    {
      slots: s.slots,
      ctxPerSlot: s.ctxPerSlot,
      ubatch: s.ubatch,
      ...(s.batch !== undefined ? { batch: s.batch } : {}),
      unified: s.unified ?? false,
      swaFull: s.swaFull ?? false,
    },
    model.nSwa,
  );
  return {
    n,
    outputOnGpu: ngl > n,
    gpuLayerCount,
    firstGpu,
    gpuLayers: model.layers.slice(firstGpu),
    cpuLayers: model.layers.slice(0, firstGpu),
    cells,
  };
}

/** Itemized VRAM (and host memory) of a configuration. Each item carries the formula that produced it. */
export function estimateDeviceMemory(model: ModelShape, s: DeviceSettings, opts: DeviceOptions = {}): MemoryEstimate {
  const { n, outputOnGpu, gpuLayerCount, firstGpu, gpuLayers, cpuLayers, cells } = placement(model, s.gpuLayers, s);
  const items: MemoryItem[] = [];
  const vram = (name: string, bytes: number, formula: string): void => {
    items.push({ name, bytes, formula, where: 'vram' });
  };
  const host = (name: string, bytes: number, formula: string): void => {
    items.push({ name, bytes, formula, where: 'host' });
  };

  const overhead = opts.cudaOverheadBytes ?? DEFAULT_CUDA_OVERHEAD_BYTES;
  vram('CUDA context + cuBLAS + pool', overhead, `fixed allowance (${mib(overhead, 0)} MiB, --overhead)`);

  // Weights.
  if (gpuLayerCount > 0) {
    const bytes = gpuLayers.reduce((a, l) => a + l.cudaBytes, 0) + model.otherCudaBytes;
    const range = gpuLayerCount === n ? `0-${n - 1}` : `${firstGpu}-${n - 1}`;
    vram(
      `weights: layers ${range} (${gpuLayerCount}/${n})`,
      bytes,
      `Σ blk.N.* tensor bytes${model.otherBytes > 0 ? ' + shared tensors' : ''} (${mib(bytes / gpuLayerCount)} MiB/layer avg)`,
    );
  }
  const outputDesc = `${model.output.dims.join(' × ')} ${model.output.type}${model.outputTied ? ' (tied: token_embd.weight loaded again)' : ''}`;
  if (outputOnGpu) {
    const norm = model.outputNormCudaBytes > 0 ? ` + output_norm ${model.outputNormCudaBytes} B` : '';
    vram(
      `weights: output matrix (${model.output.name})`,
      model.output.cudaBytes + model.outputNormCudaBytes,
      `${outputDesc}${norm}`,
    );
  }

  // KV cache on the GPU (offload_kqv: each layer's KV lives on the layer's device).
  const kvGpu = kvBytes(model, cells, s.kvType, gpuLayers);
  const kvDesc = (part: KvBytes['global'], cellCount: number, how: string): string =>
    `${plural(part.layers, 'layer')} × ${cellCount} cells${how} × ${plural(cells.streams, 'stream')} × ${part.bytesPerCell} B (K+V ${s.kvType})`;
  const swaHow = s.swaFull
    ? ' (swa-full)'
    : ` (pad256(min(${cells.base}, ${model.nSwa}${s.unified ? ` × ${s.slots}` : ''} + ub ${cells.nUbatch})))`;
  if (kvGpu.global.layers > 0)
    vram(
      `KV cache: ${plural(kvGpu.global.layers, 'global layer')}`,
      kvGpu.global.bytes,
      kvDesc(kvGpu.global, cells.base, ''),
    );
  if (kvGpu.sliding.layers > 0)
    vram(
      `KV cache: ${plural(kvGpu.sliding.layers, 'sliding layer')}`,
      kvGpu.sliding.bytes,
      kvDesc(kvGpu.sliding, cells.swa, swaHow),
    );

  // Compute buffer.
  const compute =
    gpuLayerCount > 0 || outputOnGpu
      ? computeBuffer(model, {
          cells,
          slots: s.slots,
          flashAttn: s.flashAttn,
          kvType: s.kvType,
          cuda: true,
          layers: gpuLayers,
          logits: outputOnGpu,
        })
      : { bytes: 0, peak: 'ffn' as const, nTokens: 0, nOutputs: 0 };
  const computeFormula =
    compute.peak === 'logits'
      ? `logits: ${compute.nOutputs} rows × (n_vocab ${model.nVocab} + n_embd) × 4 + ub ${compute.nTokens} × n_embd × 4`
      : compute.peak === 'ffn'
        ? `ub ${compute.nTokens} × 4 × (3 n_ff + 3 n_embd + ${s.flashAttn ? '' : '3 '}n_q${s.kvType !== 'f16' ? ' + rotated q' : ''}) + KQ masks`
        : `ub ${compute.nTokens} × 4 × (3 n_embd + n_q) + ${s.flashAttn ? 'F16 copy of K/V for flash attention' : 'KQ scores ub × n_head × n_kv × 4'} + KQ masks`;
  if (compute.bytes > 0) vram(`compute buffer (${compute.peak} peak)`, compute.bytes, computeFormula);

  // The CUDA pool: buffers that scale with the batch.
  const noMmq = cublasFallback(opts.cc);
  if (gpuLayerCount > 0 && noMmq && cells.nUbatch > MMVQ_MAX_BATCH) {
    const elements = Math.max(...gpuLayers.map((l) => l.largestMatrixElements));
    const f16 = (opts.cc ?? 0) >= CC_PASCAL && opts.cc !== 610;
    vram(
      `cuBLAS fallback: largest layer matrix as ${f16 ? 'F16' : 'F32'}`,
      elements * (f16 ? 2 : 4),
      `CC ${ccText(opts.cc ?? 0)} has no MMQ: ub ${cells.nUbatch} > ${MMVQ_MAX_BATCH} rows dequantizes weights (${elements} values)`,
    );
  }
  if (outputOnGpu && noMmq && Math.min(cells.nUbatch, s.slots) > MMVQ_MAX_BATCH) {
    const f16 = (opts.cc ?? 0) >= CC_PASCAL && opts.cc !== 610;
    const bytes = model.output.dims.reduce((a, b) => a * b, 1) * (f16 ? 2 : 4);
    vram(
      `cuBLAS fallback: output matrix as ${f16 ? 'F16' : 'F32'}`,
      bytes,
      `CC ${ccText(opts.cc ?? 0)}: ${Math.min(cells.nUbatch, s.slots)} output rows > ${MMVQ_MAX_BATCH} dequantize ${model.output.dims.join(' × ')}`,
    );
  }
  if (gpuLayerCount > 0 && cells.nUbatch > MMVQ_MAX_BATCH && !noMmq) {
    const widest = Math.max(model.nEmbd, model.nQ, ...gpuLayers.map((l) => l.nFf));
    const bytes = cells.nUbatch * Math.ceil(padTo(widest, MATRIX_ROW_PADDING) / 32) * 36;
    vram(
      'CUDA pool: q8_1 activations (MMQ)',
      bytes,
      `ub ${cells.nUbatch} × ${padTo(widest, MATRIX_ROW_PADDING)} values × 36/32 B`,
    );
  }
  if (cpuLayers.length > 0 && gpuLayerCount > 0 && cells.nUbatch >= OP_OFFLOAD_MIN_BATCH) {
    const bytes = Math.max(...cpuLayers.map((l) => l.cudaBytes));
    vram(
      'op offload: a CPU layer copied per use',
      bytes,
      `ub ${cells.nUbatch} ≥ ${OP_OFFLOAD_MIN_BATCH}: ggml runs CPU-layer matmuls on the GPU (largest layer)`,
    );
  }

  // Host memory, for the record.
  host(
    `input embeddings (${model.tokenEmbd.name}, mmapped)`,
    model.tokenEmbd.bytes,
    `${model.tokenEmbd.dims.join(' × ')} ${model.tokenEmbd.type}, lookups stay on the CPU`,
  );
  if (!outputOnGpu) {
    if (!model.outputTied) host(`output matrix (${model.output.name}, CPU)`, model.output.bytes, outputDesc);
    else host('output matrix (shares token_embd on the CPU)', 0, 'tied: no second copy');
  }
  if (cpuLayers.length > 0) {
    host(
      `weights: layers 0-${firstGpu - 1} on the CPU`,
      cpuLayers.reduce((a, l) => a + l.bytes, 0),
      'Σ blk.N.* tensor bytes',
    );
    const kvCpu = kvBytes(model, cells, s.kvType, cpuLayers);
    host(
      'KV cache of the CPU layers',
      kvCpu.bytes,
      `${kvCpu.global.layers} global + ${kvCpu.sliding.layers} sliding layers`,
    );
  }
  host(
    'logits buffer (pinned host)',
    outputBufferBytes(model, s.slots),
    `n_vocab ${model.nVocab} × ${s.slots} slots × 4 B`,
  );

  if (opts.draft !== undefined) items.push(...draftItems(opts.draft, s));

  const vramBytes = items.filter((i) => i.where === 'vram').reduce((a, i) => a + i.bytes, 0);
  const hostBytes = items.filter((i) => i.where === 'host').reduce((a, i) => a + i.bytes, 0);
  const kv = kvBytes(model, cells, s.kvType);
  return { items, vramBytes, hostBytes, cells, gpuLayerCount, outputOnGpu, compute, kv };
}

/**
 * The draft model's share, itemized like the target's (names start with 'draft'): weights by the same placement
 * rule, a KV cache of the same cells over the draft's own layers and types, its compute buffer; on the host its
 * input embeddings, CPU layers and logits buffer. The CUDA context and pool are the process's, counted once.
 */
export function draftItems(draft: DraftSettings, s: DeviceSettings): MemoryItem[] {
  const model = draft.model;
  const { n, outputOnGpu, gpuLayerCount, firstGpu, gpuLayers, cpuLayers, cells } = placement(model, draft.gpuLayers, s);
  const items: MemoryItem[] = [];
  const vram = (name: string, bytes: number, formula: string): void => {
    if (bytes > 0) items.push({ name: `draft ${name}`, bytes, formula, where: 'vram' });
  };
  const host = (name: string, bytes: number, formula: string): void => {
    items.push({ name: `draft ${name}`, bytes, formula, where: 'host' });
  };
  const types = draft.kvTypeK === draft.kvTypeV ? draft.kvTypeK : `${draft.kvTypeK}/${draft.kvTypeV}`;

  const weights =
    gpuLayers.reduce((a, l) => a + l.cudaBytes, 0) +
    (gpuLayerCount > 0 ? model.otherCudaBytes : 0) +
    (outputOnGpu ? model.output.cudaBytes + model.outputNormCudaBytes : 0);
  vram(
    `weights: ${model.name}, ${gpuLayerCount}/${n} layers${outputOnGpu ? ' + output matrix' : ''}`,
    weights,
    `-ngld ${draft.gpuLayers < 0 ? 'all' : draft.gpuLayers}: Σ blk.N.* tensor bytes${outputOnGpu ? ` + ${model.output.dims.join(' × ')} ${model.output.type}${model.outputTied ? ' (tied)' : ''}` : ''}`,
  );
  const kv = kvBytes(model, cells, draft.kvTypeK, gpuLayers, draft.kvTypeV);
  vram(
    'KV cache: the target context mirrored',
    kv.bytes,
    `${kv.global.layers} global × ${cells.base} + ${kv.sliding.layers} sliding × ${cells.swa} cells × ${plural(cells.streams, 'stream')} (K+V ${types})`,
  );
  if (gpuLayerCount > 0 || outputOnGpu) {
    const compute = computeBuffer(model, {
      cells,
      slots: s.slots,
      flashAttn: s.flashAttn,
      kvType: draft.kvTypeK,
      cuda: true,
      layers: gpuLayers,
      logits: outputOnGpu,
    });
    vram(`compute buffer (${compute.peak} peak)`, compute.bytes, `the target's formula over the draft's shapes`);
  }

  host(
    `input embeddings (${model.tokenEmbd.name}, mmapped)`,
    model.tokenEmbd.bytes,
    `${model.tokenEmbd.dims.join(' × ')} ${model.tokenEmbd.type}`,
  );
  if (cpuLayers.length > 0) {
    const cpuKv = kvBytes(model, cells, draft.kvTypeK, cpuLayers, draft.kvTypeV);
    host(
      `weights and KV of layers 0-${firstGpu - 1} on the CPU`,
      cpuLayers.reduce((a, l) => a + l.bytes, 0) + cpuKv.bytes,
      'Σ blk.N.* tensor bytes + their KV',
    );
  }
  if (!outputOnGpu && !model.outputTied) host(`output matrix (${model.output.name}, CPU)`, model.output.bytes, '');
  host('logits buffer', outputBufferBytes(model, s.slots), `n_vocab ${model.nVocab} × ${s.slots} slots × 4 B`);
  return items;
}
