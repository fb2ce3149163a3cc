import t from 'tap';
import { parseEmbedBenchArgs } from '../../src/bench/embed-bench.ts';

t.test('bench:embed flags', async (t) => {
  t.same(parseEmbedBenchArgs([]), { inputs: 256, sequences: 16, tokens: 32, threads: 0 });
  t.match(parseEmbedBenchArgs(['--inputs', '8', '--sequences', '4', '-m', 'x.gguf']), {
    inputs: 8,
    sequences: 4,
    model: 'x.gguf',
  });
  t.throws(() => parseEmbedBenchArgs(['--tokens', '1']), /--tokens must be at least 2, got 1/);
  t.throws(() => parseEmbedBenchArgs(['--input', '4']), /unknown option '--input'/);
});
