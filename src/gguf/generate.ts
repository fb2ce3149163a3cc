// Writes a model with random weights and a real tokenizer: a preset's tensors, the tokenizer.* keys of a
// vocab-only GGUF shipped with llama.cpp, and our chat template. Quantized files are made from the F16 one
// by llama.cpp itself (llama_model_quantize), so they are exactly what llama.cpp would produce.
import { randomBytes } from 'node:crypto';
import { mkdir, readdir, readFile, rename, rm, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { type Command, commandUsage, readCommandLine } from '../cli/command.ts';
import { type FlagSpec, parseFlags } from '../cli/flags.ts';
import { llamaCppDir } from '../paths.ts';
import { createProgress } from '../progress.ts';
import type { PresetName, TensorSpec } from './presets.ts';
import { getPreset, isPresetName, PRESET_NAMES, presetMetadata, presetTensors } from './presets.ts';
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

export interface MakeModelOptions {
  preset: PresetName;
  quant: Quant;
  seed: number;
  out: string;
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
  /** Overall progress in [0, 1] with a short description of the current phase. */
  onProgress?: (fraction: number, detail: string) => void;
}

// llama_token_type LLAMA_TOKEN_TYPE_USER_DEFINED: matched as a whole token, rendered as its text.
const USER_DEFINED_TOKEN = 4;
// LLAMA_TOKEN_TYPE_CONTROL: matched as a whole token in special-aware tokenization, as a model's added specials are.
const CONTROL_TOKEN = 3;

// Even, so the two-values-per-draw generator gives the same bytes whatever the chunking (see random.ts).
const CHUNK_ELEMENTS = 1 << 20;
// Share of the progress bar for writing the F16 file when a quantization follows it.
const F16_SHARE_BEFORE_QUANTIZE = 0.5;

/** The chat template a preset embeds when none is given. */
export async function presetTemplate(name: PresetName): Promise<string> {
  const preset = getPreset(name);
  return preset.chatTemplateFile !== undefined
    ? readFile(join(llamaCppDir(), 'models', 'templates', preset.chatTemplateFile), 'utf8')
    : preset.chatTemplate;
}

/**
 * A chat template's markers that are tokens of their own, as llama.cpp's chat layer names them (the native addon
 * reads the template; no model is needed).
 */
export async function templateMarkerTokens(template: string): Promise<string[]> {
  if (template === '') throw new Error('the preset has no chat template');
  const { chatTemplateMarkers } = await import('../engine/index.ts');
  return markerTokens(await chatTemplateMarkers(template));
}

/** Writes the model to `out`; `out` appears complete or not at all (temporary file + rename). */
export async function makeModel(options: MakeModelOptions): Promise<void> {
  const { preset: presetName, quant, seed, out, onProgress } = options;
  if (!isPresetName(presetName)) throw new RangeError(`unknown preset '${String(presetName)}'`);
  if (!isQuant(quant)) throw new RangeError(`unknown quantization '${String(quant)}'`);
  if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff)
    throw new RangeError(`seed must be an integer from 0 to ${0xffffffff}`);

  await mkdir(dirname(out), { recursive: true });
  // Unique per process and call, so concurrent generators of the same file never share a temporary file.
  const temp = (suffix: string): string =>
    join(dirname(out), `.${basename(out)}.${process.pid}.${randomBytes(4).toString('hex')}${suffix}`);
  const f16Share = quant === 'F16' ? 1 : F16_SHARE_BEFORE_QUANTIZE;

  const f16Path = temp('.f16.tmp');
  const quantizedPath = temp('.tmp');
  try {
    await writeF16Model(presetName, seed, f16Path, options, (fraction) =>
      onProgress?.(fraction * f16Share, 'writing F16 weights'),
    );
    if (quant === 'F16') {
      await rename(f16Path, out);
    } else {
      onProgress?.(f16Share, `quantizing to ${quant}`);
      // Imported here so F16 generation works without the native addon.
      const { quantize } = await import('../engine/index.ts');
      await quantize(f16Path, quantizedPath, quant);
      await rename(quantizedPath, out);
    }
    onProgress?.(1, 'done');
  } finally {
    await rm(f16Path, { force: true });
    await rm(quantizedPath, { force: true });
  }
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

async function writeF16Model(
  presetName: PresetName,
  seed: number,
  path: string,
  options: Pick<MakeModelOptions, 'chatTemplate' | 'vocab' | 'specialTokens'>,
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

export interface MakeModelArgs {
  preset: PresetName;
  quant: Quant;
  seed: number;
  out: string;
  /** File whose text is embedded as tokenizer.chat_template. */
  chatTemplateFile?: string;
  vocab?: string;
  specialTokens?: string[];
  /** Add the chat template's markers (as llama.cpp's chat layer names them) as control tokens. */
  templateSpecialTokens?: boolean;
}

const MAKE_MODEL_FLAGS: readonly FlagSpec<keyof MakeModelArgs>[] = [
  {
    names: ['--preset'],
    kind: 'enum',
    key: 'preset',
    choices: PRESET_NAMES,
    required: true,
    help: 'the shapes and tokenizer to write',
  },
  { names: ['--out'], kind: 'string', key: 'out', value: 'FILE', required: true, help: 'where to write the model' },
  {
    names: ['--quant'],
    kind: 'enum',
    key: 'quant',
    choices: QUANTS,
    default: 'F16',
    help: 'the tensor type; all but F16 need the native addon',
  },
  {
    names: ['--seed'],
    kind: 'int',
    key: 'seed',
    min: 0,
    max: 0xffffffff,
    default: '1',
    help: 'same seed, same bytes',
  },
  {
    names: ['--chat-template-file'],
    kind: 'string',
    key: 'chatTemplateFile',
    value: 'FILE',
    help: "embed this Jinja chat template instead of the preset's (e.g. one of vendor/llama.cpp/models/templates/*.jinja)",
  },
  {
    names: ['--vocab'],
    kind: 'string',
    key: 'vocab',
    value: 'NAME|FILE',
    help: "take the tokenizer from another of llama.cpp's vocab files (vendor/llama.cpp/models/ggml-vocab-NAME.gguf) or a vocab-only GGUF",
  },
  {
    names: ['--special-token'],
    kind: 'string',
    key: 'specialTokens',
    value: 'TEXT',
    help: 'hold TEXT as one control token of the vocabulary, added when it has none (repeatable)',
    repeatable: true,
    parse: (v) => [String(v)],
  },
  {
    names: ['--template-special-tokens'],
    kind: 'bool',
    key: 'templateSpecialTokens',
    help: "add the chat template's markers (tool-call, thinking and stop markers, as llama.cpp's chat layer names them) as control tokens, so each is one token as in the real model",
  },
];

export const MAKE_MODEL_COMMAND: Command = {
  name: 'make-model',
  synopsis: `Usage: make-model --preset NAME --out FILE [--quant TYPE] [--seed N] [--chat-template-file FILE]
                  [--vocab NAME|FILE] [--special-token TEXT]... [--template-special-tokens]

Writes a GGUF model with random weights and a real tokenizer.`,
  flags: MAKE_MODEL_FLAGS,
  options: { once: true },
};

export const MAKE_MODEL_USAGE = commandUsage(MAKE_MODEL_COMMAND);

/** Parses make-model's flags; throws a FlagError that names the flag. */
export function parseMakeModelArgs(argv: readonly string[]): MakeModelArgs {
  return parseFlags(MAKE_MODEL_FLAGS, argv, {}, MAKE_MODEL_COMMAND.options).values as MakeModelArgs;
}

/** The make-model command: returns the process exit code (0 ok, 1 failed, 2 bad arguments). */
export async function runMakeModel(
  argv: readonly string[],
  streams: { stdout: NodeJS.WritableStream; stderr: NodeJS.WriteStream } = {
    stdout: process.stdout,
    stderr: process.stderr,
  },
): Promise<number> {
  const { stderr } = streams;
  const line = readCommandLine(MAKE_MODEL_COMMAND, argv, streams, parseMakeModelArgs);
  if ('exit' in line) return line.exit;
  const { args } = line;

  if (args.quant !== 'F16' && process.env.LLAMA_LOG_LEVEL === undefined) {
    // llama_model_quantize warns once per tensor that needs a fallback type (130 lines for gemma3-1b);
    // the progress bar says what is happening.
    const { setLogLevel } = await import('../engine/index.ts');
    setLogLevel('error');
  }
  let chatTemplate: string | undefined;
  if (args.chatTemplateFile !== undefined) {
    try {
      chatTemplate = await readFile(args.chatTemplateFile, 'utf8');
    } catch (err) {
      stderr.write(
        `make-model: cannot read --chat-template-file ${args.chatTemplateFile}: ${(err as Error).message}\n`,
      );
      return 1;
    }
  }
  const specialTokens = [...(args.specialTokens ?? [])];
  if (args.templateSpecialTokens === true) {
    try {
      specialTokens.push(...(await templateMarkerTokens(chatTemplate ?? (await presetTemplate(args.preset)))));
    } catch (err) {
      stderr.write(`make-model: --template-special-tokens: ${(err as Error).message}\n`);
      return 1;
    }
  }
  const progress = createProgress(`make-model ${args.preset} ${args.quant}`, { stream: stderr });
  try {
    const { chatTemplateFile: _file, templateSpecialTokens: _markers, specialTokens: _tokens, ...rest } = args;
    await makeModel({
      ...rest,
      ...(chatTemplate !== undefined ? { chatTemplate } : {}),
      ...(specialTokens.length > 0 ? { specialTokens } : {}),
      onProgress: (fraction, detail) => progress.update(fraction, detail),
    });
  } catch (err) {
    progress.done('failed');
    stderr.write(`make-model: ${(err as Error).message}\n`);
    return 1;
  }
  progress.done(args.out);
  return 0;
}
