import t from 'tap';
import { base64Floats, l2Normalize } from '../../../src/server/embeddings/vectors.ts';

t.test('l2Normalize gives unit length and keeps direction', async (t) => {
  t.same(Array.from(l2Normalize(Float32Array.from([3, 4]))), [Math.fround(0.6), Math.fround(0.8)]);
  t.same(Array.from(l2Normalize(Float32Array.from([-2, 0, 0]))), [-1, 0, 0]);
  t.same(Array.from(l2Normalize(new Float32Array(3))), [0, 0, 0], 'a zero vector stays zero');
});

t.test('base64Floats: little-endian float32 bytes', async (t) => {
  const b = Buffer.from(base64Floats(Float32Array.from([1, -2.5])), 'base64');
  t.same(Array.from(b), [0, 0, 0x80, 0x3f, 0, 0, 0x20, 0xc0]);
  t.equal(base64Floats(new Float32Array(0)), '');
});
