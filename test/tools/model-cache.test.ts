import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import t from 'tap';
import { GENERATOR_VERSION } from '../../src/gguf/generate.ts';
import { readGguf } from '../../src/gguf/reader.ts';
import { cachedModelPath, ensureModel } from '../../src/tools/model-cache.ts';

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
  // Another vocabulary or added special tokens make other bytes: another name.
  const plain = cachedModelPath({ preset: 'tiny-chat', quant: 'F16' });
  const marked = cachedModelPath({ preset: 'tiny-chat', quant: 'F16', specialTokens: ['<think>'] });
  const other = cachedModelPath({ preset: 'tiny-chat', quant: 'F16', vocab: 'qwen2' });
  t.match(marked, /tiny-chat-F16-s1-v[0-9a-f]{12}-g\d+\.gguf$/);
  t.equal(new Set([plain, marked, other]).size, 3);
  t.equal(cachedModelPath({ preset: 'tiny-chat', quant: 'F16', specialTokens: [] }), plain, 'none added: the same');
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
