// Reads and validates a GGUF file's header, metadata and tensor infos, so a bad file gets a precise
// ModelFileError here instead of a vague failure (or a crash) inside llama.cpp. Tensor data is not read;
// only its extents are checked against the file size.

import type { FileHandle } from 'node:fs/promises';
import { open, stat } from 'node:fs/promises';
import type { ErrorCode } from '../errors.ts';
import { ModelFileError } from '../errors.ts';
import type { GgufArrayItemType, GgufFile, GgufMetadata, GgufTensorInfo, GgufValue } from './types.ts';
import {
  alignUp,
  GGML_MAX_DIMS,
  GGML_MAX_NAME_LENGTH,
  GGUF_ALIGNMENT_KEY,
  GGUF_DEFAULT_ALIGNMENT,
  GGUF_MAGIC,
  GgufValueType,
  ggmlTypeName,
  ggmlTypeTraits,
  isGgmlType,
  isValueType,
  VALUE_TYPE_SIZE,
  valueTypeName,
} from './types.ts';

// Typed getters for the metadata this returns live in metadata.ts; re-exported so one import serves readers.
export {
  getArchitecture,
  getArray,
  getBool,
  getFloat,
  getInt,
  getString,
  getStringArray,
  getUint,
} from './metadata.ts';

// llama.cpp's own limits (gguf.cpp GGUF_MAX_STRING_LENGTH / GGUF_MAX_ARRAY_ELEMENTS). A length above them is
// garbage, not a cut-off file; a smaller length that runs past the end of the file means the file is cut off.
const MAX_STRING_LENGTH = 1024 ** 3;
const MAX_ARRAY_ELEMENTS = 1024 ** 3;
// Far above any real model (a few dozen keys, a few thousand tensors); only garbage gets near these.
const MAX_KV_COUNT = 1 << 20;
const MAX_TENSOR_COUNT = 1 << 24;
const HEADER_BYTES = 4 + 4 + 8 + 8;
const READ_CHUNK = 1 << 20;

export interface ReadOptions {
  /**
   * 'skip': arrays of strings (a vocabulary: 262,144 tokens for Gemma 3) keep their length but hold empty strings,
   * for callers that need the header's facts only: decoding them costs ~0.5 s of the JS thread, which a server
   * loading a model beside others that stream must not spend. Default 'decode'.
   */
  stringArrays?: 'decode' | 'skip';
}

/** Reads `path` as a GGUF file; every problem with the file is a ModelFileError. */
export async function readGguf(path: string, options: ReadOptions = {}): Promise<GgufFile> {
  const fail = (code: ErrorCode, message: string, cause?: unknown): ModelFileError =>
    new ModelFileError(code, `${path}: ${message}`, cause === undefined ? undefined : { cause });

  // stat before open: opening a FIFO would block, and a directory opens fine on Linux.
  let stats;
  try {
    stats = await stat(path);
  } catch (err) {
    throw openError(err, fail);
  }
  if (!stats.isFile())
    throw fail('NOT_A_FILE', stats.isDirectory() ? 'is a directory, not a model file' : 'is not a regular file');

  let fh: FileHandle;
  try {
    fh = await open(path, 'r');
  } catch (err) {
    throw openError(err, fail);
  }
  try {
    const fileSize = (await fh.stat()).size;
    const src = new ByteSource(fh, fileSize, fail);
    src.skipStrings = options.stringArrays === 'skip';
    return await parse(src, path);
  } finally {
    await fh.close();
  }
}

type Fail = (code: ErrorCode, message: string, cause?: unknown) => ModelFileError;

function openError(err: unknown, fail: Fail): ModelFileError {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'EISDIR') return fail('NOT_A_FILE', 'is a directory, not a model file', err);
  if (code === 'ENOENT' || code === 'ENOTDIR') return fail('MODEL_NOT_FOUND', 'no such file', err);
  return fail('MODEL_NOT_FOUND', `cannot be opened (${code ?? String(err)})`, err);
}

async function parse(src: ByteSource, path: string): Promise<GgufFile> {
  const { fail } = src;

  if (src.fileSize < GGUF_MAGIC.length) {
    throw fail('NOT_A_GGUF', `is not a GGUF file: it is only ${src.fileSize} bytes long`);
  }
  await src.need(GGUF_MAGIC.length, 'the magic');
  const magic = src.bytes(4);
  if (magic.toString('latin1') !== GGUF_MAGIC) {
    throw fail('NOT_A_GGUF', `is not a GGUF file: it starts with ${describeMagic(magic)}, not "GGUF"`);
  }

  await src.need(4, 'the header');
  const version = src.u32();
  if ((version & 0xffff) === 0 && version !== 0) {
    throw fail(
      'GGUF_CORRUPT',
      `GGUF version 0x${version.toString(16)} looks byte-swapped (big-endian files are not supported)`,
    );
  }
  if (version !== 2 && version !== 3) {
    throw fail('GGUF_CORRUPT', `GGUF version ${version} is not supported (only versions 2 and 3)`);
  }
  await src.need(HEADER_BYTES - 8, 'the header');
  const tensorCount = checkedCount(src.u64(), MAX_TENSOR_COUNT, 'tensor count', fail);
  const kvCount = checkedCount(src.u64(), MAX_KV_COUNT, 'key-value count', fail);

  const metadata: GgufMetadata = new Map();
  for (let i = 0; i < kvCount; i++) {
    const key = await readString(src, `the name of key #${i}`);
    if (key === '') throw fail('GGUF_CORRUPT', `key #${i} has an empty name`);
    if (metadata.has(key)) throw fail('GGUF_CORRUPT', `key '${key}' appears twice`);
    metadata.set(key, await readValue(src, key));
  }

  const alignment = readAlignment(metadata, fail);

  const tensors: GgufTensorInfo[] = [];
  const tensorNames = new Set<string>();
  for (let i = 0; i < tensorCount; i++) {
    const tensor = await readTensorInfo(src, i);
    if (tensorNames.has(tensor.name)) throw fail('GGUF_CORRUPT', `tensor '${tensor.name}' appears twice`);
    tensorNames.add(tensor.name);
    tensors.push(tensor);
  }

  // Like llama.cpp: the data section starts at the next alignment boundary, but only when there are tensors.
  const dataOffset = tensorCount > 0 ? alignUp(src.pos, alignment) : src.pos;
  checkTensorLayout(tensors, alignment, dataOffset, src.fileSize, fail);

  return { path, version, alignment, metadata, tensors, dataOffset, fileSize: src.fileSize };
}

function describeMagic(magic: Buffer): string {
  const printable = [...magic].every((byte) => byte >= 0x20 && byte < 0x7f);
  return printable
    ? JSON.stringify(magic.toString('latin1'))
    : `bytes ${magic.toString('hex').replace(/(..)(?!$)/g, '$1 ')}`;
}

function checkedCount(count: bigint, max: number, what: string, fail: Fail): number {
  if (count > BigInt(max)) throw fail('GGUF_CORRUPT', `${what} ${count} is absurd (more than ${max})`);
  return Number(count);
}

function readAlignment(metadata: GgufMetadata, fail: Fail): number {
  const entry = metadata.get(GGUF_ALIGNMENT_KEY);
  if (entry === undefined) return GGUF_DEFAULT_ALIGNMENT;
  if (entry.type !== GgufValueType.UINT32) {
    throw fail('GGUF_CORRUPT', `key '${GGUF_ALIGNMENT_KEY}' must be a uint32 but is ${valueTypeName(entry.type)}`);
  }
  const alignment = entry.value;
  if (alignment === 0 || (alignment & (alignment - 1)) !== 0) {
    throw fail('GGUF_CORRUPT', `alignment ${alignment} is not a power of two`);
  }
  return alignment;
}

// GGUF strings are UTF-8 (the vocab files round-trip byte for byte); invalid bytes would become U+FFFD.
async function readString(src: ByteSource, what: string): Promise<string> {
  await src.need(8, what);
  const length = src.u64();
  if (length > BigInt(MAX_STRING_LENGTH)) {
    throw src.fail('GGUF_CORRUPT', `${what} claims a length of ${length} bytes (at most ${MAX_STRING_LENGTH} allowed)`);
  }
  const n = Number(length);
  await src.need(n, what);
  return src.utf8(n);
}

async function readValue(src: ByteSource, key: string): Promise<GgufValue> {
  const what = `the value of key '${key}'`;
  await src.need(4, what);
  const type = src.i32();
  if (!isValueType(type)) throw src.fail('GGUF_CORRUPT', `key '${key}' has unknown value type ${type}`);

  if (type === GgufValueType.ARRAY) {
    await src.need(4 + 8, what);
    const itemType = src.i32();
    if (!isValueType(itemType))
      throw src.fail('GGUF_CORRUPT', `key '${key}' is an array of unknown value type ${itemType}`);
    if (itemType === GgufValueType.ARRAY)
      throw src.fail('GGUF_CORRUPT', `key '${key}' is an array of arrays, which GGUF does not allow`);
    const count = src.u64();
    if (count > BigInt(MAX_ARRAY_ELEMENTS)) {
      throw src.fail(
        'GGUF_CORRUPT',
        `key '${key}' claims ${count} array elements (at most ${MAX_ARRAY_ELEMENTS} allowed)`,
      );
    }
    return readArray(src, key, itemType, Number(count));
  }
  if (type === GgufValueType.STRING) return { type, value: await readString(src, what) };

  await src.need(VALUE_TYPE_SIZE[type] ?? 0, what);
  switch (type) {
    case GgufValueType.UINT8:
      return { type, value: src.u8() };
    case GgufValueType.INT8:
      return { type, value: src.i8() };
    case GgufValueType.UINT16:
      return { type, value: src.u16() };
    case GgufValueType.INT16:
      return { type, value: src.i16() };
    case GgufValueType.UINT32:
      return { type, value: src.u32() };
    case GgufValueType.INT32:
      return { type, value: src.i32() };
    case GgufValueType.FLOAT32:
      return { type, value: src.f32() };
    case GgufValueType.FLOAT64:
      return { type, value: src.f64() };
    case GgufValueType.UINT64:
      return { type, value: src.u64() };
    case GgufValueType.INT64:
      return { type, value: src.i64() };
    case GgufValueType.BOOL:
      return { type, value: src.u8() !== 0 };
  }
}

async function readArray(src: ByteSource, key: string, itemType: GgufArrayItemType, count: number): Promise<GgufValue> {
  const what = `the array of key '${key}'`;
  const array = GgufValueType.ARRAY;
  if (itemType === GgufValueType.STRING) {
    // Each string needs at least its 8-byte length, so this bounds the allocation by the file size.
    src.checkFits(count * 8, what);
    if (src.skipStrings) {
      for (let i = 0; i < count; i++) {
        if (!src.has(8)) await src.need(8, () => `string #${i} of ${what}`);
        // Lengths as two 32-bit halves: no BigInt per string (the skip's whole cost would be them).
        const length = src.u32();
        if (src.u32() !== 0 || length > MAX_STRING_LENGTH)
          throw src.fail('GGUF_CORRUPT', `string #${i} of ${what} claims a length above ${MAX_STRING_LENGTH} bytes`);
        if (!src.has(length)) await src.need(length, () => `string #${i} of ${what}`);
        src.skip(length);
      }
      return { type: array, itemType, value: new Array<string>(count).fill('') };
    }
    const items = new Array<string>(count);
    // The hot loop for vocabularies (hundreds of thousands of strings): await only when a refill is due.
    for (let i = 0; i < count; i++) {
      if (!src.has(8)) await src.need(8, () => `string #${i} of ${what}`);
      const length = src.u64();
      if (length > BigInt(MAX_STRING_LENGTH)) {
        throw src.fail(
          'GGUF_CORRUPT',
          `string #${i} of ${what} claims a length of ${length} bytes (at most ${MAX_STRING_LENGTH} allowed)`,
        );
      }
      const n = Number(length);
      if (!src.has(n)) await src.need(n, () => `string #${i} of ${what}`);
      items[i] = src.utf8(n);
    }
    return { type: array, itemType, value: items };
  }

  const size = VALUE_TYPE_SIZE[itemType] ?? 1;
  await src.need(count * size, what);
  // GGUF is little-endian, as is every platform Node runs this project on, so the bytes are the values.
  const bytes = src.bytes(count * size);
  const copy = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
  switch (itemType) {
    case GgufValueType.UINT8:
      return { type: array, itemType, value: new Uint8Array(copy) };
    case GgufValueType.INT8:
      return { type: array, itemType, value: new Int8Array(copy) };
    case GgufValueType.UINT16:
      return { type: array, itemType, value: new Uint16Array(copy) };
    case GgufValueType.INT16:
      return { type: array, itemType, value: new Int16Array(copy) };
    case GgufValueType.UINT32:
      return { type: array, itemType, value: new Uint32Array(copy) };
    case GgufValueType.INT32:
      return { type: array, itemType, value: new Int32Array(copy) };
    case GgufValueType.FLOAT32:
      return { type: array, itemType, value: new Float32Array(copy) };
    case GgufValueType.FLOAT64:
      return { type: array, itemType, value: new Float64Array(copy) };
    case GgufValueType.UINT64:
      return { type: array, itemType, value: new BigUint64Array(copy) };
    case GgufValueType.INT64:
      return { type: array, itemType, value: new BigInt64Array(copy) };
    case GgufValueType.BOOL:
      return { type: array, itemType, value: Array.from(bytes, (byte) => byte !== 0) };
  }
}

async function readTensorInfo(src: ByteSource, index: number): Promise<GgufTensorInfo> {
  const { fail } = src;
  const name = await readString(src, `the name of tensor #${index}`);
  if (Buffer.byteLength(name) > GGML_MAX_NAME_LENGTH) {
    throw fail(
      'GGUF_CORRUPT',
      `tensor name '${name.slice(0, 80)}' is longer than ggml's limit of ${GGML_MAX_NAME_LENGTH} bytes`,
    );
  }
  const what = `the shape of tensor '${name}'`;
  await src.need(4, what);
  const nDims = src.u32();
  if (nDims > GGML_MAX_DIMS)
    throw fail('GGUF_CORRUPT', `tensor '${name}' has ${nDims} dimensions (at most ${GGML_MAX_DIMS})`);
  await src.need(nDims * 8 + 4 + 8, what);

  const dims: number[] = [];
  let elements = 1n;
  for (let j = 0; j < nDims; j++) {
    const ne = src.i64();
    if (ne <= 0n) throw fail('GGUF_CORRUPT', `tensor '${name}' has dimension ${j} of size ${ne}`);
    elements *= ne;
    if (elements > BigInt(Number.MAX_SAFE_INTEGER)) {
      throw fail('GGUF_CORRUPT', `tensor '${name}' has an absurd number of elements (dimension ${j} is ${ne})`);
    }
    dims.push(Number(ne));
  }

  const type = src.i32();
  if (!isGgmlType(type)) throw fail('GGUF_CORRUPT', `tensor '${name}' has unknown tensor type ${type}`);
  const traits = ggmlTypeTraits(type);
  const ne0 = dims[0] ?? 1;
  if (ne0 % traits.blockSize !== 0) {
    throw fail(
      'GGUF_CORRUPT',
      `tensor '${name}' of type ${traits.name} has rows of ${ne0} elements, not a multiple of its block size ${traits.blockSize}`,
    );
  }
  const nbytes = (elements / BigInt(traits.blockSize)) * BigInt(traits.typeSize);
  const offset = src.u64();
  if (nbytes > BigInt(Number.MAX_SAFE_INTEGER) || offset > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw fail('GGUF_CORRUPT', `tensor '${name}' has an absurd size or offset`);
  }
  return { name, dims, type, offset: Number(offset), nbytes: Number(nbytes) };
}

// llama.cpp requires the tensors packed in the order listed, each at the next aligned offset, so anything
// else (overlap, gap, misalignment) is a file it would refuse.
function checkTensorLayout(
  tensors: GgufTensorInfo[],
  alignment: number,
  dataOffset: number,
  fileSize: number,
  fail: Fail,
): void {
  let expected = 0;
  let previous: GgufTensorInfo | undefined;
  for (const tensor of tensors) {
    if (tensor.offset % alignment !== 0) {
      throw fail(
        'GGUF_CORRUPT',
        `tensor '${tensor.name}' data offset ${tensor.offset} is not aligned to ${alignment} bytes`,
      );
    }
    if (tensor.offset < expected && previous !== undefined) {
      throw fail(
        'GGUF_CORRUPT',
        `tensor '${tensor.name}' data at offset ${tensor.offset} overlaps tensor '${previous.name}', which ends at ${previous.offset + previous.nbytes}`,
      );
    }
    if (tensor.offset !== expected) {
      throw fail(
        'GGUF_CORRUPT',
        `tensor '${tensor.name}' data starts at offset ${tensor.offset}, but tensors must be packed in order and it should start at ${expected}`,
      );
    }
    const end = dataOffset + tensor.offset + tensor.nbytes;
    if (end > fileSize) {
      throw fail(
        'GGUF_TRUNCATED',
        `tensor '${tensor.name}' (${ggmlTypeName(tensor.type)}) data ends at byte ${end} but the file has ${fileSize} bytes`,
      );
    }
    expected = alignUp(tensor.offset + tensor.nbytes, alignment);
    previous = tensor;
  }
}

/** Buffered sequential reads from a file handle: `need` refills (async), the typed getters are synchronous. */
class ByteSource {
  pos = 0;
  /** ReadOptions.stringArrays 'skip'. */
  skipStrings = false;
  private buf = Buffer.alloc(0);
  private bufStart = 0;
  readonly fh: FileHandle;
  readonly fileSize: number;
  readonly fail: Fail;

  constructor(fh: FileHandle, fileSize: number, fail: Fail) {
    this.fh = fh;
    this.fileSize = fileSize;
    this.fail = fail;
  }

  /** Throws GGUF_TRUNCATED when fewer than `n` bytes are left in the file. */
  checkFits(n: number, what: string | (() => string)): void {
    if (this.pos + n > this.fileSize) {
      const context = typeof what === 'string' ? what : what();
      throw this.fail(
        'GGUF_TRUNCATED',
        `the file ends at byte ${this.fileSize}, inside ${context} (${n} bytes needed from byte ${this.pos})`,
      );
    }
  }

  /** Whether the next `n` bytes are already buffered. */
  has(n: number): boolean {
    return this.pos + n <= this.bufStart + this.buf.length;
  }

  /** Makes the next `n` bytes available to the synchronous getters. */
  async need(n: number, what: string | (() => string)): Promise<void> {
    if (this.has(n)) return;
    this.checkFits(n, what);
    await this.refill(n);
  }

  private async refill(n: number): Promise<void> {
    const size = Math.min(Math.max(n, READ_CHUNK), this.fileSize - this.pos);
    // Never reuse the old buffer: typed-array values and strings are copied, but this keeps `bytes()` safe.
    const buf = Buffer.allocUnsafeSlow(size);
    let filled = 0;
    while (filled < size) {
      const { bytesRead } = await this.fh.read(buf, filled, size - filled, this.pos + filled);
      if (bytesRead === 0) break;
      filled += bytesRead;
    }
    if (filled < n) {
      // The file shrank while we read it.
      throw this.fail('GGUF_TRUNCATED', `the file ends at byte ${this.pos + filled}, earlier than its size said`);
    }
    this.buf = buf.subarray(0, filled);
    this.bufStart = this.pos;
  }

  private take(n: number): number {
    const at = this.pos - this.bufStart;
    this.pos += n;
    return at;
  }

  u8(): number {
    return this.buf.readUInt8(this.take(1));
  }
  i8(): number {
    return this.buf.readInt8(this.take(1));
  }
  u16(): number {
    return this.buf.readUInt16LE(this.take(2));
  }
  i16(): number {
    return this.buf.readInt16LE(this.take(2));
  }
  u32(): number {
    return this.buf.readUInt32LE(this.take(4));
  }
  i32(): number {
    return this.buf.readInt32LE(this.take(4));
  }
  u64(): bigint {
    return this.buf.readBigUInt64LE(this.take(8));
  }
  i64(): bigint {
    return this.buf.readBigInt64LE(this.take(8));
  }
  f32(): number {
    return this.buf.readFloatLE(this.take(4));
  }
  f64(): number {
    return this.buf.readDoubleLE(this.take(8));
  }

  skip(n: number): void {
    this.pos += n;
  }

  /** A view of the next `n` bytes, valid until the next `need`. */
  bytes(n: number): Buffer {
    const at = this.take(n);
    return this.buf.subarray(at, at + n);
  }

  utf8(n: number): string {
    const at = this.take(n);
    return this.buf.toString('utf8', at, at + n);
  }
}
