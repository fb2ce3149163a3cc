// Every kind of bad model file gives a coded error and the process lives on. The file is checked in
// TypeScript before llama.cpp sees it, so llama.cpp never parses a broken header.
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import t from 'tap';
import { Model } from '../../src/engine/index.ts';
import { ModelFileError, ModelLoadError } from '../../src/errors.ts';
import { llamaCppDir } from '../../src/paths.ts';
import { modelPath } from '../helpers/models.ts';

const good = await readFile(await modelPath('tiny'));
const dir = t.testdir({});

async function file(name: string, bytes: Uint8Array | string): Promise<string> {
  const p = join(dir, name);
  await writeFile(p, bytes);
  return p;
}

t.test('missing path', async (t) => {
  await t.rejects(Model.load(join(dir, 'nope.gguf')), { constructor: ModelFileError, code: 'MODEL_NOT_FOUND' });
});

t.test('a directory', async (t) => {
  const sub = join(dir, 'a-directory.gguf');
  await mkdir(sub, { recursive: true });
  await t.rejects(Model.load(sub), { constructor: ModelFileError, code: 'NOT_A_FILE' });
});

t.test('not a GGUF file', async (t) => {
  await t.rejects(Model.load(await file('notes.txt', 'this is a text file, not a model\n')), { code: 'NOT_A_GGUF' });
  await t.rejects(Model.load(await file('empty.gguf', '')), { code: 'NOT_A_GGUF' });
  await t.rejects(Model.load(await file('short.gguf', 'GGU')), { code: 'NOT_A_GGUF' });
});

t.test('truncated GGUF', async (t) => {
  await t.rejects(Model.load(await file('cut-in-metadata.gguf', good.subarray(0, 4096))), {
    constructor: ModelFileError,
    code: 'GGUF_TRUNCATED',
  });
  await t.rejects(Model.load(await file('cut-in-data.gguf', good.subarray(0, Math.floor(good.length / 2)))), {
    code: 'GGUF_TRUNCATED',
  });
  await t.rejects(Model.load(await file('one-byte-short.gguf', good.subarray(0, good.length - 1))), {
    code: 'GGUF_TRUNCATED',
  });
});

t.test('GGUF with corrupt metadata', async (t) => {
  // Header: magic(4) version(4) tensor count(8) kv count(8); the first key's length is at byte 24.
  const hugeKey = Buffer.from(good);
  hugeKey.writeBigUInt64LE(1n << 40n, 24);
  await t.rejects(Model.load(await file('huge-key.gguf', hugeKey)), {
    constructor: ModelFileError,
    code: /GGUF_(CORRUPT|TRUNCATED)/,
  });

  const keyLen = Number(good.readBigUInt64LE(24));
  const badType = Buffer.from(good);
  badType.writeUInt32LE(99, 32 + keyLen); // the first value's type
  await t.rejects(Model.load(await file('bad-type.gguf', badType)), { code: 'GGUF_CORRUPT', message: /type/ });

  const badVersion = Buffer.from(good);
  badVersion.writeUInt32LE(77, 4);
  await t.rejects(Model.load(await file('bad-version.gguf', badVersion)), { code: 'GGUF_CORRUPT' });

  const hugeCount = Buffer.from(good);
  hugeCount.writeBigUInt64LE(1n << 50n, 16);
  await t.rejects(Model.load(await file('huge-kv-count.gguf', hugeCount)), { code: /GGUF_(CORRUPT|TRUNCATED)/ });
});

t.test('a valid GGUF that is not a usable model is refused by llama.cpp with a code', async (t) => {
  const vocabOnly = join(llamaCppDir(), 'models', 'ggml-vocab-llama-spm.gguf');
  await t.rejects(Model.load(vocabOnly), {
    constructor: ModelLoadError,
    code: 'MODEL_LOAD_FAILED',
    message: /token_embd/,
  });
});

t.test('the process is still healthy after all of that', async (t) => {
  const m = await Model.load(await modelPath('tiny'));
  t.ok(m.tokenize('still alive').length > 0);
  m.dispose();
});
