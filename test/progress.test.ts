import { Writable } from 'node:stream';
import t from 'tap';
import { createProgress } from '../src/progress.ts';

class Capture extends Writable {
  text = '';
  isTTY: boolean;
  columns = 80;
  constructor(isTTY: boolean) {
    super();
    this.isTTY = isTTY;
  }
  override _write(chunk: Buffer, _encoding: BufferEncoding, done: () => void): void {
    this.text += chunk.toString();
    done();
  }
}

const stream = (isTTY: boolean): Capture & NodeJS.WriteStream => new Capture(isTTY) as Capture & NodeJS.WriteStream;

t.test('not a TTY: one line per 10% step', async (t) => {
  const out = stream(false);
  const progress = createProgress('loading', { stream: out });
  for (let i = 0; i <= 100; i++) progress.update(i / 100, 'model.gguf');
  progress.update(2); // clamped; 100% is left to done()
  progress.done('ok');
  progress.done('twice');
  const lines = out.text.trimEnd().split('\n');
  t.equal(lines.length, 11);
  t.match(lines[0], /^loading: 0% \([\d.]+s\) model\.gguf$/);
  t.match(lines[9], /^loading: 90% /);
  t.match(lines[10], /^loading: done in [\d.]+s ok$/);
});

t.test('TTY: a redrawn bar, throttled, ending with a newline', async (t) => {
  const out = stream(true);
  const progress = createProgress('quantizing', { stream: out });
  for (let i = 0; i <= 1000; i++) progress.update(i / 1000);
  progress.done('done');
  const draws = out.text.split('\r').filter(Boolean);
  t.ok(draws.length >= 2 && draws.length < 10, `throttled to ${draws.length} draws`);
  t.match(draws[0], /quantizing \[-+\]\s+0% [\d.]+s/);
  t.match(draws.at(-1), /quantizing \[#{24}\] 100% [\d.]+s done\n$/);
  t.notMatch(out.text.slice(0, -1), /\n/, 'a single line');
});
