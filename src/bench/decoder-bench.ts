// `npm run bench:decoder`: prefill and decode throughput of our BatchDecoder (through the addon, as the
// server uses it) beside llama.cpp's llama-batched-bench built from the same tree with the same flags
// and threads. Same workload on both: N sequences of P random prompt tokens, then G tokens each,
// all N decoding together (batched-bench's PP and TG).
import { spawn } from 'node:child_process';
import { availableParallelism } from 'node:os';
import { parseArgs } from 'node:util';
import { BatchDecoder, Model } from '../engine/index.ts';
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

export const DECODER_BENCH_USAGE = `Usage: npm run bench:decoder -- --model FILE [--slots 1,2,4,8] [--prompt-tokens 128] [--gen-tokens 64]
       [--threads N] [--batch 512] [--ubatch 512] [--gpu-layers -1] [--repeat 1] [--no-llama] [--json]`;

function positiveInt(name: string, value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new Error(`--${name} must be a positive integer, got '${value}'`);
  return n;
}

function gpuLayersArg(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < -1) throw new Error(`--gpu-layers must be an integer >= -1, got '${value}'`);
  return n;
}

export function parseDecoderBenchArgs(argv: readonly string[]): DecoderBenchOptions & { json: boolean } {
  const { values } = parseArgs({
    args: [...argv],
    options: {
      model: { type: 'string', short: 'm' },
      slots: { type: 'string' },
      'prompt-tokens': { type: 'string' },
      'gen-tokens': { type: 'string' },
      threads: { type: 'string', short: 't' },
      batch: { type: 'string' },
      ubatch: { type: 'string' },
      repeat: { type: 'string' },
      'gpu-layers': { type: 'string' },
      'no-llama': { type: 'boolean' },
      json: { type: 'boolean' },
    },
    strict: true,
  });
  if (!values.model) throw new Error('--model FILE is required');
  const slots = (values.slots ?? '1,2,4,8').split(',').map((s) => positiveInt('slots', s.trim(), 1));
  return {
    model: values.model,
    slots,
    promptTokens: positiveInt('prompt-tokens', values['prompt-tokens'], 128),
    genTokens: positiveInt('gen-tokens', values['gen-tokens'], 64),
    threads: positiveInt('threads', values.threads, availableParallelism()),
    batch: positiveInt('batch', values.batch, 512),
    ubatch: positiveInt('ubatch', values.ubatch, 512),
    repeat: positiveInt('repeat', values.repeat, 1),
    llama: !values['no-llama'],
    gpuLayers: values['gpu-layers'] === undefined ? -1 : gpuLayersArg(values['gpu-layers']),
    json: values.json ?? false,
  };
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
          logitBias,
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
  let o: ReturnType<typeof parseDecoderBenchArgs>;
  try {
    o = parseDecoderBenchArgs(argv);
  } catch (err) {
    process.stderr.write(`bench:decoder: ${(err as Error).message}\n${DECODER_BENCH_USAGE}\n`);
    return 2;
  }
  const rows = await runDecoderBench(o);
  process.stdout.write(
    o.json ? `${JSON.stringify({ options: o, rows }, null, 2)}\n` : `${formatDecoderBench(rows, o)}\n`,
  );
  return 0;
}
