// Generated test models, cached outside the clone (src/gguf/model-cache.ts), and loaded once per file.
import type { Model as ModelType } from '../../src/engine/index.ts';
import { Model } from '../../src/engine/index.ts';
import type { Quant } from '../../src/gguf/generate.ts';
import { ensureModel } from '../../src/gguf/model-cache.ts';
import type { PresetName } from '../../src/gguf/presets.ts';

export function modelPath(preset: PresetName, quant: Quant = 'F16'): Promise<string> {
  return ensureModel({ preset, quant, seed: 1 });
}

export async function loadModel(preset: PresetName, quant: Quant = 'F16'): Promise<ModelType> {
  return Model.load(await modelPath(preset, quant));
}
