// The soak's mix: the storm's valid bodies get a length when they set none (by the field their route reads),
// and nothing else about a request changes; the seeded generator repeats itself.
import t from 'tap';
import { bounded, seeded } from '../../../src/bench/soak/workload.ts';
import type { FuzzRequest } from '../../../src/fuzz/requests.ts';

function req(url: string, payload: Buffer | string): FuzzRequest {
  return {
    server: 'generation',
    method: 'POST',
    url,
    headers: { 'content-type': 'application/json' },
    payload: Buffer.from(payload),
    mutation: 'm',
  };
}

const body = (r: FuzzRequest): unknown => JSON.parse(r.payload.toString('utf8'));

t.test('a body without a length gets the one its route reads', async (t) => {
  const messages = [{ role: 'user', content: 'hi' }];
  t.same(body(bounded(req('/v1/chat/completions', JSON.stringify({ messages })), 48)), { messages, max_tokens: 48 });
  t.same(body(bounded(req('/completion', '{"prompt":"x"}'), 9)), { prompt: 'x', n_predict: 9 });
  t.same(body(bounded(req('/v1/responses', '{"input":"x"}'), 9)), { input: 'x', max_output_tokens: 9 });
  t.match(bounded(req('/v1/chat/completions', '{}'), 9), {
    method: 'POST',
    mutation: 'm',
    url: '/v1/chat/completions',
  });
});

t.test('anything else is sent as generated', async (t) => {
  for (const payload of [
    '{"messages":[],"max_tokens":1e9}',
    '{"n_predict":-1}',
    '{"max_completion_tokens":null}',
    '[1,2]',
    'null',
    '{"messages":',
    '',
    Buffer.from([0x7b, 0x22, 0x61, 0x22, 0x3a, 0x22, 0xff, 0xfe, 0x22, 0x7d]), // {"a":"<invalid UTF-8>"}
  ]) {
    const r = req('/v1/chat/completions', payload);
    t.equal(bounded(r, 48), r, `${String(payload)}`);
  }
});

t.test('the same seed, the same sequence', async (t) => {
  const a = seeded(7);
  const b = seeded(7);
  const xs = Array.from({ length: 5 }, () => a());
  t.same(
    xs,
    Array.from({ length: 5 }, () => b()),
  );
  t.ok(xs.every((x) => x >= 0 && x < 1));
  t.not(seeded(8)(), xs[0]);
});
