// Writes a model with random weights and a real tokenizer in F16: a preset's tensors, the tokenizer.* keys of a
// vocab-only GGUF shipped with llama.cpp, and our chat template. Quantized files are made from it by llama.cpp itself
// (src/tools/make-model.ts), so the GGUF library needs no engine.
import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { llamaCppDir } from '../paths.ts';
import type { PresetName, TensorSpec } from './presets.ts';
import { getPreset, presetMetadata, presetTensors } from './presets.ts';
import { float16Bits, normalTableF16, normalTableF32, tensorRandom } from './random.ts';
import { readGguf } from './reader.ts';
import type { GgufTensorInfo } from './types.ts';
import { GgmlType, GgufValue, GgufValueType } from './types.ts';
import { GgufWriter } from './writer.ts';

/** Bump whenever the bytes a given (preset, quant, seed) produces change, so cached models are remade. */
export const GENERATOR_VERSION = 1;

export const QUANTS = ['F16', 'Q8_0', 'Q4_K_M'] as const;
export type Quant = (typeof QUANTS)[number];

export function isQuant(name: string): name is Quant {
  return (QUANTS as readonly string[]).includes(name);
}

/** What a generated model holds besides its preset and seed. */
export interface RandomModelOptions {
  /** The tokenizer.chat_template to embed instead of the preset's (any Jinja template). */
  chatTemplate?: string;
  /**
   * The tokenizer of another vocab-only GGUF of llama.cpp's models/ folder (`qwen2`, `ggml-vocab-qwen2.gguf`) or a
   * path to one, instead of the preset's; the token embeddings follow its size.
   */
  vocab?: string;
  /**
   * Texts the vocabulary holds as control tokens (a chat template's markers, so that each is one token as in the real
   * model): a token with that text becomes one, else one is added at the end.
   */
  specialTokens?: readonly string[];
}

// llama_token_type LLAMA_TOKEN_TYPE_USER_DEFINED: matched as a whole token, rendered as its text.
const USER_DEFINED_TOKEN = 4;
// LLAMA_TOKEN_TYPE_CONTROL: matched as a whole token in special-aware tokenization, as a model's added specials are.
const CONTROL_TOKEN = 3;

// Even, so the two-values-per-draw generator gives the same bytes whatever the chunking (see random.ts).
const CHUNK_ELEMENTS = 1 << 20;

/** The chat template a preset embeds when none is given. */
export async function presetTemplate(name: PresetName): Promise<string> {
  const preset = getPreset(name);
  return preset.chatTemplateFile !== undefined
    ? readFile(join(llamaCppDir(), 'models', 'templates', preset.chatTemplateFile), 'utf8')
    : preset.chatTemplate;
}

/** A vocab-only GGUF shipped with llama.cpp (models/ggml-vocab-NAME.gguf) by NAME or file name, or a path. */
export async function vocabPath(name: string): Promise<string> {
  const models = join(llamaCppDir(), 'models');
  const path = name.includes('/') ? name : join(models, name.endsWith('.gguf') ? name : `ggml-vocab-${name}.gguf`);
  const found = await stat(path).then(
    (s) => s.isFile(),
    () => false,
  );
  if (!found) {
    const names = (await readdir(models).catch(() => []))
      .filter((f) => f.startsWith('ggml-vocab-') && f.endsWith('.gguf'))
      .map((f) => f.slice('ggml-vocab-'.length, -'.gguf'.length));
    throw new Error(`no vocabulary '${name}' (${path}); llama.cpp ships: ${names.join(', ')}`);
  }
  return path;
}

/**
 * The markers of a chat template that are tokens of their own, as in the real model's vocabulary: a marker made of
 * other markers (gpt-oss's `<|channel|>analysis<|message|>`) is written as those, and a single character (Seed-OSS's
 * `>`) is an ordinary token.
 */
export function markerTokens(markers: readonly string[]): string[] {
  const unique = [...new Set(markers.filter((m) => [...m].length > 1))];
  return unique.filter((m) => !unique.some((other) => other !== m && m.includes(other)));
}

/** Writes the F16 model of a preset and seed to `path` (not atomically: makeModel writes a temporary file). */
export async function writeF16Model(
  presetName: PresetName,
  seed: number,
  path: string,
  options: RandomModelOptions,
  onProgress: (fraction: number) => void,
): Promise<void> {
  const { chatTemplate, specialTokens = [] } = options;
  const base = getPreset(presetName);
  const vocab = await readGguf(
    options.vocab === undefined ? join(llamaCppDir(), 'models', base.vocabFile) : await vocabPath(options.vocab),
  );
  const tokens = vocab.metadata.get('tokenizer.ggml.tokens');
  if (tokens?.type !== GgufValueType.ARRAY || (options.vocab === undefined && tokens.value.length !== base.vocabSize)) {
    throw new Error(
      `${vocab.path}: expected ${base.vocabSize} tokens in tokenizer.ggml.tokens for preset '${base.name}'`,
    );
  }
  // A SentencePiece vocabulary spells any text with its byte tokens: its first tokens are a vocabulary too.
  const keep = options.vocab === undefined ? base.vocabKeep : undefined;
  if (keep !== undefined && vocab.metadata.get('tokenizer.ggml.model')?.value !== 'llama')
    throw new Error(`${vocab.path}: only a SentencePiece vocabulary can be cut to its first tokens`);
  const texts = (tokens.value as string[]).slice(0, keep);
  const types = vocab.metadata.get('tokenizer.ggml.token_type');
  if (types?.type !== GgufValueType.ARRAY || !(types.value instanceof Int32Array))
    throw new Error(`${vocab.path}: no tokenizer.ggml.token_type to mark tokens in`);
  const kinds = [...types.value.slice(0, keep)];
  const scoresValue = vocab.metadata.get('tokenizer.ggml.scores');
  const scores = scoresValue?.value instanceof Float32Array ? [...scoresValue.value.slice(0, keep)] : undefined;
  // The preset's renamed tokens are ids of its own vocabulary.
  if (base.addedTokens !== undefined && options.vocab === undefined) {
    for (const [id, text] of Object.entries(base.addedTokens)) {
      texts[Number(id)] = text;
      kinds[Number(id)] = USER_DEFINED_TOKEN;
    }
  }
  for (const text of specialTokens) {
    if (text === '') continue;
    const id = texts.indexOf(text);
    if (id >= 0) {
      if (kinds[id] !== CONTROL_TOKEN && kinds[id] !== USER_DEFINED_TOKEN) kinds[id] = CONTROL_TOKEN;
      continue;
    }
    texts.push(text);
    kinds.push(CONTROL_TOKEN);
    scores?.push(0);
  }
  const preset = { ...base, vocabSize: texts.length };

  const writer = new GgufWriter();
  for (const [key, value] of presetMetadata(preset)) writer.set(key, value);
  for (const [key, value] of vocab.metadata) {
    if (key.startsWith('tokenizer.') && key !== 'tokenizer.chat_template') writer.set(key, value);
  }
  writer.set('tokenizer.ggml.tokens', GgufValue.array(GgufValueType.STRING, texts));
  writer.set('tokenizer.ggml.token_type', GgufValue.array(GgufValueType.INT32, Int32Array.from(kinds)));
  if (scores !== undefined)
    writer.set('tokenizer.ggml.scores', GgufValue.array(GgufValueType.FLOAT32, Float32Array.from(scores)));
  if (base.addSpacePrefix !== undefined && options.vocab === undefined)
    writer.set('tokenizer.ggml.add_space_prefix', GgufValue.bool(base.addSpacePrefix));
  const template = chatTemplate ?? (await presetTemplate(presetName));
  if (template !== '') writer.set('tokenizer.chat_template', GgufValue.string(template));

  const specs = new Map<string, TensorSpec>();
  for (const spec of presetTensors(preset)) {
    specs.set(spec.name, spec);
    writer.addTensor(spec);
  }
  await writer.write(path, (tensor) => tensorData(tensor, specs.get(tensor.name)!, seed), {
    onProgress: (written, total) => onProgress(written / total),
  });
}

/** One tensor's bytes in chunks: constants for norms, table-driven normal values for weights. */
function* tensorData(tensor: GgufTensorInfo, spec: TensorSpec, seed: number): Generator<Uint8Array> {
  const count = tensor.dims.reduce((n, ne) => n * ne, 1);
  const { init } = spec;
  if (spec.type !== GgmlType.F16 && spec.type !== GgmlType.F32)
    throw new Error(`cannot generate ${tensor.name}: only F16 and F32 are generated`);
  const f16 = spec.type === GgmlType.F16;
  const rng = init.kind === 'normal' ? tensorRandom(seed, tensor.name) : undefined;

  for (let done = 0; done < count; done += CHUNK_ELEMENTS) {
    const n = Math.min(CHUNK_ELEMENTS, count - done);
    // A fresh buffer per chunk: the writer may still be writing the previous one.
    const values = f16 ? new Uint16Array(n) : new Float32Array(n);
    if (init.kind === 'constant') {
      values.fill(f16 ? float16Bits(init.value) : init.value);
    } else if (values instanceof Uint16Array) {
      rng!.fillFromTable(values, normalTableF16(init.std));
    } else {
      rng!.fillFromTable(values, normalTableF32(init.std));
    }
    yield new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
  }
}
