// npm run fit -- --model FILE --vram 1GiB [--slots N] [--ctx N] [--kv f16|q8_0] [--cc 5.0] [--model-draft FILE] [--json]
// Prints the planner's arithmetic and the settings as llama-server flags.
// Exit status: 0 it fits, 1 it does not (the message names the smallest budget), 2 bad arguments.

import { ModelFileError } from '../errors.ts';
import { type Command, readCommandLine } from '../flags/command.ts';
import { FlagError, type FlagSpec, parseFlags } from '../flags/parse.ts';
import { parseSize } from '../util/size.ts';
import type { DraftSettings, ModelShape, PlannedKvType } from './memory-model.ts';
import { DEFAULT_CUDA_OVERHEAD_BYTES, MIB, PLANNED_KV_TYPES, readModelShape } from './memory-model.ts';
import type { FitResult, PlanFitOptions } from './planner.ts';
import { parseComputeCapability, planFit } from './planner.ts';
import { formatPlan } from './report.ts';

/** The planner's options as given on the command line: the model is a path, --json picks the output. */
export type FitCliArgs = Omit<PlanFitOptions, 'model' | 'flashAttn' | 'computeCapability' | 'draft'> & {
  model: string;
  computeCapability?: number;
  flashAttn: boolean;
  json: boolean;
  draftModel?: string;
  draftGpuLayers?: number;
  draftKvTypeK?: PlannedKvType;
  draftKvTypeV?: PlannedKvType;
};

const FIT_FLAGS: readonly FlagSpec<keyof FitCliArgs>[] = [
  {
    names: ['--model'],
    kind: 'string',
    key: 'model',
    value: 'FILE',
    required: true,
    help: 'GGUF model (only its header is read)',
  },
  {
    names: ['--vram'],
    kind: 'size',
    key: 'vramBytes',
    required: true,
    help: 'VRAM budget: 1GiB, 1024MiB, 1G, 900M (K/M/G are 1024-based), 1GB (1000-based), bytes',
  },
  { names: ['--slots'], kind: 'int', key: 'slots', min: 1, help: 'fix the number of slots (parallel sequences)' },
  {
    names: ['--ctx'],
    kind: 'int',
    key: 'ctxPerSlot',
    min: 16,
    help: "fix the context per slot, in tokens (llama-server's -c is this times the slots)",
  },
  {
    names: ['--kv'],
    kind: 'enum',
    key: 'kvType',
    choices: PLANNED_KV_TYPES,
    help: 'fix the KV cache type (q8_0 needs flash attention)',
  },
  { names: ['--ubatch'], kind: 'int', key: 'ubatch', min: 1, help: 'fix the physical batch (llama.cpp n_ubatch)' },
  {
    names: ['--ngl'],
    kind: 'int',
    key: 'gpuLayers',
    min: -1,
    help: 'fix n_gpu_layers (-1: all layers and the output matrix)',
  },
  {
    names: ['--cc'],
    kind: 'string',
    key: 'computeCapability',
    value: 'X.Y',
    parse: (v) => parseComputeCapability(v as string),
    help: 'CUDA compute capability; below 6.1 batches stay at 8 rows or fewer',
  },
  {
    names: ['--overhead'],
    kind: 'string',
    key: 'cudaOverheadBytes',
    value: 'SIZE',
    // 0 is a budget here (nothing kept back), not a size.
    parse: (v) => (/^\s*0+\s*$/.test(v as string) ? 0 : parseSize(v as string)),
    help: `VRAM kept for the CUDA context, cuBLAS and the pool (default ${DEFAULT_CUDA_OVERHEAD_BYTES / MIB}MiB)`,
  },
  {
    names: [],
    negated: ['--no-flash-attn'],
    kind: 'bool',
    key: 'flashAttn',
    default: 'true',
    help: 'plan without flash attention (f16 KV only)',
  },
  {
    names: ['--model-draft'],
    kind: 'string',
    key: 'draftModel',
    value: 'FILE',
    help: 'a draft model (speculative decoding): its weights and KV count too',
  },
  {
    names: ['--ngl-draft'],
    kind: 'int',
    key: 'draftGpuLayers',
    min: -1,
    help: "the draft model's n_gpu_layers (default -1: all, and its output matrix)",
  },
  {
    names: ['--kv-draft-k'],
    kind: 'enum',
    key: 'draftKvTypeK',
    choices: PLANNED_KV_TYPES,
    help: "the draft model's K cache type (default f16)",
  },
  {
    names: ['--kv-draft-v'],
    kind: 'enum',
    key: 'draftKvTypeV',
    choices: PLANNED_KV_TYPES,
    help: "the draft model's V cache type (default f16; q8_0 needs flash attention)",
  },
  { names: ['--json'], kind: 'bool', key: 'json', default: 'false', help: 'machine-readable output' },
];

export const FIT_COMMAND: Command = {
  name: 'fit',
  synopsis: `Usage: npm run fit -- --model FILE --vram SIZE [options]

Plans n_gpu_layers, slots, context, KV cache type and ubatch so that the model fits in SIZE of VRAM,
and prints the arithmetic.`,
  footer: 'Exit status: 0 it fits, 1 it does not fit, 2 bad arguments.',
  flags: FIT_FLAGS,
  options: { once: true },
};

/** Parses the fit command's arguments; throws FlagError naming the flag. */
export function parseFitArgs(argv: readonly string[]): FitCliArgs {
  const args = parseFlags(FIT_FLAGS, argv, {}, FIT_COMMAND.options).values as FitCliArgs;
  if (args.kvType === 'q8_0' && !args.flashAttn)
    throw new FlagError('--kv: q8_0 needs flash attention (drop --no-flash-attn)');
  if (args.draftKvTypeV === 'q8_0' && !args.flashAttn)
    throw new FlagError('--kv-draft-v: q8_0 needs flash attention (drop --no-flash-attn)');
  const draftOnly = FIT_FLAGS.find(
    (f) => f.key?.startsWith('draft') && f.key !== 'draftModel' && args[f.key] !== undefined,
  );
  if (draftOnly !== undefined && args.draftModel === undefined)
    throw new FlagError(`${draftOnly.names[0]} needs --model-draft`);
  return args;
}

function planOptions(model: ModelShape, draft: DraftSettings | undefined, a: FitCliArgs): PlanFitOptions {
  const {
    model: _path,
    json: _json,
    draftModel: _draft,
    draftGpuLayers: _ngl,
    draftKvTypeK: _k,
    draftKvTypeV: _v,
    ...options
  } = a;
  return { ...options, model, ...(draft !== undefined ? { draft } : {}) };
}

/** The result as JSON: settings, flags, the itemized table in bytes and MiB, totals and notes. */
export function fitResultJson(result: FitResult): unknown {
  const e = result.fits ? result.estimate : result.smallest.estimate;
  const round = (bytes: number): number => Math.round((bytes / MIB) * 100) / 100;
  return {
    fits: result.fits,
    model: result.model,
    ...(result.draft !== undefined ? { draft: result.draft } : {}),
    vramBudgetBytes: result.vramBudget,
    ...(result.computeCapability !== undefined
      ? { computeCapability: (result.computeCapability / 100).toFixed(1) }
      : {}),
    settings: result.fits ? result.settings : result.smallest.settings,
    ...(result.fits
      ? { flags: result.flags, headroomBytes: result.headroom }
      : {
          message: result.message,
          minimumBytes: result.minimumBytes,
          minimumAllLayersBytes: result.minimumAllLayersBytes,
        }),
    vramTotalBytes: e.vramBytes,
    table: e.items.map((i) => ({ ...i, mib: round(i.bytes) })),
    kvCells: e.cells,
    notes: result.notes,
  };
}

export async function runFitCli(
  argv: readonly string[],
  streams: { stdout: NodeJS.WritableStream; stderr: NodeJS.WritableStream } = {
    stdout: process.stdout,
    stderr: process.stderr,
  },
): Promise<number> {
  const { stdout, stderr } = streams;
  const line = readCommandLine(FIT_COMMAND, argv, streams, parseFitArgs);
  if ('exit' in line) return line.exit;
  const { args } = line;
  let model: ModelShape;
  let draft: DraftSettings | undefined;
  let flag = '--model';
  try {
    model = await readModelShape(args.model);
    flag = '--model-draft';
    if (args.draftModel !== undefined)
      draft = {
        model: await readModelShape(args.draftModel),
        gpuLayers: args.draftGpuLayers ?? -1,
        kvTypeK: args.draftKvTypeK ?? 'f16',
        kvTypeV: args.draftKvTypeV ?? 'f16',
      };
  } catch (err) {
    if (!(err instanceof ModelFileError)) throw err;
    stderr.write(`fit: ${flag}: ${err.message}\n`);
    return 2;
  }
  let result: FitResult;
  try {
    result = planFit(planOptions(model, draft, args));
  } catch (err) {
    if (!(err instanceof RangeError)) throw err;
    stderr.write(`fit: ${err.message}\n`);
    return 2;
  }
  stdout.write(args.json ? `${JSON.stringify(fitResultJson(result), null, 2)}\n` : formatPlan(result));
  if (!result.fits) {
    stderr.write(`fit: ${result.message}\n`);
    return 1;
  }
  return 0;
}
