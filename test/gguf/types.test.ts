import t from 'tap';
import { alignUp, blockSize, GgmlType, ggmlTypeName, isGgmlType, tensorBytes, typeSize } from '../../src/gguf/types.ts';

t.test('block layouts match ggml', async (t) => {
  // [type, elements per block, bytes per block], from sizeof(block_*) in ggml-common.h.
  const expected: [GgmlType, number, number][] = [
    [GgmlType.F32, 1, 4],
    [GgmlType.F16, 1, 2],
    [GgmlType.BF16, 1, 2],
    [GgmlType.Q4_0, 32, 18],
    [GgmlType.Q8_0, 32, 34],
    [GgmlType.Q4_K, 256, 144],
    [GgmlType.Q5_K, 256, 176],
    [GgmlType.Q6_K, 256, 210],
    [GgmlType.IQ4_NL, 32, 18],
    [GgmlType.MXFP4, 32, 17],
    [GgmlType.F64, 1, 8],
  ];
  for (const [type, block, size] of expected) {
    t.equal(blockSize(type), block, `${ggmlTypeName(type)} block size`);
    t.equal(typeSize(type), size, `${ggmlTypeName(type)} type size`);
  }
});

t.test('removed and unknown type ids are not types', async (t) => {
  for (const id of [4, 5, 31, 32, 33, 36, 37, 38, 43, -1, 1000]) t.notOk(isGgmlType(id), `id ${id}`);
  t.ok(isGgmlType(GgmlType.Q2_0));
  t.throws(() => tensorBytes(4 as GgmlType, [32]), RangeError);
});

t.test('tensorBytes', async (t) => {
  t.equal(tensorBytes(GgmlType.F32, [1152]), 4608);
  t.equal(tensorBytes(GgmlType.F16, [1152, 262144]), 1152 * 262144 * 2);
  t.equal(tensorBytes(GgmlType.Q4_K, [6912, 1152]), (6912 / 256) * 144 * 1152);
  t.equal(tensorBytes(GgmlType.Q8_0, [64, 3, 2]), 2 * 34 * 3 * 2);
  t.throws(() => tensorBytes(GgmlType.Q4_K, [1152, 4]), /whole blocks of 256/);
});

t.test('alignUp', async (t) => {
  t.equal(alignUp(0, 32), 0);
  t.equal(alignUp(1, 32), 32);
  t.equal(alignUp(64, 32), 64);
});
