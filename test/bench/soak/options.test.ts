// `npm run soak` flags: the defaults the docs quote, every flag read, and bad ones refused naming the flag.
import t from 'tap';
import { parseSoakArgs } from '../../../src/bench/soak/options.ts';
import { FlagError } from '../../../src/flags/parse.ts';

t.test('defaults: 30 minutes, 12 clients, a server of 4 slots and a queue of 4', async (t) => {
  t.same(parseSoakArgs([]), {
    url: null,
    model: null,
    minutes: 30,
    warmupMinutes: null,
    concurrency: 12,
    parallel: 4,
    maxQueue: 4,
    ctxSize: 2048,
    maxTokens: 48,
    sampleSeconds: 5,
    maxRssGrowthPercent: 5,
    apiKey: null,
    jsonFile: null,
    seed: 1,
  });
});

t.test('every flag', async (t) => {
  const o = parseSoakArgs(
    '--url http://127.0.0.1:9000/ --minutes 0.5 --warmup-minutes 0.1 --concurrency 3 -np 2 --max-queue 1 -c 512 --max-tokens 8 --sample-seconds 1 --max-rss-growth 20 --api-key k --json out.json --seed 7'.split(
      ' ',
    ),
  );
  t.match(o, {
    url: 'http://127.0.0.1:9000',
    minutes: 0.5,
    warmupMinutes: 0.1,
    concurrency: 3,
    parallel: 2,
    maxQueue: 1,
    ctxSize: 512,
    maxTokens: 8,
    sampleSeconds: 1,
    maxRssGrowthPercent: 20,
    apiKey: 'k',
    jsonFile: 'out.json',
    seed: 7,
  });
});

t.test('bad flags name themselves', async (t) => {
  t.throws(() => parseSoakArgs(['--minutes', '0']), FlagError);
  t.throws(() => parseSoakArgs(['--minutes', '0']), /--minutes/);
  t.throws(() => parseSoakArgs(['--concurrency', '0']), /--concurrency/);
  t.throws(() => parseSoakArgs(['--url', 'http://x', '--model', 'm.gguf']), /--url and --model/);
  t.throws(() => parseSoakArgs(['--minutes', '2', '--warmup-minutes', '2']), /--warmup-minutes \(2\) must be shorter/);
  t.throws(() => parseSoakArgs(['--nope']), /--nope/);
});
