import t from 'tap';
import { FlagError, type FlagSpec, flagTable, flagUsage, parseFlags } from '../../src/flags/parse.ts';

type Key = 'model' | 'slots' | 'rate' | 'seed' | 'fast' | 'json' | 'tags' | 'size';

const FLAGS: readonly FlagSpec<Key>[] = [
  { names: ['-m', '--model'], kind: 'string', key: 'model', value: 'FILE', required: true, help: 'the model' },
  {
    names: ['--slots'],
    kind: 'list',
    items: 'int',
    key: 'slots',
    min: 1,
    default: '1,2',
    help: 'slot counts',
  },
  { names: ['--rate'], kind: 'float', key: 'rate', above: 0, help: 'requests/s' },
  { names: ['--seed'], kind: 'int', key: 'seed', min: 0, max: 9, default: '1', help: 'seed' },
  { names: [], negated: ['--no-fast'], kind: 'bool', key: 'fast', default: 'true', help: 'slow' },
  { names: ['--json'], kind: 'bool', key: 'json', default: 'false', help: 'JSON out', group: 'output' },
  { names: ['--tag'], kind: 'string', key: 'tags', repeatable: true, parse: (v) => [v], help: 'a tag' },
  { names: ['--size'], kind: 'size', key: 'size', help: 'a size', env: 'TEST_SIZE' },
];

const parse = (argv: string[], options = {}) => parseFlags(FLAGS, argv, {}, options);
const error = (argv: string[], options = {}): string => {
  try {
    parse(argv, options);
  } catch (err) {
    if (err instanceof FlagError) return err.message;
    throw err;
  }
  return '(parsed)';
};

t.test('defaults are converted as if typed, and are not explicit', async (t) => {
  const { values, explicit } = parse(['-m', 'x.gguf']);
  t.same(values, { model: 'x.gguf', slots: [1, 2], seed: 1, fast: true, json: false });
  t.same([...explicit], ['model']);
  const given = parse(['--model=y', '--slots', '4, 8', '--seed', '0', '--no-fast', '--json', '--rate', '0.5']);
  t.same(given.values, { model: 'y', slots: [4, 8], seed: 0, fast: false, json: true, rate: 0.5 });
  t.same([...given.explicit].sort(), ['fast', 'json', 'model', 'rate', 'seed', 'slots']);
  t.throws(
    () => parseFlags([{ names: ['--n'], kind: 'int', key: 'n', min: 1, default: '0', help: '' }], [], {}),
    /the default of --n must be at least 1, got 0/,
    'a default obeys the limits too',
  );
});

t.test('required: given by a flag or the environment', async (t) => {
  t.equal(error([]), '--model is required');
  const env = parseFlags([{ names: ['--m'], kind: 'string', key: 'm', env: 'M', required: true, help: '' }], [], {
    M: 'from-env',
  });
  t.same(env.values, { m: 'from-env' });
});

t.test('numbers: above, list items, limits', async (t) => {
  t.equal(error(['-m', 'x', '--rate', '0']), '--rate must be greater than 0, got 0');
  t.equal(error(['-m', 'x', '--rate', '-2']), '--rate must be greater than 0, got -2');
  t.equal(error(['-m', 'x', '--slots', '1,0']), '--slots must be at least 1, got 0');
  t.equal(error(['-m', 'x', '--slots', '1,two']), "--slots must be an integer, got 'two'");
  t.equal(error(['-m', 'x', '--slots', ',']), '--slots needs a comma-separated list');
  t.equal(error(['-m', 'x', '--seed', '10']), '--seed must be between 0 and 9, got 10');
  t.equal(
    error(['-m', 'x', '--size', '1Q']),
    "--size: '1Q' is not a size (like 1GiB, 1024MiB, 1G, 900M or a number of bytes)",
  );
});

t.test('a missing value: nothing typed, or the next argument is one of the flags', async (t) => {
  t.equal(error(['-m']), '-m needs a value');
  t.equal(error(['--model=']), '--model needs a value');
  t.equal(error(['-m', 'x', '--seed', '']), '--seed needs a value');
  t.equal(error(['--model', '--seed', '2']), '--model needs a value');
  t.equal(error(['--model', '--json']), '--model needs a value', 'a switch counts too');
  t.equal(error(['-m', 'x', '--slots', '--no-fast']), '--slots needs a value', 'a negated spelling counts too');
  t.same(parse(['--model', '-x.gguf']).values.model, '-x.gguf', 'a value that is no flag of these is taken');
  t.same(parse(['--model', '--unknown']).values.model, '--unknown');
});

t.test('once: a flag given twice is an error; repeatable flags and lists still add up', async (t) => {
  t.same(parse(['-m', 'a', '--model', 'b']).values.model, 'b', 'by default the last one wins');
  t.equal(error(['-m', 'a', '--model', 'b'], { once: true }), '--model is given twice');
  const r = parse(['-m', 'a', '--tag', 'x', '--tag', 'y', '--slots', '1', '--slots', '2'], { once: true });
  t.same(r.values.tags, ['x', 'y']);
  t.same(r.values.slots, [1, 2]);
  const env = parseFlags(FLAGS, ['-m', 'a', '--size', '2K'], { TEST_SIZE: '1K' }, { once: true });
  t.equal(env.values.size, 2048, 'the environment and a flag are not twice');
});

t.test('passUnknown: everything not ours stays in order in rest', async (t) => {
  const r = parse(['-np', '2', '--model', 'm', '--frob=1', 'pos', '--seed', '3', '-c', '4096'], { passUnknown: true });
  t.same(r.rest, ['-np', '2', '--frob=1', 'pos', '-c', '4096']);
  t.same([r.values.model, r.values.seed], ['m', 3]);
  t.equal(error(['-m', 'x', '--frob']), "unknown option '--frob' (see --help)");
  t.equal(error(['-m', 'x', 'pos']), "unexpected argument 'pos' (see --help)");
  t.same(parse(['-m', 'x', 'a', 'b'], { positional: true }).positional, ['a', 'b']);
});

t.test('FlagError is named for what it is', async (t) => {
  t.throws(() => parse([]), FlagError);
  t.throws(() => parse([]), { name: 'FlagError' });
});

t.test('flagUsage: placeholders, defaults, sections, a column as wide as the names, the footer', async (t) => {
  const usage = flagUsage(FLAGS, 'Usage: test [options]', 'Exit status: 0.');
  t.equal(
    usage,
    `Usage: test [options]

----- options -----

  -m, --model FILE  the model
  --slots VALUE     slot counts (default 1,2)
  --rate VALUE      requests/s
  --seed N          seed (default 1)
  --no-fast         slow
  --tag VALUE       a tag
  --size SIZE       a size [env TEST_SIZE]

----- output -----

  --json            JSON out

Exit status: 0.
`,
  );
  t.notOk(flagUsage(FLAGS, 'h').includes('Exit'), 'no footer');
  t.match(flagTable(FLAGS), /\| options \| `--no-fast` \| {2}\| slow \|/);
});
