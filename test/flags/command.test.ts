import { Writable } from 'node:stream';
import t from 'tap';
import { type Command, commandUsage, readCommandLine } from '../../src/flags/command.ts';
import { FlagError, parseFlags } from '../../src/flags/parse.ts';

class Capture extends Writable {
  text = '';
  override _write(chunk: Buffer, _encoding: BufferEncoding, done: () => void): void {
    this.text += chunk.toString();
    done();
  }
}

const COMMAND: Command<'n'> = {
  name: 'demo',
  synopsis: 'Usage: demo --n N',
  footer: 'Exit status: 0 ok, 2 bad arguments.',
  flags: [{ names: ['--n'], kind: 'int', key: 'n', min: 1, required: true, help: 'how many' }],
};

function parseDemo(argv: readonly string[]): { n: number } {
  const { n } = parseFlags(COMMAND.flags, argv, {}).values as { n: number };
  if (n === 13) throw new FlagError('--n must not be 13');
  if (n === 99) throw new TypeError('a bug, not a bad flag');
  return { n };
}

function read(argv: string[]) {
  const io = { stdout: new Capture(), stderr: new Capture() };
  return { result: readCommandLine(COMMAND, argv, io, parseDemo), ...io };
}

t.test('the usage is generated from the table, with the help flag and the footer', async (t) => {
  t.equal(
    commandUsage(COMMAND),
    'Usage: demo --n N\n\n----- options -----\n\n  --n N       how many\n  -h, --help  show this help\n\nExit status: 0 ok, 2 bad arguments.\n',
  );
});

t.test('-h and --help print the usage on stdout and exit 0, whatever else is there', async (t) => {
  for (const argv of [['--help'], ['-h'], ['--n', 'x', '--help']]) {
    const r = read(argv);
    t.same(r.result, { exit: 0 }, argv.join(' '));
    t.equal(r.stdout.text, commandUsage(COMMAND));
    t.equal(r.stderr.text, '');
  }
});

t.test('a bad flag: the error naming it and the usage on stderr, exit 2', async (t) => {
  for (const [argv, message] of [
    [['--n', '0'], '--n must be at least 1, got 0'],
    [[], '--n is required'],
    [['--n', '13'], '--n must not be 13'],
    [['--m', '1'], "unknown option '--m' (see --help)"],
  ] as const) {
    const r = read([...argv]);
    t.same(r.result, { exit: 2 }, argv.join(' '));
    t.equal(r.stderr.text, `demo: ${message}\n\n${commandUsage(COMMAND)}`);
    t.equal(r.stdout.text, '');
  }
});

t.test('a good command line comes back parsed; other errors are not swallowed', async (t) => {
  t.same(read(['--n', '3']).result, { args: { n: 3 } });
  t.throws(() => read(['--n', '99']), TypeError);
});
