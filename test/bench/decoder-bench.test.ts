import { availableParallelism } from 'node:os';
import t from 'tap';
import { parseDecoderBenchArgs } from '../../src/bench/decoder-bench.ts';

t.test('defaults, and every flag', async (t) => {
  t.same(parseDecoderBenchArgs(['-m', 'x.gguf']), {
    model: 'x.gguf',
    slots: [1, 2, 4, 8],
    promptTokens: 128,
    genTokens: 64,
    threads: availableParallelism(),
    batch: 512,
    ubatch: 512,
    gpuLayers: -1,
    repeat: 1,
    llama: true,
    kvUnified: true,
    json: false,
  });
  t.match(
    parseDecoderBenchArgs([
      '--model',
      'x',
      '--slots',
      '1,16',
      '-t',
      '3',
      '--gpu-layers',
      '0',
      '--repeat',
      '2',
      '--no-llama',
      '--no-kv-unified',
      '--json',
    ]),
    { slots: [1, 16], threads: 3, gpuLayers: 0, repeat: 2, llama: false, kvUnified: false, json: true },
  );
});

t.test('bad flags name themselves', async (t) => {
  const bad: Array<[string[], RegExp]> = [
    [[], /--model is required/],
    [['-m', 'x', '--slots', '1,0'], /--slots must be at least 1, got 0/],
    [['-m', 'x', '--slots', ''], /--slots needs a comma-separated list/],
    [['-m', 'x', '--gpu-layers', '-2'], /--gpu-layers must be at least -1, got -2/],
    [['-m', 'x', '--batch'], /--batch needs a value/],
  ];
  for (const [argv, message] of bad) t.throws(() => parseDecoderBenchArgs(argv), message, argv.join(' '));
});
