import t from 'tap';
import { formatMiB, parseSize } from '../../src/util/size.ts';

t.test('binary units: K/M/G and KiB/MiB/GiB', async (t) => {
  t.equal(parseSize('1GiB'), 2 ** 30);
  t.equal(parseSize('1024MiB'), 2 ** 30);
  t.equal(parseSize('1G'), 2 ** 30);
  t.equal(parseSize('900M'), 900 * 2 ** 20);
  t.equal(parseSize('1.5G'), 1.5 * 2 ** 30);
  t.equal(parseSize('512k'), 512 * 1024);
  t.equal(parseSize('2 GiB'), 2 * 2 ** 30);
  t.equal(parseSize('1gib'), 2 ** 30, 'case does not matter');
  t.equal(parseSize('.5G'), 2 ** 29);
});

t.test('plain bytes and decimal units', async (t) => {
  t.equal(parseSize('1073741824'), 2 ** 30);
  t.equal(parseSize('4096B'), 4096);
  t.equal(parseSize('1GB'), 1e9);
  t.equal(parseSize('900MB'), 900e6);
});

t.test('rejects what is not a size', async (t) => {
  for (const bad of ['', 'abc', '1X', '-1G', '0', '0MiB', '1 Gi', 'G', '1e9', '1..5G', 'iB']) {
    t.throws(() => parseSize(bad), RangeError, `'${bad}'`);
  }
});

t.test('formatMiB', async (t) => {
  t.equal(formatMiB(2 ** 30), '1024.00 MiB');
  t.equal(formatMiB(1.5 * 2 ** 20, 1), '1.5 MiB');
});
