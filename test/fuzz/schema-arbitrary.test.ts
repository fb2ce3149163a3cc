import fc from 'fast-check';
import t from 'tap';
import { Value } from 'typebox/value';
import { FUZZ_ROUTES, fuzzRequest } from '../../src/fuzz/requests.ts';
import { arbitraryOf, type JsonSchema } from '../../src/fuzz/schema-arbitrary.ts';
import { MessagesBody } from '../../src/server/messages-api/schema.ts';
import { ResponsesBody } from '../../src/server/responses-api/schema.ts';
import { EmbeddingsBody } from '../../src/server/routes/embeddings.ts';
import { ChatCompletionBody, CompletionBody } from '../../src/server/schemas.ts';

t.test("drawn bodies pass the route's own schema", async (t) => {
  for (const schema of [ChatCompletionBody, CompletionBody, ResponsesBody, MessagesBody, EmbeddingsBody]) {
    const values = fc.sample(arbitraryOf(schema as unknown as JsonSchema), { numRuns: 300, seed: 7 });
    const failing = values.filter((v) => !Value.Check(schema, v));
    t.same(failing.slice(0, 1), [], `${values.length} bodies, all valid`);
    t.ok(
      values.some((v) => Object.keys(v as object).length > 2),
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
  const optional = { type: 'object', properties: { a: { const: 1 }, b: { const: 2 } } };
  const drawn = fc.sample(arbitraryOf(optional, { presence: { a: 'always', b: 2 } }), { numRuns: 400, seed: 1 });
  t.ok(
    drawn.every((v) => (v as { a?: number }).a === 1),
    "presence 'always': drawn as if required",
  );
  const withB = drawn.filter((v) => 'b' in (v as object)).length;
  t.ok(withB > 120 && withB < 280, `presence 2: about one draw in two (${withB} of 400)`);
});

t.test('the storm mixes valid bodies with each kind of mutation, on every route', async (t) => {
  const requests = fc.sample(fuzzRequest({ bodyLimitBytes: 4096 }), { numRuns: 2000, seed: 3 });
  const kinds = new Set(requests.flatMap((r) => r.mutation.split(' ').map((m) => m.split(':')[0] ?? '')));
  for (const kind of ['value', 'bytes', 'type', 'method']) t.ok(kinds.has(kind), `${kind} mutations`);
  t.ok(
    requests.some((r) => r.mutation === 'valid'),
    'some are sent as drawn',
  );
  const key = (r: { server: string; url: string }) => `${r.server} ${r.url}`;
  t.same(new Set(requests.map(key)), new Set(FUZZ_ROUTES.map(key)), 'every route, on both servers');
  t.ok(
    requests
      .filter((r) => r.mutation === 'valid' && r.url !== '/v1/embeddings')
      .some((r) => JSON.parse(r.payload.toString()).stream === true),
    'streams are asked for',
  );
  const generationOnly = fc.sample(fuzzRequest({ bodyLimitBytes: 4096, servers: ['generation'] }), {
    numRuns: 300,
    seed: 3,
  });
  t.ok(
    generationOnly.every((r) => r.server === 'generation'),
    'a target without an embedding server gets no request for one',
  );
  t.ok(
    requests.some((r) => r.mutation.includes('bytes:oversize') && r.payload.length > 4096),
    'oversize is over the limit',
  );
  const invalid = requests.find((r) => r.mutation.includes('bytes:invalid-utf8'));
  t.notOk(invalid && Buffer.from(invalid.payload.toString('utf8')).equals(invalid.payload), 'invalid UTF-8 is invalid');
});
