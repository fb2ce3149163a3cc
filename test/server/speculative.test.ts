// Speculative decoding through the HTTP API: the same greedy text as without drafts, streamed or not, and what
// llama-server reports of it (timings draft_n / draft_n_accepted, the llamacpp:spec_decode_* metrics, /slots).
import t from 'tap';
import { loadModel, modelPath } from '../helpers/models.ts';
import { type Harness, makeHarness, NO_EOS, sseEvents } from './harness.ts';

const model = await loadModel('tiny');
t.teardown(() => model.dispose());
const draft = await modelPath('tiny');

interface Completion {
  content: string;
  timings: { predicted_n: number; draft_n?: number; draft_n_accepted?: number };
}

const body = (prompt: string, extra: object = {}) => ({
  prompt,
  n_predict: 24,
  temperature: 0,
  logit_bias: Object.entries(NO_EOS).map(([k, v]) => [Number(k), v]),
  ...extra,
});

async function complete(h: Harness, prompt: string): Promise<Completion> {
  const res = await h.app.inject({ method: 'POST', url: '/completion', payload: body(prompt) });
  if (res.statusCode !== 200) throw new Error(res.body);
  return res.json() as Completion;
}

const prompts = ['The quick brown fox', 'Once upon a time', 'In a galaxy far away'];
const base = ['-np', '2', '-c', '1024', '--metrics'];

t.test('drafts verified by the target: the same text, and the counts llama-server gives', async (t) => {
  const plain = await makeHarness(t, model, { flags: base });
  const spec = await makeHarness(t, model, {
    flags: [...base, '-md', draft, '--spec-type', 'draft-simple', '--spec-draft-n-max', '4', '--spec-policy', 'max'],
  });
  let drafted = 0;
  let accepted = 0;
  for (const prompt of prompts) {
    const [a, b] = await Promise.all([complete(plain, prompt), complete(spec, prompt)]);
    t.equal(b.content, a.content, `"${prompt}": same text`);
    t.equal(a.timings.draft_n, undefined, 'no draft counts without drafting');
    t.ok((b.timings.draft_n ?? 0) > 0, `"${prompt}": ${b.timings.draft_n} draft tokens`);
    t.equal(b.timings.draft_n_accepted, b.timings.draft_n, 'the target accepts its own greedy drafts');
    drafted += b.timings.draft_n ?? 0;
    accepted += b.timings.draft_n_accepted ?? 0;
  }
  const metrics = (await spec.app.inject({ url: '/metrics' })).body;
  const value = (name: string) => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(metrics)?.[1]);
  t.equal(value('llamacpp:spec_decode_num_draft_tokens_total'), drafted, 'draft tokens: the sum of draft_n');
  t.equal(value('llamacpp:spec_decode_num_accepted_tokens_total'), accepted);
  t.ok(value('llamacpp:spec_decode_num_drafts_total') > 0);
  t.match(metrics, /^llamacpp:spec_decode_num_accepted_tokens_per_pos_total\{position="0"\} \d+/m);
  const slots = (await spec.app.inject({ url: '/slots' })).json() as { speculative: boolean }[];
  t.same(
    slots.map((s) => s.speculative),
    [true, true],
  );
  const plainSlots = (await plain.app.inject({ url: '/slots' })).json() as { speculative: boolean }[];
  t.same(
    plainSlots.map((s) => s.speculative),
    [false, false],
  );
});

t.test('streamed: accepted tokens arrive as whole characters, the same text as without drafts', async (t) => {
  const plain = await makeHarness(t, model, { flags: base });
  const spec = await makeHarness(t, model, {
    flags: [...base, '-md', draft, '--spec-draft-n-max', '6', '--spec-policy', 'max'],
  });
  const expected = (await complete(plain, prompts[0] ?? '')).content;
  const res = await spec.app.inject({
    method: 'POST',
    url: '/completion',
    payload: body(prompts[0] ?? '', { stream: true }),
  });
  const events = sseEvents(res.body) as { content?: string; stop?: boolean; timings?: Completion['timings'] }[];
  const text = events.map((e) => e.content ?? '').join('');
  t.equal(text, expected);
  t.notOk(
    events.some((e) => (e.content ?? '').includes('\ufffd')),
    'no replacement character: no piece split a character',
  );
  t.ok((events.at(-1)?.timings?.draft_n ?? 0) > 0, 'the final event counts the drafts');
});

t.test('the adaptive policy (the default) changes no text either', async (t) => {
  const plain = await makeHarness(t, model, { flags: base });
  const spec = await makeHarness(t, model, { flags: [...base, '-md', draft, '--spec-draft-n-max', '8'] });
  for (const prompt of prompts) {
    const [a, b] = await Promise.all([complete(plain, prompt), complete(spec, prompt)]);
    t.equal(b.content, a.content, `"${prompt}"`);
  }
});
