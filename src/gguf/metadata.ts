// Typed access to GGUF metadata. Each getter returns undefined for a missing key and throws GGUF_CORRUPT for
// a key of the wrong type, so callers (model info, the memory planner) need no type checks of their own.
import { ModelFileError } from '../errors.ts';
import type { GgufArrayValue, GgufFile, GgufMetadata, GgufValue } from './types.ts';
import { GgufValueType, valueTypeName } from './types.ts';

/** A whole file (errors then name its path) or just its metadata. */
export type MetadataSource = GgufFile | GgufMetadata;

function lookup(source: MetadataSource, key: string): GgufValue | undefined {
  return source instanceof Map ? source.get(key) : source.metadata.get(key);
}

function wrongType(source: MetadataSource, key: string, entry: GgufValue, expected: string): ModelFileError {
  const where = source instanceof Map ? '' : `${source.path}: `;
  const actual =
    entry.type === GgufValueType.ARRAY ? `an array of ${valueTypeName(entry.itemType)}` : valueTypeName(entry.type);
  return new ModelFileError('GGUF_CORRUPT', `${where}key '${key}' is ${actual}, expected ${expected}`);
}

const INTEGER_TYPES: ReadonlySet<number> = new Set([
  GgufValueType.UINT8,
  GgufValueType.INT8,
  GgufValueType.UINT16,
  GgufValueType.INT16,
  GgufValueType.UINT32,
  GgufValueType.INT32,
  GgufValueType.UINT64,
  GgufValueType.INT64,
]);

export function getString(source: MetadataSource, key: string): string | undefined {
  const entry = lookup(source, key);
  if (entry === undefined) return undefined;
  if (entry.type !== GgufValueType.STRING) throw wrongType(source, key, entry, 'a string');
  return entry.value;
}

/** An integer of any width and signedness, as a safe JS number. */
export function getInt(source: MetadataSource, key: string): number | undefined {
  const entry = lookup(source, key);
  if (entry === undefined) return undefined;
  if (entry.type === GgufValueType.ARRAY || !INTEGER_TYPES.has(entry.type))
    throw wrongType(source, key, entry, 'an integer');
  const value = Number(entry.value);
  if (!Number.isSafeInteger(value)) throw wrongType(source, key, entry, 'an integer below 2^53');
  return value;
}

/** A non-negative integer of any width (counts, lengths, token ids). */
export function getUint(source: MetadataSource, key: string): number | undefined {
  const value = getInt(source, key);
  if (value !== undefined && value < 0) {
    const where = source instanceof Map ? '' : `${source.path}: `;
    throw new ModelFileError('GGUF_CORRUPT', `${where}key '${key}' is ${value}, expected a non-negative integer`);
  }
  return value;
}

/** A float32 or float64. */
export function getFloat(source: MetadataSource, key: string): number | undefined {
  const entry = lookup(source, key);
  if (entry === undefined) return undefined;
  if (entry.type !== GgufValueType.FLOAT32 && entry.type !== GgufValueType.FLOAT64)
    throw wrongType(source, key, entry, 'a float');
  return entry.value;
}

export function getBool(source: MetadataSource, key: string): boolean | undefined {
  const entry = lookup(source, key);
  if (entry === undefined) return undefined;
  if (entry.type !== GgufValueType.BOOL) throw wrongType(source, key, entry, 'a bool');
  return entry.value;
}

export function getArray(source: MetadataSource, key: string): GgufArrayValue | undefined {
  const entry = lookup(source, key);
  if (entry === undefined) return undefined;
  if (entry.type !== GgufValueType.ARRAY) throw wrongType(source, key, entry, 'an array');
  return entry;
}

export function getStringArray(source: MetadataSource, key: string): string[] | undefined {
  const entry = getArray(source, key);
  if (entry === undefined) return undefined;
  if (entry.itemType !== GgufValueType.STRING) throw wrongType(source, key, entry, 'an array of string');
  return entry.value;
}

/** The model's architecture (general.architecture), which prefixes its hyperparameter keys. */
export function getArchitecture(source: MetadataSource): string | undefined {
  return getString(source, 'general.architecture');
}
