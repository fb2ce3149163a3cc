import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import t from 'tap';
import { GENERATOR_VERSION } from '../../src/gguf/generate.ts';
import { cachedModelPath, ensureModel } from '../../src/gguf/model-cache.ts';
import { readGguf } from '../../src/gguf/reader.ts';

const cache = t.testdir({});
const previous = process.env.LLAMA_SERVER_CACHE_DIR;
process.env.LLAMA_SERVER_CACHE_DIR = cache;
t.teardown(() => {
  if (previous === undefined) delete process.env.LLAMA_SERVER_CACHE_DIR;
  else process.env.LLAMA_SERVER_CACHE_DIR = previous;
});

t.test('path names everything that decides the bytes', async (t) => {
  t.equal(
    cachedModelPath({ preset: 'tiny', quant: 'F16' }),
    join(cache, 'models', `tiny-F16-s1-g${GENERATOR_VERSION}.gguf`),
  );
  t.equal(
    cachedModelPath({ preset: 'gemma3-1b', quant: 'Q4_K_M', seed: 7 }),
    join(cache, 'models', `gemma3-1b-Q4_K_M-s7-g${GENERATOR_VERSION}.gguf`),
  );
});

t.test('generates once, then reuses', async (t) => {
  // Concurrent callers share one generation.
  const [first, second] = await Promise.all([
    ensureModel({ preset: 'tiny', quant: 'F16' }),
    ensureModel({ preset: 'tiny', quant: 'F16', seed: 1 }),
  ]);
  t.equal(first, cachedModelPath({ preset: 'tiny', quant: 'F16' }));
  t.equal(second, first);
  t.equal((await readGguf(first)).tensors.length, 21);
  t.same(await readdir(join(cache, 'models')), [`tiny-F16-s1-g${GENERATOR_VERSION}.gguf`], 'no temporary files left');

  const { mtimeMs } = await stat(first);
  t.equal(await ensureModel({ preset: 'tiny', quant: 'F16' }), first);
  t.equal((await stat(first)).mtimeMs, mtimeMs, 'not rewritten');
});
