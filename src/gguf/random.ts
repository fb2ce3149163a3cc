// Deterministic random weights. Each tensor gets its own stream seeded from (seed, tensor name), so its
// values never depend on which tensors came before it or on how the data is chunked.
//
// Speed matters: Gemma-3-1B has ~1e9 weights. Instead of computing a normal deviate per value, a table of
// 65536 normal quantiles (already as half-float bits) is indexed by 16 random bits: one 32-bit draw gives
// two values. The distribution is a 65536-level discretisation of N(0, std²), which is plenty for weights.

/** xoshiro128**: small state, 32-bit arithmetic only, good statistical quality. */
export class Xoshiro128 {
  private a: number;
  private b: number;
  private c: number;
  private d: number;

  constructor(state: readonly [number, number, number, number]) {
    [this.a, this.b, this.c, this.d] = state;
    if ((this.a | this.b | this.c | this.d) === 0) this.d = 1; // the all-zero state is a fixed point
  }

  /** A uniform 32-bit unsigned integer. */
  next(): number {
    const result = Math.imul(rotl(Math.imul(this.b, 5), 7), 9) >>> 0;
    const t = this.b << 9;
    this.c ^= this.a;
    this.d ^= this.b;
    this.b ^= this.c;
    this.a ^= this.d;
    this.c ^= t;
    this.d = rotl(this.d, 11);
    return result;
  }

  /**
   * Fills `out` with table entries picked by 16-bit halves of successive draws. An odd-length fill uses the
   * low half of one more draw and drops the high half, so callers chunk in even sizes for chunk-independence.
   */
  fillFromTable<T extends Uint16Array | Float32Array>(out: T, table: T): void {
    // The state lives in locals in the hot loop; this is most of the generator's run time.
    let a = this.a;
    let b = this.b;
    let c = this.c;
    let d = this.d;
    const n = out.length;
    for (let i = 0; i < n; i += 2) {
      const r = Math.imul(rotl(Math.imul(b, 5), 7), 9);
      const t = b << 9;
      c ^= a;
      d ^= b;
      b ^= c;
      a ^= d;
      c ^= t;
      d = (d << 11) | (d >>> 21);
      out[i] = table[r & 0xffff]!;
      if (i + 1 < n) out[i + 1] = table[r >>> 16]!;
    }
    this.a = a;
    this.b = b;
    this.c = c;
    this.d = d;
  }
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}

/** splitmix32 finaliser: spreads the seed material over all 32 bits. */
function mix32(x: number): number {
  x = Math.imul(x ^ (x >>> 16), 0x85ebca6b);
  x = Math.imul(x ^ (x >>> 13), 0xc2b2ae35);
  return (x ^ (x >>> 16)) >>> 0;
}

/** FNV-1a over the UTF-8 bytes, with a caller-chosen basis so two bases give two independent hashes. */
function fnv1a(bytes: Uint8Array, basis: number): number {
  let h = basis >>> 0;
  for (const byte of bytes) h = Math.imul(h ^ byte, 0x01000193);
  return h >>> 0;
}

/** The random stream of one tensor of one model: a function of (seed, name) only. */
export function tensorRandom(seed: number, name: string): Xoshiro128 {
  if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff)
    throw new RangeError(`seed must be a 32-bit unsigned integer, got ${seed}`);
  const bytes = Buffer.from(name, 'utf8');
  const h1 = fnv1a(bytes, 0x811c9dc5);
  const h2 = fnv1a(bytes, 0x2f8e1d53);
  let s = mix32(seed ^ 0x9e3779b9);
  const words: number[] = [];
  for (const h of [h1, h2, h1 ^ 0xa5a5a5a5, h2 ^ 0x5a5a5a5a]) {
    s = (s + 0x9e3779b9) | 0;
    words.push(mix32(s ^ h));
  }
  return new Xoshiro128(words as [number, number, number, number]);
}

/** Φ⁻¹(p) for 0 < p < 1 (Acklam's rational approximation, |relative error| < 1.2e-9). */
export function normalQuantile(p: number): number {
  const a = [
    -3.969683028665376e1, 2.209460984245205e2, -2.759285104469687e2, 1.38357751867269e2, -3.066479806614716e1,
    2.506628277459239,
  ];
  const b = [
    -5.447609879822406e1, 1.615858368580409e2, -1.556989798598866e2, 6.680131188771972e1, -1.328068155288572e1,
  ];
  const c = [
    -7.784894002430293e-3, -3.223964580411365e-1, -2.400758277161838, -2.549732539343734, 4.374664141464968,
    2.938163982698783,
  ];
  const d = [7.784695709041462e-3, 3.224671290700398e-1, 2.445134137142996, 3.754408661907416];
  const low = 0.02425;
  const poly = (k: number[], x: number): number => k.reduce((acc, coef) => acc * x + coef, 0);
  if (p < low) {
    const q = Math.sqrt(-2 * Math.log(p));
    return poly(c, q) / (poly(d, q) * q + 1);
  }
  if (p > 1 - low) {
    const q = Math.sqrt(-2 * Math.log(1 - p));
    return -poly(c, q) / (poly(d, q) * q + 1);
  }
  const q = p - 0.5;
  const r = q * q;
  return (poly(a, r) * q) / (poly(b, r) * r + 1);
}

const f32Scratch = new Float32Array(1);
const u32Scratch = new Uint32Array(f32Scratch.buffer);

/** IEEE half-precision bits of `x`, rounded to nearest even (what ggml_fp32_to_fp16 does). */
export function float16Bits(x: number): number {
  f32Scratch[0] = x;
  const f = u32Scratch[0]!;
  const sign = (f >>> 16) & 0x8000;
  const exp = (f >>> 23) & 0xff;
  let mant = f & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant !== 0 ? 0x200 : 0); // inf / nan
  const e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00; // overflow to inf
  if (e <= 0) {
    if (e < -10) return sign; // underflow to zero
    mant |= 0x800000; // subnormal: make the implicit bit explicit, then shift into place
    const shift = 14 - e;
    const half = 1 << (shift - 1);
    let bits = mant >>> shift;
    const rest = mant & ((1 << shift) - 1);
    if (rest > half || (rest === half && (bits & 1) === 1)) bits += 1;
    return sign | bits;
  }
  let bits = (e << 10) | (mant >>> 13);
  const rest = mant & 0x1fff;
  if (rest > 0x1000 || (rest === 0x1000 && (bits & 1) === 1)) bits += 1; // may carry into the exponent: correct
  return sign | bits;
}

const f16Tables = new Map<number, Uint16Array>();
const f32Tables = new Map<number, Float32Array>();

function quantiles(std: number): Float64Array {
  const out = new Float64Array(65536);
  for (let i = 0; i < 65536; i++) out[i] = std * normalQuantile((i + 0.5) / 65536);
  return out;
}

/** Half-float bits of the 65536 quantiles of N(0, std²), cached per std. */
export function normalTableF16(std: number): Uint16Array {
  let table = f16Tables.get(std);
  if (table === undefined) {
    table = Uint16Array.from(quantiles(std), float16Bits);
    f16Tables.set(std, table);
  }
  return table;
}

/** The 65536 quantiles of N(0, std²) as float32, cached per std. */
export function normalTableF32(std: number): Float32Array {
  let table = f32Tables.get(std);
  if (table === undefined) {
    table = Float32Array.from(quantiles(std));
    f32Tables.set(std, table);
  }
  return table;
}
