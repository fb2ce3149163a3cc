import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import t from 'tap';
import { readGguf } from '../../src/gguf/reader.ts';
import { GgmlType, GgufValue, GgufValueType } from '../../src/gguf/types.ts';
import { GgufWriter } from '../../src/gguf/writer.ts';
import { llamaCppDir } from '../../src/paths.ts';

const dir = t.testdir({});

const METADATA: [string, GgufValue][] = [
  ['general.architecture', GgufValue.string('llama')],
  ['u8', GgufValue.uint8(255)],
  ['i8', GgufValue.int8(-128)],
  ['u16', GgufValue.uint16(65535)],
  ['i16', GgufValue.int16(-32768)],
  ['u32', GgufValue.uint32(4294967295)],
  ['i32', GgufValue.int32(-2147483648)],
  ['f32', GgufValue.float32(Math.fround(1e-6))],
  ['f64', GgufValue.float64(Math.PI)],
  ['u64', GgufValue.uint64(2n ** 64n - 1n)],
  ['i64', GgufValue.int64(-(2n ** 63n))],
  ['bool', GgufValue.bool(true)],
  ['unicode', GgufValue.string('héllo ▁wörld 🦙')],
  ['empty', GgufValue.string('')],
  ['strings', GgufValue.array(GgufValueType.STRING, ['<s>', '', '▁the', '🦙'])],
  ['bools', GgufValue.array(GgufValueType.BOOL, [true, false, true])],
  ['floats', GgufValue.array(GgufValueType.FLOAT32, new Float32Array([0.5, -1.25, 3]))],
  ['ints', GgufValue.array(GgufValueType.INT32, new Int32Array([1, -2, 3]))],
  ['bytes', GgufValue.array(GgufValueType.UINT8, new Uint8Array([1, 2, 255]))],
  ['u64s', GgufValue.array(GgufValueType.UINT64, new BigUint64Array([1n, 2n ** 63n]))],
  ['f64s', GgufValue.array(GgufValueType.FLOAT64, new Float64Array([Math.E]))],
  ['none', GgufValue.array(GgufValueType.INT16, new Int16Array(0))],
];

function pattern(seed: number, length: number): Buffer {
  const bytes = Buffer.alloc(length);
  for (let i = 0; i < length; i++) bytes[i] = (i * 31 + seed) & 0xff;
  return bytes;
}

t.test('round trip: metadata, tensor infos and data', async (t) => {
  const writer = new GgufWriter();
  for (const [key, value] of METADATA) writer.set(key, value);
  const tensors = [
    writer.addTensor({ name: 'norm.weight', dims: [10], type: GgmlType.F32 }),
    writer.addTensor({ name: 'proj.weight', dims: [64, 3], type: GgmlType.F16 }),
    writer.addTensor({ name: 'q.weight', dims: [256, 2], type: GgmlType.Q4_K }),
    writer.addTensor({ name: 'cube', dims: [2, 3, 5, 7], type: GgmlType.I8 }),
  ];
  t.same(
    tensors.map((x) => x.offset),
    [0, 64, 448, 736],
  );

  const path = join(dir, 'round-trip.gguf');
  let progressCalls = 0;
  // Each tensor arrives in several uneven chunks, as a generator would produce them.
  await writer.write(
    path,
    function* (tensor) {
      const data = pattern(tensor.offset, tensor.nbytes);
      for (let at = 0; at < data.length; at += 37) yield data.subarray(at, at + 37);
    },
    { onProgress: () => progressCalls++ },
  );
  t.ok(progressCalls > 4);

  const file = await readGguf(path);
  t.equal(file.version, 3);
  t.same(
    [...file.metadata.keys()],
    METADATA.map(([key]) => key),
  );
  for (const [key, value] of METADATA) t.same(file.metadata.get(key), value, key);
  t.same(file.tensors, tensors);

  const bytes = await readFile(path);
  t.equal(bytes.length, file.dataOffset + 736 + 224); // 2*3*5*7 = 210 bytes padded to 224
  for (const tensor of file.tensors) {
    const at = file.dataOffset + tensor.offset;
    t.ok(bytes.subarray(at, at + tensor.nbytes).equals(pattern(tensor.offset, tensor.nbytes)), `${tensor.name} data`);
  }
});

t.test('custom alignment and async sources', async (t) => {
  const writer = new GgufWriter();
  writer.set('general.alignment', GgufValue.uint32(256));
  writer.addTensor({ name: 'a', dims: [3], type: GgmlType.F32 });
  writer.addTensor({ name: 'b', dims: [5], type: GgmlType.F32 });
  const path = join(dir, 'aligned.gguf');
  await writer.write(path, async function* (tensor) {
    yield Buffer.alloc(tensor.nbytes, 7);
  });
  const file = await readGguf(path);
  t.equal(file.alignment, 256);
  t.equal(file.dataOffset % 256, 0);
  t.same(
    file.tensors.map((x) => x.offset),
    [0, 256],
  );
});

t.test('writes a vocab file byte for byte', async (t) => {
  const path = join(llamaCppDir(), 'models', 'ggml-vocab-llama-spm.gguf');
  const original = await readFile(path);
  const writer = new GgufWriter();
  for (const [key, value] of (await readGguf(path)).metadata) writer.set(key, value);
  const header = writer.encodeHeader();
  // Ours adds llama.cpp's padding after the (empty) tensor list; the rest is identical.
  t.ok(header.subarray(0, original.length).equals(original));
  t.ok(header.subarray(original.length).every((byte) => byte === 0));
  t.equal(header.length % 32, 0);
});

t.test('refuses what llama.cpp would refuse', async (t) => {
  const writer = new GgufWriter();
  writer.addTensor({ name: 'a', dims: [32], type: GgmlType.F16 });
  t.throws(() => writer.addTensor({ name: 'a', dims: [32], type: GgmlType.F16 }), /already added/);
  t.throws(() => writer.addTensor({ name: 'x'.repeat(64), dims: [32], type: GgmlType.F16 }), /1 to 63 bytes/);
  t.throws(() => writer.addTensor({ name: 'b', dims: [0], type: GgmlType.F16 }), /bad dimensions/);
  t.throws(() => writer.addTensor({ name: 'c', dims: [1, 1, 1, 1, 1], type: GgmlType.F16 }), /bad dimensions/);
  t.throws(() => writer.addTensor({ name: 'd', dims: [100], type: GgmlType.Q4_K }), /whole blocks/);
  t.throws(() => writer.set('general.alignment', GgufValue.uint32(64)), /before adding tensors/);
  t.throws(() => new GgufWriter().set('general.alignment', GgufValue.uint32(48)), /power of two/);
  t.throws(() => new GgufWriter().set('general.alignment', GgufValue.int32(64)), /uint32/);
  t.throws(() => new GgufWriter().set('', GgufValue.bool(true)), /empty/);
});

t.test('a data source of the wrong size is an error', async (t) => {
  const writer = new GgufWriter();
  writer.addTensor({ name: 'a', dims: [8], type: GgmlType.F32 });
  await t.rejects(
    writer.write(join(dir, 'short.gguf'), () => [Buffer.alloc(31)]),
    /needs 32 bytes but its data source gave 31/,
  );
  await t.rejects(
    writer.write(join(dir, 'long.gguf'), () => [Buffer.alloc(32), Buffer.alloc(1)]),
    /gave more/,
  );
});
