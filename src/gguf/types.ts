// The GGUF vocabulary: metadata value types, ggml tensor types with their block layout, and typed values.
// Numbers follow ggml/include/gguf.h, ggml/include/ggml.h and the type_traits table in ggml/src/ggml.c.

export const GGUF_MAGIC = 'GGUF';
/** The version we write; the reader also accepts 2 (same layout, older metadata conventions). */
export const GGUF_VERSION = 3;
export const GGUF_DEFAULT_ALIGNMENT = 32;
export const GGUF_ALIGNMENT_KEY = 'general.alignment';
/** ggml's GGML_MAX_NAME is 64 including the terminating NUL. */
export const GGML_MAX_NAME_LENGTH = 63;
export const GGML_MAX_DIMS = 4;

/**
 * The KV cache's element types llama.cpp offers (-ctk/-ctv: kv_cache_types in common/arg.cpp), as ggml names them.
 * Quantized V needs flash attention; the VRAM planner (src/fit) plans a subset.
 */
export const KV_CACHE_TYPES = ['f32', 'f16', 'bf16', 'q8_0', 'q4_0', 'q4_1', 'iq4_nl', 'q5_0', 'q5_1'] as const;
export type KvType = (typeof KV_CACHE_TYPES)[number];

export const GgufValueType = {
  UINT8: 0,
  INT8: 1,
  UINT16: 2,
  INT16: 3,
  UINT32: 4,
  INT32: 5,
  FLOAT32: 6,
  BOOL: 7,
  STRING: 8,
  ARRAY: 9,
  UINT64: 10,
  INT64: 11,
  FLOAT64: 12,
} as const;
export type GgufValueType = (typeof GgufValueType)[keyof typeof GgufValueType];

const VALUE_TYPE_NAMES: readonly string[] = Object.keys(GgufValueType).map((name) => name.toLowerCase());

export function valueTypeName(type: number): string {
  return VALUE_TYPE_NAMES[type] ?? `unknown type ${type}`;
}

export function isValueType(type: number): type is GgufValueType {
  return Number.isInteger(type) && type >= 0 && type < VALUE_TYPE_NAMES.length;
}

/** Bytes per element of the fixed-size value types; strings and arrays have none. */
export const VALUE_TYPE_SIZE: Readonly<Partial<Record<GgufValueType, number>>> = {
  [GgufValueType.UINT8]: 1,
  [GgufValueType.INT8]: 1,
  [GgufValueType.UINT16]: 2,
  [GgufValueType.INT16]: 2,
  [GgufValueType.UINT32]: 4,
  [GgufValueType.INT32]: 4,
  [GgufValueType.FLOAT32]: 4,
  [GgufValueType.BOOL]: 1,
  [GgufValueType.UINT64]: 8,
  [GgufValueType.INT64]: 8,
  [GgufValueType.FLOAT64]: 8,
};

type NumberValueType =
  | typeof GgufValueType.UINT8
  | typeof GgufValueType.INT8
  | typeof GgufValueType.UINT16
  | typeof GgufValueType.INT16
  | typeof GgufValueType.UINT32
  | typeof GgufValueType.INT32
  | typeof GgufValueType.FLOAT32
  | typeof GgufValueType.FLOAT64;
type BigIntValueType = typeof GgufValueType.UINT64 | typeof GgufValueType.INT64;

/** How an array of each item type is held in memory: typed arrays where JS has one. */
export interface GgufArrayItems {
  [GgufValueType.UINT8]: Uint8Array;
  [GgufValueType.INT8]: Int8Array;
  [GgufValueType.UINT16]: Uint16Array;
  [GgufValueType.INT16]: Int16Array;
  [GgufValueType.UINT32]: Uint32Array;
  [GgufValueType.INT32]: Int32Array;
  [GgufValueType.FLOAT32]: Float32Array;
  [GgufValueType.BOOL]: boolean[];
  [GgufValueType.STRING]: string[];
  [GgufValueType.UINT64]: BigUint64Array;
  [GgufValueType.INT64]: BigInt64Array;
  [GgufValueType.FLOAT64]: Float64Array;
}
export type GgufArrayItemType = keyof GgufArrayItems;

export type GgufArrayValue = {
  [K in GgufArrayItemType]: { type: typeof GgufValueType.ARRAY; itemType: K; value: GgufArrayItems[K] };
}[GgufArrayItemType];

/** A metadata value with its GGUF type, so a value read from one file writes back identically. */
export type GgufValue =
  | { type: NumberValueType; value: number }
  | { type: BigIntValueType; value: bigint }
  | { type: typeof GgufValueType.BOOL; value: boolean }
  | { type: typeof GgufValueType.STRING; value: string }
  | GgufArrayValue;

export type GgufMetadata = Map<string, GgufValue>;

/** Constructors for typed values, e.g. `GgufValue.uint32(26)`. */
export const GgufValue = {
  uint8: (value: number): GgufValue => ({ type: GgufValueType.UINT8, value }),
  int8: (value: number): GgufValue => ({ type: GgufValueType.INT8, value }),
  uint16: (value: number): GgufValue => ({ type: GgufValueType.UINT16, value }),
  int16: (value: number): GgufValue => ({ type: GgufValueType.INT16, value }),
  uint32: (value: number): GgufValue => ({ type: GgufValueType.UINT32, value }),
  int32: (value: number): GgufValue => ({ type: GgufValueType.INT32, value }),
  float32: (value: number): GgufValue => ({ type: GgufValueType.FLOAT32, value }),
  float64: (value: number): GgufValue => ({ type: GgufValueType.FLOAT64, value }),
  uint64: (value: bigint): GgufValue => ({ type: GgufValueType.UINT64, value }),
  int64: (value: bigint): GgufValue => ({ type: GgufValueType.INT64, value }),
  bool: (value: boolean): GgufValue => ({ type: GgufValueType.BOOL, value }),
  string: (value: string): GgufValue => ({ type: GgufValueType.STRING, value }),
  array: <K extends GgufArrayItemType>(itemType: K, value: GgufArrayItems[K]): GgufValue =>
    ({ type: GgufValueType.ARRAY, itemType, value }) as GgufArrayValue,
};

/** ggml tensor types. Ids 4, 5, 31-33 and 36-38 were removed from ggml and are not valid in a GGUF. */
export const GgmlType = {
  F32: 0,
  F16: 1,
  Q4_0: 2,
  Q4_1: 3,
  Q5_0: 6,
  Q5_1: 7,
  Q8_0: 8,
  Q8_1: 9,
  Q2_K: 10,
  Q3_K: 11,
  Q4_K: 12,
  Q5_K: 13,
  Q6_K: 14,
  Q8_K: 15,
  IQ2_XXS: 16,
  IQ2_XS: 17,
  IQ3_XXS: 18,
  IQ1_S: 19,
  IQ4_NL: 20,
  IQ3_S: 21,
  IQ2_S: 22,
  IQ4_XS: 23,
  I8: 24,
  I16: 25,
  I32: 26,
  I64: 27,
  F64: 28,
  IQ1_M: 29,
  BF16: 30,
  TQ1_0: 34,
  TQ2_0: 35,
  MXFP4: 39,
  NVFP4: 40,
  Q1_0: 41,
  Q2_0: 42,
} as const;
export type GgmlType = (typeof GgmlType)[keyof typeof GgmlType];

export interface GgmlTypeTraits {
  readonly name: string;
  /** Elements per block; a row (ne0) must hold whole blocks. */
  readonly blockSize: number;
  /** Bytes per block. */
  readonly typeSize: number;
}

// Block sizes and sizeof(block_*) from ggml-common.h (QK_K = 256).
const TRAITS: Readonly<Record<GgmlType, GgmlTypeTraits>> = {
  [GgmlType.F32]: { name: 'F32', blockSize: 1, typeSize: 4 },
  [GgmlType.F16]: { name: 'F16', blockSize: 1, typeSize: 2 },
  [GgmlType.Q4_0]: { name: 'Q4_0', blockSize: 32, typeSize: 18 },
  [GgmlType.Q4_1]: { name: 'Q4_1', blockSize: 32, typeSize: 20 },
  [GgmlType.Q5_0]: { name: 'Q5_0', blockSize: 32, typeSize: 22 },
  [GgmlType.Q5_1]: { name: 'Q5_1', blockSize: 32, typeSize: 24 },
  [GgmlType.Q8_0]: { name: 'Q8_0', blockSize: 32, typeSize: 34 },
  [GgmlType.Q8_1]: { name: 'Q8_1', blockSize: 32, typeSize: 36 },
  [GgmlType.Q2_K]: { name: 'Q2_K', blockSize: 256, typeSize: 84 },
  [GgmlType.Q3_K]: { name: 'Q3_K', blockSize: 256, typeSize: 110 },
  [GgmlType.Q4_K]: { name: 'Q4_K', blockSize: 256, typeSize: 144 },
  [GgmlType.Q5_K]: { name: 'Q5_K', blockSize: 256, typeSize: 176 },
  [GgmlType.Q6_K]: { name: 'Q6_K', blockSize: 256, typeSize: 210 },
  [GgmlType.Q8_K]: { name: 'Q8_K', blockSize: 256, typeSize: 292 },
  [GgmlType.IQ2_XXS]: { name: 'IQ2_XXS', blockSize: 256, typeSize: 66 },
  [GgmlType.IQ2_XS]: { name: 'IQ2_XS', blockSize: 256, typeSize: 74 },
  [GgmlType.IQ3_XXS]: { name: 'IQ3_XXS', blockSize: 256, typeSize: 98 },
  [GgmlType.IQ1_S]: { name: 'IQ1_S', blockSize: 256, typeSize: 50 },
  [GgmlType.IQ4_NL]: { name: 'IQ4_NL', blockSize: 32, typeSize: 18 },
  [GgmlType.IQ3_S]: { name: 'IQ3_S', blockSize: 256, typeSize: 110 },
  [GgmlType.IQ2_S]: { name: 'IQ2_S', blockSize: 256, typeSize: 82 },
  [GgmlType.IQ4_XS]: { name: 'IQ4_XS', blockSize: 256, typeSize: 136 },
  [GgmlType.I8]: { name: 'I8', blockSize: 1, typeSize: 1 },
  [GgmlType.I16]: { name: 'I16', blockSize: 1, typeSize: 2 },
  [GgmlType.I32]: { name: 'I32', blockSize: 1, typeSize: 4 },
  [GgmlType.I64]: { name: 'I64', blockSize: 1, typeSize: 8 },
  [GgmlType.F64]: { name: 'F64', blockSize: 1, typeSize: 8 },
  [GgmlType.IQ1_M]: { name: 'IQ1_M', blockSize: 256, typeSize: 56 },
  [GgmlType.BF16]: { name: 'BF16', blockSize: 1, typeSize: 2 },
  [GgmlType.TQ1_0]: { name: 'TQ1_0', blockSize: 256, typeSize: 54 },
  [GgmlType.TQ2_0]: { name: 'TQ2_0', blockSize: 256, typeSize: 66 },
  [GgmlType.MXFP4]: { name: 'MXFP4', blockSize: 32, typeSize: 17 },
  [GgmlType.NVFP4]: { name: 'NVFP4', blockSize: 64, typeSize: 36 },
  [GgmlType.Q1_0]: { name: 'Q1_0', blockSize: 128, typeSize: 18 },
  [GgmlType.Q2_0]: { name: 'Q2_0', blockSize: 64, typeSize: 18 },
};

export function isGgmlType(type: number): type is GgmlType {
  return Object.hasOwn(TRAITS, type);
}

/** Traits of a known type; throws RangeError for an id ggml does not define (the reader checks first). */
export function ggmlTypeTraits(type: number): GgmlTypeTraits {
  if (!isGgmlType(type)) throw new RangeError(`unknown ggml tensor type ${type}`);
  return TRAITS[type];
}

export function ggmlTypeName(type: number): string {
  return isGgmlType(type) ? TRAITS[type].name : `unknown type ${type}`;
}

export function blockSize(type: GgmlType): number {
  return ggmlTypeTraits(type).blockSize;
}

export function typeSize(type: GgmlType): number {
  return ggmlTypeTraits(type).typeSize;
}

/** Bytes of a contiguous tensor with shape `dims` (ne0 first). Rows must be whole blocks. */
export function tensorBytes(type: GgmlType, dims: readonly number[]): number {
  const traits = ggmlTypeTraits(type);
  const ne0 = dims[0] ?? 1;
  if (ne0 % traits.blockSize !== 0) {
    throw new RangeError(`a ${traits.name} row holds whole blocks of ${traits.blockSize}, but ne0 is ${ne0}`);
  }
  let bytes = (ne0 / traits.blockSize) * traits.typeSize;
  for (const ne of dims.slice(1)) bytes *= ne;
  if (!Number.isSafeInteger(bytes) || bytes < 0)
    throw new RangeError(`tensor of shape [${dims.join(', ')}] is too large`);
  return bytes;
}

export function alignUp(offset: number, alignment: number): number {
  return Math.ceil(offset / alignment) * alignment;
}

/** A tensor as the file describes it. `offset` is relative to the start of the data section. */
export interface GgufTensorInfo {
  name: string;
  /** ne0 first, as ggml orders them. */
  dims: number[];
  type: GgmlType;
  offset: number;
  nbytes: number;
}

export interface GgufFile {
  path: string;
  version: number;
  alignment: number;
  metadata: GgufMetadata;
  tensors: GgufTensorInfo[];
  /** Absolute file offset of the data section. */
  dataOffset: number;
  fileSize: number;
}
