import fc from 'fast-check';
import t from 'tap';
import { Value } from 'typebox/value';
import { FUZZ_ROUTES, fuzzRequest } from '../../src/fuzz/requests.ts';
import { arbitraryOf, type JsonSchema } from '../../src/fuzz/schema-arbitrary.ts';
import { ChatCompletionBody, CompletionBody } from '../../src/server/schemas.ts';

t.test("drawn bodies pass the route's own schema", async (t) => {
  for (const schema of [ChatCompletionBody, CompletionBody]) {
    const values = fc.sample(arbitraryOf(schema as unknown as JsonSchema), { numRuns: 300, seed: 7 });
    const failing = values.filter((v) => !Value.Check(schema, v));
    t.same(failing.slice(0, 1), [], `${values.length} bodies, all valid`);
    t.ok(
      values.some((v) => Object.keys(v as object).length > 3),
      'optional fields appear',
    );
  }
});

t.test('bounds and shapes are honoured', async (t) => {
  const int = fc.sample(arbitraryOf({ type: 'integer', minimum: -1, maximum: 3 }), { numRuns: 200, seed: 1 });
  t.ok(int.every((n) => Number.isInteger(n) && (n as number) >= -1 && (n as number) <= 3));
  const open = fc.sample(arbitraryOf({ type: 'number', exclusiveMinimum: 0, maximum: 1 }), { numRuns: 200, seed: 1 });
  t.ok(open.every((n) => (n as number) > 0 && (n as number) <= 1));
  const tuple = fc.sample(arbitraryOf({ type: 'array', items: [{ type: 'integer' }, { type: 'boolean' }] }), 20);
  t.ok(tuple.every((v) => Array.isArray(v) && v.length === 2 && typeof v[1] === 'boolean'));
  t.same(fc.sample(arbitraryOf({ const: 'function' }), 3), ['function', 'function', 'function']);
  t.throws(() => arbitraryOf({ type: 'date' }), /no arbitrary for schema type 'date'/);
  const over = fc.sample(
    arbitraryOf(
      { type: 'object', properties: { n: { type: 'integer' } }, required: ['n'] },
      { overrides: { n: fc.constant(5) } },
    ),
    5,
  );
  t.same(
    over,
    Array.from({ length: 5 }, () => ({ n: 5 })),
    'overrides win, required fields are always there',
  );
});

t.test('the storm mixes valid bodies with each kind of mutation, on every route', async (t) => {
  const requests = fc.sample(fuzzRequest({ bodyLimitBytes: 4096 }), { numRuns: 2000, seed: 3 });
  const kinds = new Set(requests.flatMap((r) => r.mutation.split(' ').map((m) => m.split(':')[0] ?? '')));
  for (const kind of ['value', 'bytes', 'type', 'method']) t.ok(kinds.has(kind), `${kind} mutations`);
  t.ok(
    requests.some((r) => r.mutation === 'valid'),
    'some are sent as drawn',
  );
  t.same(new Set(requests.map((r) => r.url)), new Set(FUZZ_ROUTES.map((r) => r.url)));
  t.ok(
    requests.some((r) => r.mutation.includes('bytes:oversize') && r.payload.length > 4096),
    'oversize is over the limit',
  );
  const invalid = requests.find((r) => r.mutation.includes('bytes:invalid-utf8'));
  t.notOk(invalid && Buffer.from(invalid.payload.toString('utf8')).equals(invalid.payload), 'invalid UTF-8 is invalid');
});
