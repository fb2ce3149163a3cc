import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Test } from 'tap';
import t from 'tap';
import { ModelFileError } from '../../src/errors.ts';
import { getBool, getFloat, getString, getStringArray, getUint, readGguf } from '../../src/gguf/reader.ts';
import { GgmlType, GgufValue, GgufValueType } from '../../src/gguf/types.ts';
import { GgufWriter } from '../../src/gguf/writer.ts';
import { llamaCppDir } from '../../src/paths.ts';

const vocab = (name: string): string => join(llamaCppDir(), 'models', name);

t.test('reads the SPM llama vocab file', async (t) => {
  const file = await readGguf(vocab('ggml-vocab-llama-spm.gguf'));
  t.equal(file.version, 3);
  t.equal(file.alignment, 32);
  t.equal(file.tensors.length, 0);
  t.equal(file.metadata.size, 22);
  t.equal(getString(file, 'general.architecture'), 'llama');
  t.equal(getString(file, 'tokenizer.ggml.model'), 'llama');
  t.equal(getStringArray(file, 'tokenizer.ggml.tokens')?.length, 32000);
  t.equal(getStringArray(file, 'tokenizer.ggml.tokens')?.[1], '<s>');
  const scores = file.metadata.get('tokenizer.ggml.scores');
  t.ok(scores?.type === GgufValueType.ARRAY && scores.value instanceof Float32Array && scores.value.length === 32000);
  const types = file.metadata.get('tokenizer.ggml.token_type');
  t.ok(types?.type === GgufValueType.ARRAY && types.value instanceof Int32Array && types.value.length === 32000);
  t.equal(getUint(file, 'tokenizer.ggml.bos_token_id'), 1);
  t.equal(getBool(file, 'tokenizer.ggml.add_bos_token'), true);
  t.equal(Math.fround(getFloat(file, 'llama.attention.layer_norm_rms_epsilon')!), Math.fround(1e-5));
  t.equal(file.dataOffset, file.fileSize);
});

t.test('reads the 15 MB gemma-4 vocab file quickly', async (t) => {
  const started = performance.now();
  const file = await readGguf(vocab('ggml-vocab-gemma-4.gguf'));
  t.comment(`read in ${(performance.now() - started).toFixed(0)} ms`);
  t.equal(file.metadata.size, 42);
  t.equal(getStringArray(file, 'tokenizer.ggml.tokens')?.length, 262144);
  t.equal(getStringArray(file, 'tokenizer.ggml.merges')?.length, 514906);
  t.equal(getStringArray(file, 'tokenizer.ggml.tokens')?.[2], '<bos>');
});

t.test('typed getters reject the wrong type', async (t) => {
  const file = await readGguf(vocab('ggml-vocab-llama-spm.gguf'));
  t.equal(getString(file, 'no.such.key'), undefined);
  t.throws(() => getString(file, 'llama.block_count'), {
    code: 'GGUF_CORRUPT',
    message: /'llama.block_count' is uint32, expected a string/,
  });
  t.throws(() => getUint(file, 'tokenizer.ggml.tokens'), { code: 'GGUF_CORRUPT' });
  t.throws(() => getStringArray(file, 'tokenizer.ggml.scores'), { code: 'GGUF_CORRUPT' });
});

// A small valid file to break in every way; offsets into it are found by searching for the names.
const dir = t.testdir({});
let sampleCount = 0;

async function sample(options: { alignment?: number } = {}): Promise<Buffer> {
  const writer = new GgufWriter();
  if (options.alignment !== undefined) writer.set('general.alignment', GgufValue.uint32(options.alignment));
  writer.set('general.architecture', GgufValue.string('llama'));
  writer.set('test.a', GgufValue.uint32(7));
  writer.set('test.b', GgufValue.string('hello'));
  writer.set('test.list', GgufValue.array(GgufValueType.STRING, ['x', 'yy', 'zzz']));
  writer.addTensor({ name: 'tensor_a.weight', dims: [10], type: GgmlType.F32 });
  writer.addTensor({ name: 'tensor_b.weight', dims: [32, 2], type: GgmlType.F16 });
  const path = join(dir, `sample-${sampleCount++}.gguf`);
  await writer.write(path, (tensor) => [Buffer.alloc(tensor.nbytes, 0x3c)]);
  return readFile(path);
}

async function save(name: string, bytes: Uint8Array | string): Promise<string> {
  const path = join(dir, name);
  await writeFile(path, bytes);
  return path;
}

/** Offset just past the length-prefixed string `s` in the file (the start of what follows it). */
function after(bytes: Buffer, s: string): number {
  const at = bytes.indexOf(Buffer.from(s, 'latin1'));
  if (at < 0) throw new Error(`'${s}' not in sample`);
  return at + Buffer.byteLength(s);
}

async function expectError(t: Test, bytes: Uint8Array | string, code: string, message?: RegExp): Promise<void> {
  const path = await save(`case-${sampleCount++}.gguf`, bytes);
  await t.rejects(readGguf(path), { constructor: ModelFileError, code, ...(message ? { message } : {}) });
}

t.test('a valid sample reads back', async (t) => {
  const bytes = await sample();
  const file = await readGguf(await save('valid.gguf', bytes));
  t.same(
    file.tensors.map((x) => [x.name, x.dims, x.type, x.offset, x.nbytes]),
    [
      ['tensor_a.weight', [10], GgmlType.F32, 0, 40],
      ['tensor_b.weight', [32, 2], GgmlType.F16, 64, 128],
    ],
  );
  t.equal(file.dataOffset % 32, 0);
  t.equal(file.fileSize, file.dataOffset + 64 + 128);
});

t.test('missing path, directory, not a GGUF', async (t) => {
  await t.rejects(readGguf(join(dir, 'nope.gguf')), {
    constructor: ModelFileError,
    code: 'MODEL_NOT_FOUND',
    message: /nope\.gguf: no such file/,
  });
  await t.rejects(readGguf(join(dir, 'nope', 'x.gguf')), { code: 'MODEL_NOT_FOUND' });
  const sub = join(dir, 'a-directory.gguf');
  await mkdir(sub);
  await t.rejects(readGguf(sub), { constructor: ModelFileError, code: 'NOT_A_FILE', message: /is a directory/ });
  await expectError(t, 'this is a text file, not a model\n', 'NOT_A_GGUF', /starts with "this"/);
  await expectError(t, '', 'NOT_A_GGUF', /only 0 bytes/);
  await expectError(t, 'GGU', 'NOT_A_GGUF');
  const badMagic = await sample();
  badMagic.write('GGML', 0, 'latin1');
  await expectError(t, badMagic, 'NOT_A_GGUF', /"GGML"/);
  await expectError(
    t,
    Buffer.from([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1, 0]),
    'NOT_A_GGUF',
    /"\\u007fELF"|bytes 7f 45 4c 46/,
  );
});

t.test('unsupported versions', async (t) => {
  for (const [version, message] of [
    [1, /version 1 is not supported/],
    [4, /version 4 is not supported/],
    [0x03000000, /byte-swapped/],
  ] as const) {
    const bytes = await sample();
    bytes.writeUInt32LE(version, 4);
    await expectError(t, bytes, 'GGUF_CORRUPT', message);
  }
});

t.test('every cut inside the file is GGUF_TRUNCATED', async (t) => {
  const bytes = await sample();
  // The last tensor (128 bytes) ends on an alignment boundary, so even a one-byte cut removes its data.
  for (let length = 4; length < bytes.length; length += length < 400 ? 1 : 7) {
    const path = await save('cut.gguf', bytes.subarray(0, length));
    const err = await readGguf(path).then(
      () => undefined,
      (e: unknown) => e,
    );
    if (!(err instanceof ModelFileError) || err.code !== 'GGUF_TRUNCATED') {
      t.fail(`cut at ${length}: expected GGUF_TRUNCATED, got ${String(err)}`);
      return;
    }
  }
  t.pass('all cuts reported as truncated');
});

t.test('truncation messages say where', async (t) => {
  const bytes = await sample();
  await expectError(t, bytes.subarray(0, 12), 'GGUF_TRUNCATED', /ends at byte 12, inside the header/);
  await expectError(
    t,
    bytes.subarray(0, after(bytes, 'test.b') + 6),
    'GGUF_TRUNCATED',
    /inside the value of key 'test.b'/,
  );
  await expectError(
    t,
    bytes.subarray(0, bytes.length - 10),
    'GGUF_TRUNCATED',
    new RegExp(
      `tensor 'tensor_b.weight' \\(F16\\) data ends at byte ${bytes.length} but the file has ${bytes.length - 10} bytes`,
    ),
  );
});

t.test('corrupt metadata', async (t) => {
  const hugeString = await sample();
  hugeString.writeBigUInt64LE(1n << 50n, after(hugeString, 'test.b') + 4);
  await expectError(t, hugeString, 'GGUF_CORRUPT', /value of key 'test.b' claims a length of 1125899906842624 bytes/);

  const hugeKey = await sample();
  hugeKey.writeBigUInt64LE(1n << 40n, 24); // the first key's length
  await expectError(t, hugeKey, 'GGUF_CORRUPT', /name of key #0 claims a length/);

  const unknownType = await sample();
  unknownType.writeInt32LE(99, after(unknownType, 'test.a'));
  await expectError(t, unknownType, 'GGUF_CORRUPT', /key 'test.a' has unknown value type 99/);

  const nestedArray = await sample();
  nestedArray.writeInt32LE(GgufValueType.ARRAY, after(nestedArray, 'test.list') + 4);
  await expectError(t, nestedArray, 'GGUF_CORRUPT', /array of arrays/);

  const hugeArray = await sample();
  hugeArray.writeBigUInt64LE(1n << 60n, after(hugeArray, 'test.list') + 8);
  await expectError(t, hugeArray, 'GGUF_CORRUPT', /claims 1152921504606846976 array elements/);

  const duplicateKey = await sample();
  duplicateKey.write('test.a', after(duplicateKey, 'test.b') - 6, 'latin1');
  await expectError(t, duplicateKey, 'GGUF_CORRUPT', /key 'test.a' appears twice/);

  const hugeCount = await sample();
  hugeCount.writeBigUInt64LE(1n << 40n, 16); // kv count
  await expectError(t, hugeCount, 'GGUF_CORRUPT', /key-value count 1099511627776 is absurd/);
});

t.test('bad alignment', async (t) => {
  const notPowerOfTwo = await sample({ alignment: 64 });
  notPowerOfTwo.writeUInt32LE(48, after(notPowerOfTwo, 'general.alignment') + 4);
  await expectError(t, notPowerOfTwo, 'GGUF_CORRUPT', /alignment 48 is not a power of two/);

  const wrongType = await sample({ alignment: 64 });
  wrongType.writeInt32LE(GgufValueType.INT32, after(wrongType, 'general.alignment'));
  await expectError(t, wrongType, 'GGUF_CORRUPT', /must be a uint32 but is int32/);
});

t.test('corrupt tensor infos', async (t) => {
  // Tensor info: name, n_dims (u32), dims (i64 each), type (i32), offset (u64).
  const second = (bytes: Buffer): number => after(bytes, 'tensor_b.weight');

  const unknownTensorType = await sample();
  unknownTensorType.writeInt32LE(4, second(unknownTensorType) + 4 + 16); // Q4_2, removed from ggml
  await expectError(t, unknownTensorType, 'GGUF_CORRUPT', /tensor 'tensor_b.weight' has unknown tensor type 4/);

  const tooManyDims = await sample();
  tooManyDims.writeUInt32LE(5, second(tooManyDims));
  await expectError(t, tooManyDims, 'GGUF_CORRUPT', /has 5 dimensions/);

  const zeroDim = await sample();
  zeroDim.writeBigInt64LE(0n, second(zeroDim) + 4 + 8);
  await expectError(t, zeroDim, 'GGUF_CORRUPT', /dimension 1 of size 0/);

  const negativeDim = await sample();
  negativeDim.writeBigInt64LE(-32n, second(negativeDim) + 4);
  await expectError(t, negativeDim, 'GGUF_CORRUPT', /dimension 0 of size -32/);

  const partialBlock = await sample();
  partialBlock.writeInt32LE(GgmlType.Q8_0, after(partialBlock, 'tensor_a.weight') + 4 + 8);
  await expectError(t, partialBlock, 'GGUF_CORRUPT', /rows of 10 elements, not a multiple of its block size 32/);

  const duplicateName = await sample();
  duplicateName.write('tensor_a', second(duplicateName) - 'tensor_b.weight'.length, 'latin1');
  await expectError(t, duplicateName, 'GGUF_CORRUPT', /tensor 'tensor_a.weight' appears twice/);
});

t.test('bad tensor data layout', async (t) => {
  const offsetAt = (bytes: Buffer): number => after(bytes, 'tensor_b.weight') + 4 + 16 + 4;

  const misaligned = await sample();
  misaligned.writeBigUInt64LE(40n, offsetAt(misaligned));
  await expectError(t, misaligned, 'GGUF_CORRUPT', /offset 40 is not aligned to 32 bytes/);

  const overlapping = await sample();
  overlapping.writeBigUInt64LE(32n, offsetAt(overlapping));
  await expectError(
    t,
    overlapping,
    'GGUF_CORRUPT',
    /'tensor_b.weight' data at offset 32 overlaps tensor 'tensor_a.weight'/,
  );

  const gap = await sample();
  gap.writeBigUInt64LE(96n, offsetAt(gap));
  await expectError(t, gap, 'GGUF_CORRUPT', /should start at 64/);

  const pastEnd = await sample();
  pastEnd.writeBigInt64LE(1n << 20n, after(pastEnd, 'tensor_b.weight') + 4 + 8); // 32 x 1M F16
  await expectError(
    t,
    pastEnd,
    'GGUF_TRUNCATED',
    /tensor 'tensor_b.weight' \(F16\) data ends at byte \d+ but the file has \d+ bytes/,
  );
});

t.test('random corruption never escapes as anything but ModelFileError', async (t) => {
  const bytes = await sample();
  let state = 12345;
  const random = (n: number): number => {
    state = (Math.imul(state, 1103515245) + 12345) >>> 0;
    return state % n;
  };
  let rejected = 0;
  for (let i = 0; i < 300; i++) {
    const broken = Buffer.from(bytes);
    for (let k = 0; k < 1 + random(4); k++) broken[random(broken.length - 200)] = random(256);
    const err = await readGguf(await save('fuzz.gguf', broken)).then(
      () => undefined,
      (e: unknown) => e,
    );
    if (err === undefined) continue;
    rejected++;
    if (!(err instanceof ModelFileError)) {
      t.fail(`iteration ${i}: ${String(err)}`);
      return;
    }
  }
  t.comment(`${rejected} of 300 corrupted files rejected, the rest still valid`);
  t.pass('only ModelFileError');
});

t.test("stringArrays 'skip': the same header, string arrays with their length and no text", async (t) => {
  const path = vocab('ggml-vocab-gemma-4.gguf');
  const full = await readGguf(path);
  const quick = await readGguf(path, { stringArrays: 'skip' });
  const tokens = (quick.metadata.get('tokenizer.ggml.tokens')?.value ?? []) as string[];
  const decoded = (full.metadata.get('tokenizer.ggml.tokens')?.value ?? []) as string[];
  t.ok(decoded.length > 1000);
  t.equal(tokens.length, decoded.length);
  t.ok(
    tokens.every((s) => s === ''),
    'no text decoded',
  );
  t.same([...quick.metadata.keys()], [...full.metadata.keys()]);
  t.equal(getString(quick, 'general.architecture'), getString(full, 'general.architecture'));
  t.same(quick.tensors, full.tensors);
  t.equal(quick.fileSize, full.fileSize);
});
