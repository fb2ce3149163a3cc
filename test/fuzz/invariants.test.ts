import t from 'tap';
import { errorShapeProblem, violations } from '../../src/fuzz/invariants.ts';

const ID = { 'x-request-id': 'abc' };
const json = { 'content-type': 'application/json; charset=utf-8', ...ID };
const error = (e: object) => JSON.stringify({ error: e });

t.test('an OpenAI error passes; anything else in its place is named', async (t) => {
  t.same(
    violations({ status: 400, headers: json, body: error({ message: 'm', type: 't', param: null, code: 'c' }) }),
    [],
  );
  t.match(
    violations({ status: 500, headers: json, body: error({ message: 'm', type: 't', param: null, code: null }) }),
    ['status 500'],
  );
  t.match(violations({ status: 400, headers: json, body: '{"error":"text"}' }), [/no error object/]);
  t.match(violations({ status: 400, headers: json, body: error({ message: 'm', type: 't', code: null }) }), [/param/]);
  t.match(
    violations({ status: 400, headers: json, body: error({ message: '', type: 't', param: null, code: null }) }),
    [/message/],
  );
  t.match(violations({ status: 413, headers: json, body: 'Payload Too Large' }), [/not JSON/]);
  t.match(
    violations({
      status: 400,
      headers: { 'content-type': 'text/plain', ...ID },
      body: error({ message: 'm', type: 't', param: null, code: null }),
    }),
    [/content-type/],
  );
  t.equal(errorShapeProblem({ error: { message: 'm', type: 't', param: 'p', code: 'c', extra: 1 } }), null);
});

t.test('every response carries a sane X-Request-Id', async (t) => {
  t.same(violations({ status: 200, headers: { 'x-request-id': 'r-1' }, body: '{}' }), []);
  t.match(violations({ status: 200, headers: {}, body: '{}' }), [/x-request-id/]);
  t.match(violations({ status: 200, headers: { 'x-request-id': 'a b' }, body: '{}' }), [/x-request-id/]);
});

t.test(
  'streams: events are JSON, errors in shape and not server errors, [DONE] last where the route sends it',
  async (t) => {
    const sse = { 'content-type': 'text/event-stream', ...ID };
    t.same(violations({ status: 200, headers: sse, body: 'data: {"a":1}\n\ndata: [DONE]\n\n' }), []);
    t.match(violations({ status: 200, headers: sse, body: 'data: {"a":1}\n\n' }), ['stream does not end with [DONE]']);
    t.same(
      violations({ status: 200, headers: sse, body: 'data: {"a":1}\n\n' }, false),
      [],
      "llama-server's /completion",
    );
    t.match(violations({ status: 200, headers: sse, body: 'data: {oops\n\ndata: [DONE]\n\n' }), [/not JSON/]);
    const serverError = `data: ${error({ message: 'm', type: 'server_error', param: null, code: null })}\n\ndata: [DONE]\n\n`;
    t.match(violations({ status: 200, headers: sse, body: serverError }), ['stream error is a server_error']);
    const timeout = `data: ${error({ message: 'm', type: 'timeout_error', param: null, code: null })}\n\ndata: [DONE]\n\n`;
    t.same(violations({ status: 200, headers: sse, body: timeout }), []);
  },
);
