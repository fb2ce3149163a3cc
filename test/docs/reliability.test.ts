// docs/RELIABILITY.md's limits table is the flags' own: its defaults are what `npm start` runs with, each flag sets
// the limit its row names, and every limit of src/server/limits.ts has a row.
import { readFile } from 'node:fs/promises';
import t from 'tap';
import { unpadTables } from '../../src/docs/compat-doc.ts';
import { LIMIT_ROWS, RELIABILITY_DOC, rowDefault, withLimitsTable } from '../../src/docs/limits-doc.ts';
import { defaultServeConfig, parseServeConfig } from '../../src/entry/config/index.ts';
import { serverOptionsOf } from '../../src/entry/server-options.ts';
import { DEFAULT_CONNECTION_LIMITS, DEFAULT_REQUEST_LIMITS } from '../../src/server/limits.ts';
import { DEFAULT_BODY_LIMIT_BYTES, type ServerOptions } from '../../src/server/options.ts';

const inputs = { chatTemplate: undefined, grammar: undefined, apiKeys: [] };
const facts = { ctxPerSlot: 1024, buildInfo: 'test' };

/** The server's limits as one flat record: body limit, request limits, connection limits, timeout, queue. */
function limitsOf(argv: string[]): Record<string, number> {
  const serve = parseServeConfig(argv, {});
  const c: ServerOptions = serverOptionsOf(serve, inputs, facts);
  return {
    bodyLimitBytes: c.bodyLimitBytes ?? -1,
    ...c.limits,
    ...c.connections,
    requestTimeoutMs: c.requestTimeoutMs ?? -1,
    maxQueue: serve.maxQueue,
  };
}

t.test(
  'the limits table in docs/RELIABILITY.md matches the flags (npm run docs:reliability rewrites it)',
  async (t) => {
    const doc = await readFile(RELIABILITY_DOC, 'utf8');
    t.equal(unpadTables(doc), unpadTables(withLimitsTable(doc)));
    t.match(unpadTables(doc), '|request body|1 MiB (1048576 bytes)|`--body-limit`|413 `request_too_large`|');
  },
);

t.test("the CLI's defaults are the library's (src/server/limits.ts, src/server/options.ts)", async (t) => {
  const c = serverOptionsOf(defaultServeConfig(), inputs, facts);
  t.same(c.limits, DEFAULT_REQUEST_LIMITS);
  t.same(c.connections, DEFAULT_CONNECTION_LIMITS);
  t.equal(c.bodyLimitBytes, DEFAULT_BODY_LIMIT_BYTES);
});

t.test("each row's flag sets its limit, and every limit has a row", async (t) => {
  const base = limitsOf([]);
  const covered = new Set<string>();
  for (const row of LIMIT_ROWS) {
    if (row.key === null) continue;
    const flag = row.flag.split(', ').at(-1) as string;
    const value = rowDefault(row) + 1;
    const serve = parseServeConfig([flag, String(value)], {});
    t.equal(serve[row.key], value, `${flag} sets ${row.key}`);
    const changed = Object.entries(limitsOf([flag, String(value)]))
      .filter(([k, v]) => base[k] !== v)
      .map(([k]) => k);
    t.equal(changed.length, 1, `${flag} changes one limit of the server (${changed.join(', ')})`);
    for (const k of changed) covered.add(k);
  }
  t.same([...covered].sort(), Object.keys(base).sort(), 'no limit without a row');
});
