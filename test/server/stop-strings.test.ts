import t from 'tap';
import { StopMatcher } from '../../src/server/stop-strings.ts';

/** Feeds pieces; returns what was released, the stop that matched, and what flush() gives at the end. */
function feed(stops: string[], pieces: string[]): { out: string; stop: string | null; perPiece: string[] } {
  const m = new StopMatcher(stops);
  let out = '';
  let stop: string | null = null;
  const perPiece: string[] = [];
  for (const p of pieces) {
    const r = m.push(p);
    perPiece.push(r.text);
    out += r.text;
    if (r.stop !== null) stop = r.stop;
  }
  if (stop === null) out += m.flush();
  return { out, stop, perPiece };
}

t.test('no stop strings: text passes through piece by piece', async (t) => {
  const r = feed([], ['a', 'b', 'c']);
  t.same(r.perPiece, ['a', 'b', 'c']);
  t.equal(r.stop, null);
});

t.test('a stop inside one piece cuts the text before it', async (t) => {
  const r = feed(['END'], ['hello END world']);
  t.equal(r.out, 'hello ');
  t.equal(r.stop, 'END');
});

t.test('a stop split across pieces never leaks, and the text before it is complete', async (t) => {
  const r = feed(['STOP'], ['abc S', 'T', 'O', 'P and more']);
  t.equal(r.out, 'abc ');
  t.equal(r.stop, 'STOP');
  t.same(r.perPiece, ['abc ', '', '', ''], 'the partial S, T, O were held back');
});

t.test('a partial match that fails is released, nothing is lost', async (t) => {
  const r = feed(['STOP'], ['ab ST', 'OX', 'Y']);
  t.same(r.perPiece, ['ab ', 'STOX', 'Y']);
  t.equal(r.out, 'ab STOXY');
  t.equal(r.stop, null);
});

t.test('held-back text is released by flush() when generation ends', async (t) => {
  const m = new StopMatcher(['STOP']);
  t.same(m.push('the end ST'), { text: 'the end ', stop: null });
  t.equal(m.pending, 'ST');
  t.equal(m.flush(), 'ST');
  t.equal(m.flush(), '', 'flush empties');
});

t.test('overlapping candidates: the held tail restarts inside a failed match', async (t) => {
  // "aab" fails at "aaa" for stop "aab" but the last two a's may still start it.
  const r = feed(['aab'], ['a', 'a', 'a', 'b']);
  t.equal(r.out, 'a');
  t.equal(r.stop, 'aab');
  const r2 = feed(['abab'], ['ab', 'a', 'c', 'abab']);
  t.equal(r2.out, 'abac');
  t.equal(r2.stop, 'abab');
});

t.test('several stop strings: the first to complete wins', async (t) => {
  const r = feed(['world', 'lo w'], ['hello world']);
  t.equal(r.out, 'hel');
  t.equal(r.stop, 'lo w');
  const r2 = feed(['xyz', 'b'], ['ab', 'xyz']);
  t.equal(r2.out, 'a');
  t.equal(r2.stop, 'b');
  const r3 = feed(['abcd', 'bc'], ['ab', 'cd']);
  t.equal(r3.out, 'a', '"bc" completes before "abcd" could');
  t.equal(r3.stop, 'bc');
});

t.test('the hold-back is bounded by the longest stop string', async (t) => {
  const m = new StopMatcher(['\n\n', 'User:']);
  t.same(m.push('Hello Us'), { text: 'Hello ', stop: null });
  t.same(m.push('ually'), { text: 'Usually', stop: null });
  t.same(m.push('\n'), { text: '', stop: null });
  t.same(m.push('x'), { text: '\nx', stop: null });
  t.same(m.push('\n'), { text: '', stop: null });
  t.same(m.push('\nmore'), { text: '', stop: '\n\n' });
});

t.test('a stop at the very start gives empty text', async (t) => {
  const r = feed(['Hi'], ['H', 'i there']);
  t.equal(r.out, '');
  t.equal(r.stop, 'Hi');
});

t.test('after a match everything is swallowed', async (t) => {
  const m = new StopMatcher(['x']);
  t.same(m.push('ax'), { text: 'a', stop: 'x' });
  t.same(m.push('more'), { text: '', stop: null });
  t.equal(m.flush(), '');
  t.equal(m.stopped, 'x');
});

t.test('multi-byte characters and emoji split across tokens', async (t) => {
  const r = feed(['😀!'], ['ok ', '😀', '!', 'no']);
  t.equal(r.out, 'ok ');
  t.equal(r.stop, '😀!');
  const r2 = feed(['日本'], ['今日', 'は日', '本語']);
  t.equal(r2.out, '今日は');
});

t.test('empty and duplicate stop strings are ignored', async (t) => {
  const m = new StopMatcher(['', 'a', 'a']);
  t.same(m.push('bab'), { text: 'b', stop: 'a' });
  const only = new StopMatcher(['']);
  t.same(only.push('abc'), { text: 'abc', stop: null });
});

t.test('property: released text + match equals the plain search over the whole text', async (t) => {
  let seed = 7;
  const rand = (n: number): number => {
    seed = (seed * 1103515245 + 12345) >>> 0;
    return seed % n;
  };
  const alphabet = 'abc ';
  for (let trial = 0; trial < 500; trial++) {
    const text = Array.from({ length: 1 + rand(30) }, () => alphabet[rand(alphabet.length)]).join('');
    const stops = Array.from({ length: 1 + rand(3) }, () =>
      Array.from({ length: 1 + rand(4) }, () => alphabet[rand(3)]).join(''),
    );
    const pieces: string[] = [];
    for (let i = 0; i < text.length; ) {
      const n = 1 + rand(4);
      pieces.push(text.slice(i, i + n));
      i += n;
    }
    // Reference: the first match to end (ties: the one starting first), over the whole text.
    let first = -1;
    let end = Infinity;
    for (const s of stops) {
      const i = text.indexOf(s);
      if (i >= 0 && (i + s.length < end || (i + s.length === end && i < first))) [first, end] = [i, i + s.length];
    }
    const expected = first >= 0 ? text.slice(0, first) : text;
    const r = feed(stops, pieces);
    const byChar = feed(stops, [...text]);
    if (r.out !== expected || first >= 0 !== (r.stop !== null) || byChar.out !== r.out || byChar.stop !== r.stop) {
      t.fail(
        `text ${JSON.stringify(text)} stops ${JSON.stringify(stops)} pieces ${JSON.stringify(pieces)}: got ${JSON.stringify(r.out)}`,
      );
      return;
    }
    for (const s of stops) {
      if (r.out.includes(s)) t.fail(`stop ${s} leaked into ${r.out}`);
    }
  }
  t.pass('500 random cases agree with the whole-text search and with one character at a time');
});
