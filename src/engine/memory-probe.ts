// What llama.cpp allocates for a model and a decoder configuration, read from its own report: the
// native probe loads the model and creates the context exactly like BatchDecoder while capturing
// llama.cpp's log, and this module parses the buffer sizes out of it.
import { type DecoderOptions, nativeDecoderOptions } from './batch-decoder.ts';
import { nativeLoadOptions } from './model.ts';
import { awaitNative, loadAddon } from './native.ts';

/** Bytes per buffer type (e.g. "CPU_Mapped", "CUDA0", "CPU"), for each kind of allocation. */
export interface MemoryReport {
  model: Record<string, number>;
  kv: Record<string, number>;
  output: Record<string, number>;
  compute: Record<string, number>;
}

const MIB = 1024 * 1024;
const PATTERNS: Array<[keyof MemoryReport, RegExp]> = [
  ['model', /^load_tensors:\s+(\S+) model buffer size =\s+([\d.]+) MiB/],
  ['kv', /^llama_kv_cache:\s+(\S+) KV buffer size =\s+([\d.]+) MiB/],
  ['output', /^llama_context:\s+(\S+)\s+output buffer size =\s+([\d.]+) MiB/],
  ['compute', /^\w+:\s+(\S+) compute buffer size =\s+([\d.]+) MiB/],
];

export function parseMemoryLog(log: string): MemoryReport {
  const report: MemoryReport = { model: {}, kv: {}, output: {}, compute: {} };
  for (const line of log.split('\n')) {
    for (const [kind, re] of PATTERNS) {
      const m = re.exec(line.trim());
      if (!m?.[1] || !m[2]) continue;
      // A sliding-window model has two KV caches (global and SWA layers): their sizes add up.
      report[kind][m[1]] = (report[kind][m[1]] ?? 0) + Math.round(Number(m[2]) * MIB);
      break;
    }
  }
  return report;
}

export function totalBytes(part: Record<string, number>): number {
  return Object.values(part).reduce((a, b) => a + b, 0);
}

export async function probeMemory(
  path: string,
  options: { gpuLayers?: number; useMmap?: boolean; decoder: DecoderOptions },
): Promise<MemoryReport> {
  const log = await awaitNative(() =>
    loadAddon().probeMemory(path, nativeLoadOptions(options), nativeDecoderOptions(options.decoder)),
  );
  return parseMemoryLog(log);
}
