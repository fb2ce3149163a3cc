import t from 'tap';
import { float16Bits, normalQuantile, normalTableF16, normalTableF32, tensorRandom } from '../../src/gguf/random.ts';

function halfToFloat(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exp = (bits >> 10) & 0x1f;
  const mant = bits & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 0x1f) return mant ? NaN : sign * Infinity;
  return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}

t.test('float16Bits rounds like numpy / ggml', async (t) => {
  // Reference bits from numpy's float32 -> float16 conversion (round to nearest even).
  const cases: [number, number][] = [
    [1, 0x3c00],
    [-2, 0xc000],
    [0.1, 0x2e66],
    [0.02, 0x251f],
    [65504, 0x7bff],
    [65520, 0x7c00], // rounds up to infinity
    [Infinity, 0x7c00],
    [-Infinity, 0xfc00],
    [-0, 0x8000],
    [2 ** -14, 0x0400], // smallest normal
    [2 ** -24, 0x0001], // smallest subnormal
    [2 ** -25, 0x0000], // tie between 0 and the smallest subnormal: to even
    [1.5 * 2 ** -25, 0x0001],
    [1 + 2 ** -11, 0x3c00], // tie: to even
    [1 + 3 * 2 ** -11, 0x3c02], // tie: to even
    [1e-8, 0x0000],
  ];
  for (const [x, bits] of cases) t.equal(float16Bits(x), bits, `${x}`);
  t.equal(float16Bits(NaN) & 0x7c00, 0x7c00);
  t.not(float16Bits(NaN) & 0x3ff, 0);
});

t.test('normalQuantile', async (t) => {
  t.equal(normalQuantile(0.5), 0);
  t.ok(Math.abs(normalQuantile(0.975) - 1.959963985) < 1e-8);
  t.ok(Math.abs(normalQuantile(0.001) + 3.090232306) < 1e-8);
});

t.test('the F16 table is a symmetric normal with the requested std', async (t) => {
  const table = normalTableF16(0.02);
  t.equal(table.length, 65536);
  t.equal(normalTableF16(0.02), table, 'cached');
  let sum = 0;
  let sumSq = 0;
  let previous = -Infinity;
  let sorted = true;
  let symmetric = true;
  for (let i = 0; i < 65536; i++) {
    const x = halfToFloat(table[i]!);
    sum += x;
    sumSq += x * x;
    if (x < previous) sorted = false;
    previous = x;
    if (table[i]! !== (table[65535 - i]! ^ 0x8000)) symmetric = false;
  }
  t.ok(sorted, 'quantiles ascend');
  t.ok(symmetric, 'mirror image around zero');
  t.ok(Math.abs(sum / 65536) < 1e-6, 'mean 0');
  t.ok(Math.abs(Math.sqrt(sumSq / 65536) / 0.02 - 1) < 0.01, 'std 0.02');
  t.ok(Math.abs(normalTableF32(1)[65535]! - 4.3249) < 1e-3, 'the tails reach the 1 - 0.5/65536 quantile');
});

t.test('streams depend on (seed, name) only', async (t) => {
  const draws = (seed: number, name: string): number[] => {
    const rng = tensorRandom(seed, name);
    return Array.from({ length: 8 }, () => rng.next());
  };
  t.same(draws(1, 'blk.0.attn_q.weight'), draws(1, 'blk.0.attn_q.weight'));
  t.notSame(draws(1, 'blk.0.attn_q.weight'), draws(2, 'blk.0.attn_q.weight'));
  t.notSame(draws(1, 'blk.0.attn_q.weight'), draws(1, 'blk.0.attn_k.weight'));
  t.notSame(draws(0, ''), draws(1, ''));
  t.ok(draws(7, 'x').every((x) => Number.isInteger(x) && x >= 0 && x <= 0xffffffff));
  t.throws(() => tensorRandom(-1, 'x'), RangeError);
  t.throws(() => tensorRandom(2 ** 32, 'x'), RangeError);
});

t.test('filling in even chunks gives the same values as one fill', async (t) => {
  const table = normalTableF16(0.02);
  const whole = new Uint16Array(1000);
  tensorRandom(3, 'w').fillFromTable(whole, table);
  const rng = tensorRandom(3, 'w');
  const first = new Uint16Array(400);
  const second = new Uint16Array(600);
  rng.fillFromTable(first, table);
  rng.fillFromTable(second, table);
  t.same([...first, ...second], [...whole]);
});

t.test('values look normal', async (t) => {
  const values = new Float32Array(200_000);
  tensorRandom(1, 'stats').fillFromTable(values, normalTableF32(1));
  const mean = values.reduce((a, b) => a + b, 0) / values.length;
  const variance = values.reduce((a, b) => a + (b - mean) ** 2, 0) / values.length;
  const within1 = values.filter((x) => Math.abs(x) < 1).length / values.length;
  t.ok(Math.abs(mean) < 0.01, `mean ${mean}`);
  t.ok(Math.abs(variance - 1) < 0.02, `variance ${variance}`);
  t.ok(Math.abs(within1 - 0.6827) < 0.005, `P(|x| < 1) = ${within1}`);
});
