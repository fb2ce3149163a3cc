// `npm run bench:decoder`: prefill and decode throughput of our BatchDecoder (through the addon, as the
// server uses it) beside llama.cpp's llama-batched-bench built from the same tree with the same flags
// and threads. Same workload on both: N sequences of P random prompt tokens, then G tokens each,
// all N decoding together (batched-bench's PP and TG).
import { spawn } from 'node:child_process';
import { availableParallelism } from 'node:os';
import { BatchDecoder, Model } from '../engine/index.ts';
import { type Command, readCommandLine } from '../flags/command.ts';
import { type FlagSpec, parseFlags } from '../flags/parse.ts';
import { ensureLlamaTool } from './llama-tools.ts';

export interface DecoderBenchOptions {
  model: string;
  slots: number[];
  promptTokens: number;
  genTokens: number;
  threads: number;
  batch: number;
  ubatch: number;
  repeat: number;
  llama: boolean;
  /** -1: all layers on the GPU (both sides). */
  gpuLayers: number;
  /** One KV pool for all sequences (the server's default), on both sides (batched-bench's -kvu). */
  kvUnified: boolean;
}

export interface ThroughputRow {
  slots: number;
  prefillTokensPerSecond: number;
  decodeTokensPerSecond: number;
}

export interface DecoderBenchRow {
  slots: number;
  ours: ThroughputRow;
  llama?: ThroughputRow;
  prefillRatio?: number;
  decodeRatio?: number;
}

export type DecoderBenchArgs = DecoderBenchOptions & { json: boolean };

const DECODER_BENCH_FLAGS: readonly FlagSpec<keyof DecoderBenchArgs>[] = [
  { names: ['-m', '--model'], kind: 'string', key: 'model', value: 'FILE', required: true, help: 'GGUF model' },
  {
    names: ['--slots'],
    kind: 'list',
    items: 'int',
    key: 'slots',
    value: 'N,N,...',
    min: 1,
    default: '1,2,4,8',
    help: 'sequences decoding together, one run each',
  },
  {
    names: ['--prompt-tokens'],
    kind: 'int',
    key: 'promptTokens',
    min: 1,
    default: '128',
    help: 'random prompt tokens per sequence (PP)',
  },
  {
    names: ['--gen-tokens'],
    kind: 'int',
    key: 'genTokens',
    min: 1,
    default: '64',
    help: 'tokens generated per sequence (TG)',
  },
  {
    names: ['-t', '--threads'],
    kind: 'int',
    key: 'threads',
    min: 1,
    default: String(availableParallelism()),
    help: 'CPU threads, both sides',
  },
  { names: ['--batch'], kind: 'int', key: 'batch', min: 1, default: '512', help: 'logical batch (n_batch)' },
  { names: ['--ubatch'], kind: 'int', key: 'ubatch', min: 1, default: '512', help: 'physical batch (n_ubatch)' },
  {
    names: ['--gpu-layers'],
    kind: 'int',
    key: 'gpuLayers',
    min: -1,
    default: '-1',
    help: 'layers on the GPU, both sides (-1: all)',
  },
  { names: ['--repeat'], kind: 'int', key: 'repeat', min: 1, default: '1', help: 'runs per row; the best is kept' },
  {
    names: [],
    negated: ['--no-llama'],
    kind: 'bool',
    key: 'llama',
    default: 'true',
    help: 'skip llama-batched-bench (ours only)',
  },
  {
    names: ['-kvu', '--kv-unified'],
    negated: ['-no-kvu', '--no-kv-unified'],
    kind: 'bool',
    key: 'kvUnified',
    default: 'true',
    help: "one KV pool for all sequences on both sides (the server's default; llama-batched-bench's -kvu)",
  },
  { names: ['--json'], kind: 'bool', key: 'json', default: 'false', help: 'machine-readable output' },
];

export const DECODER_BENCH_COMMAND: Command = {
  name: 'bench:decoder',
  synopsis: `Usage: npm run bench:decoder -- --model FILE [options]

Prefill and decode throughput of our BatchDecoder beside llama.cpp's llama-batched-bench on the same workload:
N sequences of P random prompt tokens, then G tokens each, all N decoding together.`,
  flags: DECODER_BENCH_FLAGS,
};

/** Parses bench:decoder's flags; throws a FlagError that names the flag. */
export function parseDecoderBenchArgs(argv: readonly string[]): DecoderBenchArgs {
  return parseFlags(DECODER_BENCH_FLAGS, argv, {}).values as DecoderBenchArgs;
}

/** Random prompt tokens, avoiding the low ids where control tokens live. */
function randomPrompt(n: number, vocab: number, seed: number): number[] {
  let x = seed >>> 0 || 1;
  return Array.from({ length: n }, () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return 300 + ((x >>> 0) % (vocab - 300));
  });
}

async function measureOurs(model: Model, o: DecoderBenchOptions, slots: number): Promise<ThroughputRow> {
  const decoder = new BatchDecoder(model, {
    slots,
    ctxPerSlot: o.promptTokens + o.genTokens + 16,
    kvUnified: o.kvUnified,
    batchSize: Math.max(o.batch, slots),
    ubatchSize: o.ubatch,
    threads: o.threads,
  });
  try {
    // Ban end-of-generation tokens so every sequence runs its full length.
    const logitBias = new Map(model.info.eogTokens.map((t) => [t, -Infinity]));
    const run = async (promptTokens: number, genTokens: number, seed: number) => {
      for (let s = 0; s < slots; s++) {
        decoder.start(s, randomPrompt(promptTokens, model.info.nVocab, seed * 131 + s), {
          maxTokens: genTokens,
          sampling: { logitBias },
        });
      }
      let t0 = performance.now();
      let prefilled = 0;
      while (prefilled < slots * promptTokens) prefilled += (await decoder.step(o.batch)).promptTokens;
      const prefillSeconds = (performance.now() - t0) / 1000;
      t0 = performance.now();
      let generated = 0;
      for (;;) {
        const r = await decoder.step(o.batch);
        if (r.batchTokens === 0) break;
        generated += r.generatedTokens;
      }
      const decodeSeconds = (performance.now() - t0) / 1000;
      for (let s = 0; s < slots; s++) decoder.clear(s);
      return { prefill: (slots * promptTokens) / prefillSeconds, decode: generated / decodeSeconds };
    };
    await run(16, 2, 0); // warm-up, like batched-bench's
    let best = { prefill: 0, decode: 0 };
    for (let k = 0; k < o.repeat; k++) {
      const r = await run(o.promptTokens, o.genTokens, k + 1);
      best = { prefill: Math.max(best.prefill, r.prefill), decode: Math.max(best.decode, r.decode) };
    }
    return { slots, prefillTokensPerSecond: best.prefill, decodeTokensPerSecond: best.decode };
  } finally {
    decoder.dispose();
  }
}

async function measureLlama(o: DecoderBenchOptions): Promise<ThroughputRow[]> {
  const bin = await ensureLlamaTool('llama-batched-bench', (line) =>
    process.stderr.write(`[llama-tools] ${line.slice(0, 160)}\n`),
  );
  const maxSlots = Math.max(...o.slots);
  const args = [
    '-m',
    o.model,
    '-c',
    String(maxSlots * (o.promptTokens + o.genTokens + 16)),
    '-b',
    String(Math.max(o.batch, maxSlots)),
    '-ub',
    String(o.ubatch),
    '-npp',
    String(o.promptTokens),
    '-ntg',
    String(o.genTokens),
    '-npl',
    o.slots.join(','),
    '-t',
    String(o.threads),
    '-tb',
    String(o.threads),
    '-ngl',
    String(o.gpuLayers < 0 ? 999 : o.gpuLayers),
    '--output-format',
    'jsonl',
    ...(o.kvUnified ? ['-kvu'] : []),
  ];
  const best = new Map<number, ThroughputRow>();
  for (let k = 0; k < o.repeat; k++) {
    const out = await new Promise<string>((resolve, reject) => {
      const child = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
      child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
      child.on('close', (code) =>
        code === 0
          ? resolve(stdout + stderr)
          : reject(new Error(`llama-batched-bench failed (${code}):\n${stderr.slice(-3000)}`)),
      );
    });
    for (const line of out.split('\n')) {
      if (!line.startsWith('{')) continue;
      const r = JSON.parse(line) as { pl: number; speed_pp: number; speed_tg: number };
      const prev = best.get(r.pl);
      best.set(r.pl, {
        slots: r.pl,
        prefillTokensPerSecond: Math.max(prev?.prefillTokensPerSecond ?? 0, r.speed_pp),
        decodeTokensPerSecond: Math.max(prev?.decodeTokensPerSecond ?? 0, r.speed_tg),
      });
    }
  }
  return o.slots.map((s) => {
    const row = best.get(s);
    if (!row) throw new Error(`llama-batched-bench printed no result for ${s} sequences`);
    return row;
  });
}

export async function runDecoderBench(o: DecoderBenchOptions): Promise<DecoderBenchRow[]> {
  const model = await Model.load(o.model, { gpuLayers: o.gpuLayers });
  const rows: DecoderBenchRow[] = [];
  try {
    for (const slots of o.slots) rows.push({ slots, ours: await measureOurs(model, o, slots) });
  } finally {
    model.dispose();
  }
  if (o.llama) {
    const theirs = await measureLlama(o);
    rows.forEach((row, k) => {
      const l = theirs[k];
      if (!l) return;
      row.llama = l;
      row.prefillRatio = row.ours.prefillTokensPerSecond / l.prefillTokensPerSecond;
      row.decodeRatio = row.ours.decodeTokensPerSecond / l.decodeTokensPerSecond;
    });
  }
  return rows;
}

export function formatDecoderBench(rows: DecoderBenchRow[], o: DecoderBenchOptions): string {
  const f = (n: number | undefined, d = 1) => (n === undefined ? '-' : n.toFixed(d));
  const lines = [
    `model ${o.model} | prompt ${o.promptTokens} | generate ${o.genTokens} | threads ${o.threads} | batch ${o.batch}/${o.ubatch}`,
    '| slots | prefill t/s ours | prefill t/s llama | ratio | decode t/s ours | decode t/s llama | ratio |',
    '|------:|-----------------:|------------------:|------:|----------------:|-----------------:|------:|',
  ];
  for (const r of rows) {
    lines.push(
      `| ${r.slots} | ${f(r.ours.prefillTokensPerSecond)} | ${f(r.llama?.prefillTokensPerSecond)} | ${f(r.prefillRatio, 3)} | ` +
        `${f(r.ours.decodeTokensPerSecond)} | ${f(r.llama?.decodeTokensPerSecond)} | ${f(r.decodeRatio, 3)} |`,
    );
  }
  return lines.join('\n');
}

export async function runDecoderBenchCli(argv: readonly string[]): Promise<number> {
  const line = readCommandLine(DECODER_BENCH_COMMAND, argv, process, parseDecoderBenchArgs);
  if ('exit' in line) return line.exit;
  const o = line.args;
  const rows = await runDecoderBench(o);
  process.stdout.write(
    o.json ? `${JSON.stringify({ options: o, rows }, null, 2)}\n` : `${formatDecoderBench(rows, o)}\n`,
  );
  return 0;
}
