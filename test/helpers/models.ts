// Generated test models, cached outside the clone (src/tools/model-cache.ts), and loaded once per file.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Model as ModelType } from '../../src/engine/index.ts';
import { Model } from '../../src/engine/index.ts';
import type { Quant } from '../../src/gguf/generate.ts';
import type { PresetName } from '../../src/gguf/presets.ts';
import { llamaCppDir } from '../../src/paths.ts';
import { ensureModel } from '../../src/tools/model-cache.ts';

export function modelPath(preset: PresetName, quant: Quant = 'F16'): Promise<string> {
  return ensureModel({ preset, quant, seed: 1 });
}

export async function loadModel(preset: PresetName, quant: Quant = 'F16'): Promise<ModelType> {
  return Model.load(await modelPath(preset, quant));
}

/** llama.cpp's copy of a real model's chat template (vendor/llama.cpp/models/templates/NAME.jinja). */
export function templateText(name: string): Promise<string> {
  return readFile(join(llamaCppDir(), 'models', 'templates', `${name}.jinja`), 'utf8');
}

/** A tiny model whose GGUF carries the named template from llama.cpp's corpus as its own. */
export async function loadModelWithTemplate(name: string, preset: PresetName = 'tiny'): Promise<ModelType> {
  const chatTemplate = await templateText(name);
  return Model.load(await ensureModel({ preset, quant: 'F16', seed: 1, chatTemplate }));
}
