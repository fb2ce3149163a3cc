// Writes GGUF v3 the way llama.cpp's gguf_write_to_file does (same layout, same padding), but streams the
// tensor data: a 2 GB model is written chunk by chunk and never held in memory.
import { open } from 'node:fs/promises';
import type { GgmlType, GgufTensorInfo, GgufValue } from './types.ts';
import {
  alignUp,
  GGML_MAX_DIMS,
  GGML_MAX_NAME_LENGTH,
  GGUF_ALIGNMENT_KEY,
  GGUF_DEFAULT_ALIGNMENT,
  GGUF_MAGIC,
  GGUF_VERSION,
  GgufValueType,
  ggmlTypeName,
  tensorBytes,
  valueTypeName,
} from './types.ts';

/** Produces one tensor's bytes, in order, in chunks of any size. */
export type TensorDataSource = (tensor: GgufTensorInfo) => AsyncIterable<Uint8Array> | Iterable<Uint8Array>;

export interface WriteOptions {
  /** Called after each chunk with the bytes written so far and the total. */
  onProgress?: (written: number, total: number) => void;
}

export class GgufWriter {
  private readonly metadata = new Map<string, GgufValue>();
  private readonly tensors: GgufTensorInfo[] = [];

  /** Sets (or replaces) a metadata key. Keys keep the order in which they were first set. */
  set(key: string, value: GgufValue): this {
    if (key === '') throw new RangeError('a GGUF key cannot be empty');
    if (key === GGUF_ALIGNMENT_KEY) {
      if (value.type !== GgufValueType.UINT32) throw new TypeError(`${GGUF_ALIGNMENT_KEY} must be a uint32`);
      if (this.tensors.length > 0)
        throw new Error(`set ${GGUF_ALIGNMENT_KEY} before adding tensors: it decides their offsets`);
      const alignment = value.value;
      if (alignment <= 0 || (alignment & (alignment - 1)) !== 0)
        throw new RangeError(`alignment ${alignment} is not a power of two`);
    }
    this.metadata.set(key, value);
    return this;
  }

  get alignment(): number {
    const entry = this.metadata.get(GGUF_ALIGNMENT_KEY);
    return entry?.type === GgufValueType.UINT32 ? entry.value : GGUF_DEFAULT_ALIGNMENT;
  }

  /** Adds a tensor after the previous ones, at the next aligned offset. */
  addTensor(tensor: { name: string; dims: readonly number[]; type: GgmlType }): GgufTensorInfo {
    const { name, dims, type } = tensor;
    if (name === '' || Buffer.byteLength(name) > GGML_MAX_NAME_LENGTH) {
      throw new RangeError(`tensor name '${name}' must be 1 to ${GGML_MAX_NAME_LENGTH} bytes`);
    }
    if (this.tensors.some((t) => t.name === name)) throw new Error(`tensor '${name}' was already added`);
    if (dims.length < 1 || dims.length > GGML_MAX_DIMS || !dims.every((ne) => Number.isSafeInteger(ne) && ne > 0)) {
      throw new RangeError(`tensor '${name}' has bad dimensions [${dims.join(', ')}]`);
    }
    const last = this.tensors.at(-1);
    const offset = last === undefined ? 0 : alignUp(last.offset + last.nbytes, this.alignment);
    const info: GgufTensorInfo = { name, dims: [...dims], type, offset, nbytes: tensorBytes(type, dims) };
    this.tensors.push(info);
    return info;
  }

  /** The bytes before the data section: header, metadata, tensor infos and padding. */
  encodeHeader(): Buffer {
    const out = new ByteSink();
    out.raw(Buffer.from(GGUF_MAGIC, 'latin1'));
    out.u32(GGUF_VERSION);
    out.u64(BigInt(this.tensors.length));
    out.u64(BigInt(this.metadata.size));
    for (const [key, value] of this.metadata) {
      out.string(key);
      writeValue(out, key, value);
    }
    for (const tensor of this.tensors) {
      out.string(tensor.name);
      out.u32(tensor.dims.length);
      for (const ne of tensor.dims) out.u64(BigInt(ne));
      out.i32(tensor.type);
      out.u64(BigInt(tensor.offset));
    }
    // llama.cpp pads here even when there are no tensors.
    out.zeros(alignUp(out.length, this.alignment) - out.length);
    return out.toBuffer();
  }

  /**
   * Writes the file to `path` (created or truncated). `data` is asked for each tensor in the order added and
   * must yield exactly its nbytes. Chunks are not copied: a source must not change a chunk after yielding it.
   */
  async write(path: string, data: TensorDataSource, options: WriteOptions = {}): Promise<void> {
    const header = this.encodeHeader();
    const last = this.tensors.at(-1);
    const dataBytes = last === undefined ? 0 : alignUp(last.offset + last.nbytes, this.alignment);
    const total = header.length + dataBytes;
    const padding = Buffer.alloc(this.alignment);

    const fh = await open(path, 'w');
    try {
      let written = 0;
      const put = async (chunk: Uint8Array): Promise<void> => {
        let done = 0;
        while (done < chunk.byteLength) {
          const { bytesWritten } = await fh.write(chunk, done, chunk.byteLength - done);
          done += bytesWritten;
        }
        written += chunk.byteLength;
        options.onProgress?.(written, total);
      };

      await put(header);
      for (const tensor of this.tensors) {
        let produced = 0;
        for await (const chunk of data(tensor)) {
          produced += chunk.byteLength;
          if (produced > tensor.nbytes) break;
          await put(chunk);
        }
        if (produced !== tensor.nbytes) {
          throw new Error(
            `tensor '${tensor.name}' (${ggmlTypeName(tensor.type)} [${tensor.dims.join(', ')}]) needs ${tensor.nbytes} bytes but its data source gave ${produced > tensor.nbytes ? 'more' : produced}`,
          );
        }
        const pad = alignUp(tensor.nbytes, this.alignment) - tensor.nbytes;
        if (pad > 0) await put(padding.subarray(0, pad));
      }
    } finally {
      await fh.close();
    }
  }
}

function writeValue(out: ByteSink, key: string, entry: GgufValue): void {
  if (entry.type === GgufValueType.ARRAY) {
    if (entry.itemType === (GgufValueType.ARRAY as number))
      throw new TypeError(`key '${key}': GGUF has no arrays of arrays`);
    out.i32(GgufValueType.ARRAY);
    out.i32(entry.itemType);
    out.u64(BigInt(entry.value.length));
    if (entry.itemType === GgufValueType.STRING) {
      for (const item of entry.value) out.string(item);
    } else if (entry.itemType === GgufValueType.BOOL) {
      for (const item of entry.value) out.u8(item ? 1 : 0);
    } else {
      // Typed arrays hold little-endian bytes on every platform we run on, which is GGUF's byte order.
      out.raw(new Uint8Array(entry.value.buffer, entry.value.byteOffset, entry.value.byteLength));
    }
    return;
  }
  out.i32(entry.type);
  switch (entry.type) {
    case GgufValueType.UINT8:
      return out.u8(entry.value);
    case GgufValueType.INT8:
      return out.i8(entry.value);
    case GgufValueType.UINT16:
      return out.u16(entry.value);
    case GgufValueType.INT16:
      return out.i16(entry.value);
    case GgufValueType.UINT32:
      return out.u32(entry.value);
    case GgufValueType.INT32:
      return out.i32(entry.value);
    case GgufValueType.FLOAT32:
      return out.f32(entry.value);
    case GgufValueType.FLOAT64:
      return out.f64(entry.value);
    case GgufValueType.UINT64:
      return out.u64(entry.value);
    case GgufValueType.INT64:
      return out.i64(entry.value);
    case GgufValueType.BOOL:
      return out.u8(entry.value ? 1 : 0);
    case GgufValueType.STRING:
      return out.string(entry.value);
    default:
      throw new TypeError(`key '${key}' has unknown value type ${valueTypeName((entry as { type: number }).type)}`);
  }
}

/** A growable little-endian byte buffer for the header (megabytes at most, for large vocabularies). */
class ByteSink {
  private buf = Buffer.allocUnsafe(1 << 16);
  length = 0;

  /** Makes room for `n` bytes and returns where they go; call it before reading `this.buf`, which it may replace. */
  private reserve(n: number): number {
    if (this.length + n > this.buf.length) {
      const bigger = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.length + n));
      this.buf.copy(bigger, 0, 0, this.length);
      this.buf = bigger;
    }
    const at = this.length;
    this.length += n;
    return at;
  }

  u8(v: number): void {
    const at = this.reserve(1);
    this.buf.writeUInt8(v, at);
  }
  i8(v: number): void {
    const at = this.reserve(1);
    this.buf.writeInt8(v, at);
  }
  u16(v: number): void {
    const at = this.reserve(2);
    this.buf.writeUInt16LE(v, at);
  }
  i16(v: number): void {
    const at = this.reserve(2);
    this.buf.writeInt16LE(v, at);
  }
  u32(v: number): void {
    const at = this.reserve(4);
    this.buf.writeUInt32LE(v, at);
  }
  i32(v: number): void {
    const at = this.reserve(4);
    this.buf.writeInt32LE(v, at);
  }
  u64(v: bigint): void {
    const at = this.reserve(8);
    this.buf.writeBigUInt64LE(v, at);
  }
  i64(v: bigint): void {
    const at = this.reserve(8);
    this.buf.writeBigInt64LE(v, at);
  }
  f32(v: number): void {
    const at = this.reserve(4);
    this.buf.writeFloatLE(v, at);
  }
  f64(v: number): void {
    const at = this.reserve(8);
    this.buf.writeDoubleLE(v, at);
  }

  raw(bytes: Uint8Array): void {
    const at = this.reserve(bytes.byteLength);
    this.buf.set(bytes, at);
  }

  zeros(n: number): void {
    const at = this.reserve(n);
    this.buf.fill(0, at, at + n);
  }

  string(s: string): void {
    const n = Buffer.byteLength(s);
    this.u64(BigInt(n));
    const at = this.reserve(n);
    this.buf.write(s, at, 'utf8');
  }

  toBuffer(): Buffer {
    return this.buf.subarray(0, this.length);
  }
}
