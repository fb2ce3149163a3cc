// Generated models cached by everything that decides their bytes, so tests and the demo server make each
// one once. The name carries GENERATOR_VERSION: a generator change makes new files instead of reusing stale ones.
import { createHash } from 'node:crypto';
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Quant } from '../gguf/generate.ts';
import { GENERATOR_VERSION } from '../gguf/generate.ts';
import type { PresetName } from '../gguf/presets.ts';
import { cacheDir } from '../paths.ts';
import { makeModel } from './make-model.ts';

/** The demo model served when no -m is given (npm start, npm run replicas): small, generated once and cached. */
export const DEMO_MODEL = { preset: 'tiny', quant: 'Q4_K_M', seed: 1 } as const;

export interface CachedModel {
  preset: PresetName;
  quant: Quant;
  seed?: number;
  /** A chat template to embed instead of the preset's. */
  chatTemplate?: string;
  /** Another vocabulary of llama.cpp's (makeModel's `vocab`). */
  vocab?: string;
  /** Texts held as control tokens (makeModel's `specialTokens`). */
  specialTokens?: readonly string[];
}

const hash = (text: string): string => createHash('sha256').update(text).digest('hex').slice(0, 12);

export function cachedModelPath({ preset, quant, seed = 1, chatTemplate, vocab, specialTokens }: CachedModel): string {
  const template = chatTemplate === undefined ? '' : `-t${hash(chatTemplate)}`;
  const tokens =
    vocab === undefined && (specialTokens ?? []).length === 0
      ? ''
      : `-v${hash(JSON.stringify([vocab ?? null, specialTokens ?? []]))}`;
  return join(cacheDir(), 'models', `${preset}-${quant}-s${seed}${template}${tokens}-g${GENERATOR_VERSION}.gguf`);
}

// Concurrent callers in one process share one generation; across processes, makeModel's temp file + rename
// keeps the race safe (both write identical bytes and the last rename wins).
const inFlight = new Map<string, Promise<string>>();

/** The path of the model, generating it first if it is not cached yet. */
export function ensureModel(
  model: CachedModel & { onProgress?: (fraction: number, detail: string) => void },
): Promise<string> {
  const path = cachedModelPath(model);
  let pending = inFlight.get(path);
  if (pending === undefined) {
    pending = generateIfMissing(path, model).finally(() => inFlight.delete(path));
    inFlight.set(path, pending);
  }
  return pending;
}

async function generateIfMissing(
  path: string,
  model: CachedModel & { onProgress?: (fraction: number, detail: string) => void },
): Promise<string> {
  const exists = await stat(path).then(
    (s) => s.isFile(),
    () => false,
  );
  if (!exists) {
    const { preset, quant, seed = 1, onProgress, chatTemplate, vocab, specialTokens } = model;
    await makeModel({
      preset,
      quant,
      seed,
      out: path,
      ...(onProgress ? { onProgress } : {}),
      ...(chatTemplate !== undefined ? { chatTemplate } : {}),
      ...(vocab !== undefined ? { vocab } : {}),
      ...(specialTokens !== undefined ? { specialTokens } : {}),
    });
  }
  return path;
}
