// Where things live: the project root, the llama.cpp tree, the cache directory.
import { homedir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const projectRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..');

/** The llama.cpp source tree: LLAMA_CPP_DIR when set, else vendor/llama.cpp. */
export function llamaCppDir(): string {
  const fromEnv = process.env.LLAMA_CPP_DIR;
  return fromEnv ? resolve(fromEnv) : join(projectRoot, 'vendor', 'llama.cpp');
}

/** Downloads and generated models live here, outside the clone (same rule as scripts/vendor-llama.mjs). */
export function cacheDir(): string {
  return (
    process.env.LLAMA_SERVER_CACHE_DIR ??
    join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'llama-slots-server')
  );
}
