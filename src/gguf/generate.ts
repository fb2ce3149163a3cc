// Writes a model with random weights and a real tokenizer: a preset's tensors, the tokenizer.* keys of a
// vocab-only GGUF shipped with llama.cpp, and our chat template. Quantized files are made from the F16 one
// by llama.cpp itself (llama_model_quantize), so they are exactly what llama.cpp would produce.
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, rename, rm } from 'node:fs/promises';
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
  /** Overall progress in [0, 1] with a short description of the current phase. */
  onProgress?: (fraction: number, detail: string) => void;
}

// llama_token_type LLAMA_TOKEN_TYPE_USER_DEFINED: matched as a whole token, rendered as its text.
const USER_DEFINED_TOKEN = 4;

// Even, so the two-values-per-draw generator gives the same bytes whatever the chunking (see random.ts).
const CHUNK_ELEMENTS = 1 << 20;
// Share of the progress bar for writing the F16 file when a quantization follows it.
const F16_SHARE_BEFORE_QUANTIZE = 0.5;

/** Writes the model to `out`; `out` appears complete or not at all (temporary file + rename). */
export async function makeModel(options: MakeModelOptions): Promise<void> {
  const { preset: presetName, quant, seed, out, onProgress, chatTemplate } = options;
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
    await writeF16Model(presetName, seed, f16Path, chatTemplate, (fraction) =>
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

async function writeF16Model(
  presetName: PresetName,
  seed: number,
  path: string,
  chatTemplate: string | undefined,
  onProgress: (fraction: number) => void,
): Promise<void> {
  const preset = getPreset(presetName);
  const vocab = await readGguf(join(llamaCppDir(), 'models', preset.vocabFile));
  const tokens = vocab.metadata.get('tokenizer.ggml.tokens');
  if (tokens?.type !== GgufValueType.ARRAY || tokens.value.length !== preset.vocabSize) {
    throw new Error(
      `${vocab.path}: expected ${preset.vocabSize} tokens in tokenizer.ggml.tokens for preset '${preset.name}'`,
    );
  }

  const writer = new GgufWriter();
  for (const [key, value] of presetMetadata(preset)) writer.set(key, value);
  for (const [key, value] of vocab.metadata) {
    if (key.startsWith('tokenizer.') && key !== 'tokenizer.chat_template') writer.set(key, value);
  }
  if (preset.addedTokens !== undefined) {
    const types = vocab.metadata.get('tokenizer.ggml.token_type');
    if (types?.type !== GgufValueType.ARRAY || !(types.value instanceof Int32Array))
      throw new Error(`${vocab.path}: no tokenizer.ggml.token_type to mark added tokens in`);
    const texts = [...(tokens.value as string[])];
    const kinds = Int32Array.from(types.value);
    for (const [id, text] of Object.entries(preset.addedTokens)) {
      texts[Number(id)] = text;
      kinds[Number(id)] = USER_DEFINED_TOKEN;
    }
    writer.set('tokenizer.ggml.tokens', GgufValue.array(GgufValueType.STRING, texts));
    writer.set('tokenizer.ggml.token_type', GgufValue.array(GgufValueType.INT32, kinds));
  }
  const template =
    chatTemplate ??
    (preset.chatTemplateFile !== undefined
      ? await readFile(join(llamaCppDir(), 'models', 'templates', preset.chatTemplateFile), 'utf8')
      : preset.chatTemplate);
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
];

export const MAKE_MODEL_COMMAND: Command = {
  name: 'make-model',
  synopsis: `Usage: make-model --preset NAME --out FILE [--quant TYPE] [--seed N] [--chat-template-file FILE]

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
  const progress = createProgress(`make-model ${args.preset} ${args.quant}`, { stream: stderr });
  try {
    const { chatTemplateFile: _file, ...rest } = args;
    await makeModel({
      ...rest,
      ...(chatTemplate !== undefined ? { chatTemplate } : {}),
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
