import t from 'tap';
import { DEFAULT_URL, normalizeBaseUrl, parseLoadgenArgs } from '../../../src/bench/loadgen/options.ts';
import { FlagError } from '../../../src/flags/parse.ts';

t.test('defaults', async (t) => {
  t.same(parseLoadgenArgs([]), {
    url: DEFAULT_URL,
    ranks: 2,
    requests: 10,
    maxTokens: 64,
    promptTokens: 128,
    systemTokens: 0,
    multiTurn: false,
    rate: null,
    apiKey: null,
    model: null,
    jsonFile: null,
    htmlFile: null,
    sloTtftMs: null,
    sloTpotMs: null,
    seed: 1,
    timeoutMs: 600_000,
    mpi: false,
    coordinator: null,
    ranksGiven: false,
  });
});

t.test('every flag', async (t) => {
  const o = parseLoadgenArgs([
    '--url',
    'http://localhost:9000/v1/',
    '--ranks',
    '4',
    '--requests',
    '40',
    '--max-tokens',
    '32',
    '--prompt-tokens',
    '512',
    '--system-tokens',
    '100',
    '--rate',
    '2.5',
    '--api-key',
    'k',
    '--model',
    'm',
    '--json',
    'a.json',
    '--html',
    'a.html',
    '--slo-ttft',
    '500',
    '--slo-tpot',
    '50.5',
    '--seed',
    '0',
    '--timeout',
    '30',
  ]);
  t.same(o, {
    url: 'http://localhost:9000',
    ranks: 4,
    requests: 40,
    maxTokens: 32,
    promptTokens: 512,
    systemTokens: 100,
    multiTurn: false,
    rate: 2.5,
    apiKey: 'k',
    model: 'm',
    jsonFile: 'a.json',
    htmlFile: 'a.html',
    sloTtftMs: 500,
    sloTpotMs: 50.5,
    seed: 0,
    timeoutMs: 30_000,
    mpi: false,
    coordinator: null,
    ranksGiven: true,
  });
});

t.test('bad arguments name their flag', async (t) => {
  const bad: Array<[string[], RegExp]> = [
    [['--ranks', '0'], /--ranks must be at least 1, got 0/],
    [['--ranks', 'two'], /--ranks/],
    [['--requests', '1.5'], /--requests/],
    [['--requests', ''], /--requests/],
    [['--ranks', '3', '--requests', '2'], /--ranks \(3\) must not exceed --requests \(2\)/],
    [['--coordinator', 'node0:1234'], /--coordinator is for --mpi runs/],
    [['--mpi', '--coordinator', ''], /--coordinator needs a value/],
    [['--max-tokens', '-1'], /--max-tokens/],
    [['--prompt-tokens', '0'], /--prompt-tokens/],
    [['--rate', '0'], /--rate must be greater than 0, got 0/],
    [['--rate', 'fast'], /--rate/],
    [['--slo-ttft', '-5'], /--slo-ttft/],
    [['--slo-tpot', 'x'], /--slo-tpot/],
    [['--timeout', '0'], /--timeout/],
    [['--seed', '-1'], /--seed/],
    [['--system-tokens', '-1'], /--system-tokens/],
    [['--multi-turn', '--rate', '2'], /--multi-turn needs the closed loop/],
    [['--seed', '4294967296'], /--seed/],
    [['--url', 'ftp://x'], /--url: must be an http/],
    [['--url', 'not a url'], /--url/],
    [['--url', 'http://h/?q=1'], /--url: must not have a query/],
    [['--api-key', ''], /--api-key needs a value/],
    [['--bogus'], /--bogus/],
    [['--ranks'], /--ranks/],
    [['extra'], /extra/],
  ];
  for (const [argv, message] of bad) {
    t.throws(() => parseLoadgenArgs(argv), message, argv.join(' '));
    t.throws(() => parseLoadgenArgs(argv), FlagError);
  }
});

t.test('base URL: /v1 and trailing slashes are accepted, a path prefix is kept', async (t) => {
  t.equal(normalizeBaseUrl('http://127.0.0.1:8090'), 'http://127.0.0.1:8090');
  t.equal(normalizeBaseUrl('http://127.0.0.1:8090/'), 'http://127.0.0.1:8090');
  t.equal(normalizeBaseUrl('http://127.0.0.1:8090/v1'), 'http://127.0.0.1:8090');
  t.equal(normalizeBaseUrl('https://example.test/llm/v1/'), 'https://example.test/llm');
});
