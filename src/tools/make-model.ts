// `make-model`: a GGUF with random weights and a real tokenizer (src/gguf/generate.ts writes its F16 weights),
// quantized by llama.cpp itself (llama_model_quantize, through the engine), so a quantized file is exactly what
// llama.cpp would produce. The engine is imported only where it is needed, so F16 generation works without the addon.
//
// src/tools/ makes models for tests, benches and the demo server (make-model.ts, model-cache.ts): it may import the
// GGUF library, the engine's index (to quantize), the flag layer, util and the shared errors, paths and progress.
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { type Command, commandUsage, readCommandLine } from '../flags/command.ts';
import { type FlagSpec, parseFlags } from '../flags/parse.ts';
import {
  isQuant,
  markerTokens,
  presetTemplate,
  QUANTS,
  type Quant,
  type RandomModelOptions,
  writeF16Model,
} from '../gguf/generate.ts';
import { isPresetName, PRESET_NAMES, type PresetName } from '../gguf/presets.ts';
import { createProgress } from '../progress.ts';

export interface MakeModelOptions extends RandomModelOptions {
  preset: PresetName;
  quant: Quant;
  seed: number;
  out: string;
  /** Overall progress in [0, 1] with a short description of the current phase. */
  onProgress?: (fraction: number, detail: string) => void;
}

// Share of the progress bar for writing the F16 file when a quantization follows it.
const F16_SHARE_BEFORE_QUANTIZE = 0.5;

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
