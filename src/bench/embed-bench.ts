// What batching buys an embedding server: the same inputs embedded one per llama_decode, then packed `--sequences`
// to a call, on the tiny-bert preset (or --model). Prints inputs per second for both. `npm run bench:embed`.

import { Embedder, Model } from '../engine/index.ts';
import { type Command, readCommandLine } from '../flags/command.ts';
import { type FlagSpec, parseFlags } from '../flags/parse.ts';
import { ensureModel } from '../tools/model-cache.ts';

type Key = 'inputs' | 'sequences' | 'tokens' | 'model' | 'threads';

const EMBED_BENCH_FLAGS: readonly FlagSpec<Key>[] = [
  { names: ['--inputs'], kind: 'int', key: 'inputs', min: 1, default: '256', help: 'inputs embedded' },
  { names: ['--sequences'], kind: 'int', key: 'sequences', min: 1, default: '16', help: 'inputs per llama_decode' },
  { names: ['--tokens'], kind: 'int', key: 'tokens', min: 2, default: '32', help: 'tokens per input' },
  { names: ['-m', '--model'], kind: 'string', key: 'model', help: 'an embedding GGUF (default: the tiny-bert preset)' },
  { names: ['-t', '--threads'], kind: 'int', key: 'threads', min: 0, default: '0', help: "threads (0: llama.cpp's)" },
];

export const EMBED_BENCH_COMMAND: Command = {
  name: 'bench:embed',
  synopsis: `Usage: npm run bench:embed -- [--inputs N] [--sequences S] [--tokens T] [-m FILE]

Embedding throughput one input per llama_decode against S inputs per llama_decode.`,
  flags: EMBED_BENCH_FLAGS,
};

interface Args {
  inputs: number;
  sequences: number;
  tokens: number;
  model?: string;
  threads: number;
}

export function parseEmbedBenchArgs(argv: readonly string[]): Args {
  return parseFlags(EMBED_BENCH_FLAGS, argv, {}).values as unknown as Args;
}

async function timed(embedder: Embedder, inputs: Int32Array[], perCall: number): Promise<{ s: number; calls: number }> {
  const t0 = performance.now();
  let calls = 0;
  for (let i = 0; i < inputs.length; i += perCall)
    calls += (await embedder.embed(inputs.slice(i, i + perCall))).decodes;
  return { s: (performance.now() - t0) / 1000, calls };
}

export async function runEmbedBenchCli(argv: string[]): Promise<number> {
  const line = readCommandLine(EMBED_BENCH_COMMAND, argv, process, parseEmbedBenchArgs);
  if ('exit' in line) return line.exit;
  const a = line.args;
  const path = a.model ?? (await ensureModel({ preset: 'tiny-bert', quant: 'F16', seed: 1 }));
  const model = await Model.load(path);
  const embedder = new Embedder(model, {
    sequences: a.sequences,
    batchSize: Math.max(512, a.sequences * a.tokens),
    threads: a.threads,
  });
  const nVocab = model.info.nVocab;
  // Deterministic token ids away from the special tokens at the start of a vocabulary.
  const inputs = Array.from({ length: a.inputs }, (_, i) =>
    Int32Array.from({ length: a.tokens }, (_, k) => 1000 + ((i * 7919 + k * 104729) % (nVocab - 1000))),
  );
  await embedder.embed(inputs.slice(0, a.sequences)); // warm-up
  const one = await timed(embedder, inputs, 1);
  const packed = await timed(embedder, inputs, a.inputs);
  const rate = (r: { s: number }) => (a.inputs / r.s).toFixed(1);
  process.stdout.write(
    `${model.info.description}, ${a.inputs} inputs of ${a.tokens} tokens, pooling ${embedder.info.pooling}\n` +
      `one input per llama_decode:        ${rate(one)} inputs/s (${one.calls} calls, ${one.s.toFixed(3)} s)\n` +
      `${a.sequences} inputs per llama_decode:  ${rate(packed)} inputs/s (${packed.calls} calls, ${packed.s.toFixed(3)} s)\n` +
      `speed-up = one-per-call time / packed time = ${(one.s / packed.s).toFixed(2)}x\n`,
  );
  embedder.dispose();
  model.dispose();
  return 0;
}
