// What an embedding vector becomes on the wire: unit length, and OpenAI's base64 (little-endian float32 bytes).

/** The vector scaled to unit L2 norm (OpenAI's and llama-server's embeddings are); a zero vector stays zero. */
export function l2Normalize(values: Float32Array): Float32Array {
  let sum = 0;
  for (const v of values) sum += v * v;
  const norm = Math.sqrt(sum);
  const out = new Float32Array(values.length);
  if (norm === 0) return out;
  for (let i = 0; i < values.length; i++) out[i] = values[i]! / norm;
  return out;
}

/** encoding_format base64: the floats as little-endian float32, whatever the host's byte order. */
export function base64Floats(values: Float32Array): string {
  const bytes = Buffer.alloc(values.length * 4);
  for (let i = 0; i < values.length; i++) bytes.writeFloatLE(values[i]!, i * 4);
  return bytes.toString('base64');
}
