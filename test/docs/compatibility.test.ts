// docs/COMPATIBILITY.md's flag table is the flag definitions' own: adding a flag without regenerating it fails.
import { readFile } from 'node:fs/promises';
import t from 'tap';
import { COMPAT_DOC, unpadTables, withFlagTable } from '../../src/docs/compat-doc.ts';

t.test('the flag table in docs/COMPATIBILITY.md matches the flags (npm run docs:compat rewrites it)', async (t) => {
  const doc = await readFile(COMPAT_DOC, 'utf8');
  t.equal(unpadTables(doc), unpadTables(withFlagTable(doc)));
  t.match(unpadTables(doc), '|sampling params|`--temp`, `--temperature`||temperature (default 0.8)|');
});
