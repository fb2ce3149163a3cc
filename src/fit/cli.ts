// npm run fit -- --model FILE --vram 1GiB [--slots N] [--ctx N] [--kv f16|q8_0] [--cc 5.0] [--json]
// Prints the planner's arithmetic and the settings as llama-server flags.
// Exit status: 0 it fits, 1 it does not (the message names the smallest budget), 2 bad arguments.
import { ModelFileError } from '../errors.ts';
import type { KvType, ModelInfo } from './memory-model.ts';
import { KV_TYPES, MIB, readModelInfo } from './memory-model.ts';
import type { FitResult, PlanFitOptions } from './planner.ts';
import { formatPlan, parseComputeCapability, planFit } from './planner.ts';
import { parseSize } from './size.ts';

export const FIT_USAGE = `Usage: npm run fit -- --model FILE --vram SIZE [options]

Plans n_gpu_layers, slots, context, KV cache type and ubatch so that the model fits in SIZE of VRAM,
and prints the arithmetic.

  --model FILE      GGUF model (only its header is read)
  --vram SIZE       VRAM budget: 1GiB, 1024MiB, 1G, 900M (K/M/G are 1024-based), 1GB (1000-based), bytes
  --slots N         fix the number of slots (parallel sequences)
  --ctx N           fix the context per slot, in tokens (llama-server's -c is this times the slots)
  --kv f16|q8_0     fix the KV cache type (q8_0 needs flash attention)
  --ubatch N        fix the physical batch (llama.cpp n_ubatch)
  --ngl N           fix n_gpu_layers (-1: all layers and the output matrix)
  --cc X.Y          CUDA compute capability; below 6.1 batches stay at 8 rows or fewer
  --overhead SIZE   VRAM kept for the CUDA context, cuBLAS and the pool (default 128MiB)
  --no-flash-attn   plan without flash attention (f16 KV only)
  --json            machine-readable output
  -h, --help        this help

Exit status: 0 it fits, 1 it does not fit, 2 bad arguments.
`;

export class FitUsageError extends Error {
  override name = 'FitUsageError';
}

/** The planner's options as given on the command line: the model is a path, --json picks the output. */
export type FitCliArgs = Omit<PlanFitOptions, 'model' | 'flashAttn' | 'computeCapability'> & {
  model: string;
  computeCapability?: number;
  flashAttn: boolean;
  json: boolean;
};

const VALUE_FLAGS = [
  '--model',
  '--vram',
  '--slots',
  '--ctx',
  '--kv',
  '--ubatch',
  '--ngl',
  '--cc',
  '--overhead',
] as const;
type ValueFlag = (typeof VALUE_FLAGS)[number];

function isValueFlag(flag: string): flag is ValueFlag {
  return (VALUE_FLAGS as readonly string[]).includes(flag);
}

function intArg(flag: string, text: string, min: number): number {
  if (!/^-?\d+$/.test(text.trim())) throw new FitUsageError(`${flag}: '${text}' is not an integer`);
  const n = Number(text);
  if (!Number.isSafeInteger(n) || n < min)
    throw new FitUsageError(`${flag}: must be an integer >= ${min} (got ${text})`);
  return n;
}

/** Parses the fit command's arguments; throws FitUsageError naming the flag. */
export function parseFitArgs(argv: readonly string[]): FitCliArgs {
  const values = new Map<ValueFlag, string>();
  let json = false;
  let flashAttn = true;
  for (let i = 0; i < argv.length; i++) {
    const raw = argv[i] ?? '';
    const eq = raw.indexOf('=');
    const flag = raw.startsWith('--') && eq > 0 ? raw.slice(0, eq) : raw;
    if (flag === '--json') json = true;
    else if (flag === '--no-flash-attn') flashAttn = false;
    else if (isValueFlag(flag)) {
      const value = eq > 0 && raw.startsWith('--') ? raw.slice(eq + 1) : argv[++i];
      if (value === undefined || (value.startsWith('--') && eq < 0)) throw new FitUsageError(`${flag}: needs a value`);
      if (values.has(flag)) throw new FitUsageError(`${flag}: given twice`);
      values.set(flag, value);
    } else {
      throw new FitUsageError(`unknown argument '${raw}'`);
    }
  }
  const model = values.get('--model');
  if (model === undefined || model === '') throw new FitUsageError('--model: required (a GGUF file)');
  const vram = values.get('--vram');
  if (vram === undefined) throw new FitUsageError('--vram: required (e.g. --vram 1GiB)');
  const size = (flag: ValueFlag, text: string): number => {
    try {
      return parseSize(text);
    } catch (err) {
      throw new FitUsageError(`${flag}: ${(err as Error).message}`);
    }
  };
  const args: FitCliArgs = { model, vramBytes: size('--vram', vram), flashAttn, json };
  const slots = values.get('--slots');
  if (slots !== undefined) args.slots = intArg('--slots', slots, 1);
  const ctx = values.get('--ctx');
  if (ctx !== undefined) args.ctxPerSlot = intArg('--ctx', ctx, 16);
  const kv = values.get('--kv');
  if (kv !== undefined) {
    if (!(KV_TYPES as readonly string[]).includes(kv))
      throw new FitUsageError(`--kv: '${kv}' is not one of ${KV_TYPES.join(', ')}`);
    args.kvType = kv as KvType;
  }
  if (args.kvType === 'q8_0' && !flashAttn)
    throw new FitUsageError('--kv: q8_0 needs flash attention (drop --no-flash-attn)');
  const ubatch = values.get('--ubatch');
  if (ubatch !== undefined) args.ubatch = intArg('--ubatch', ubatch, 1);
  const ngl = values.get('--ngl');
  if (ngl !== undefined) args.gpuLayers = intArg('--ngl', ngl, -1);
  const cc = values.get('--cc');
  if (cc !== undefined) {
    try {
      args.computeCapability = parseComputeCapability(cc);
    } catch (err) {
      throw new FitUsageError(`--cc: ${(err as Error).message}`);
    }
  }
  const overhead = values.get('--overhead');
  if (overhead !== undefined) args.cudaOverheadBytes = /^\s*0+\s*$/.test(overhead) ? 0 : size('--overhead', overhead);
  return args;
}

function planOptions(model: ModelInfo, a: FitCliArgs): PlanFitOptions {
  const { model: _path, json: _json, ...options } = a;
  return { ...options, model };
}

/** The result as JSON: settings, flags, the itemized table in bytes and MiB, totals and notes. */
export function fitResultJson(result: FitResult): unknown {
  const e = result.fits ? result.estimate : result.smallest.estimate;
  const round = (bytes: number): number => Math.round((bytes / MIB) * 100) / 100;
  return {
    fits: result.fits,
    model: result.model,
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
  if (argv.includes('--help') || argv.includes('-h')) {
    stdout.write(FIT_USAGE);
    return 0;
  }
  let args: FitCliArgs;
  try {
    args = parseFitArgs(argv);
  } catch (err) {
    if (!(err instanceof FitUsageError)) throw err;
    stderr.write(`fit: ${err.message}\n\n${FIT_USAGE}`);
    return 2;
  }
  let model: ModelInfo;
  try {
    model = await readModelInfo(args.model);
  } catch (err) {
    if (!(err instanceof ModelFileError)) throw err;
    stderr.write(`fit: --model: ${err.message}\n`);
    return 2;
  }
  let result: FitResult;
  try {
    result = planFit(planOptions(model, args));
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
