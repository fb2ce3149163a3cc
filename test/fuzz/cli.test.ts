// `npm run fuzz`'s flags: cases, concurrency and seed, with their defaults and bounds.
import t from 'tap';
import { FlagError } from '../../src/flags/parse.ts';
import { parseFuzzArgs } from '../../src/fuzz/cli.ts';

t.test('defaults: 1,000 cases, one at a time, seed 1', async (t) => {
  t.same(parseFuzzArgs([]), { cases: 1000, concurrency: 1, seed: 1 });
});

t.test('--cases, --concurrency, --seed and --json', async (t) => {
  t.same(parseFuzzArgs(['--cases', '10000', '--concurrency', '8', '--seed', '7', '--json', 'f.json']), {
    cases: 10000,
    concurrency: 8,
    seed: 7,
    jsonFile: 'f.json',
  });
});

t.test('a concurrency of 0 or past 256 is refused, naming the flag', async (t) => {
  for (const value of ['0', '257', 'many']) t.throws(() => parseFuzzArgs(['--concurrency', value]), FlagError, value);
  t.throws(() => parseFuzzArgs(['--concurrency', '0']), /--concurrency/);
});
