// --step-trace FILE: one JSON line per decoding step and per request's end (where its first token's time went), for
// profiling a load (docs/PERFORMANCE.md's step profile was taken this way).
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { modelPath } from '../helpers/models.ts';
import { startServer } from '../helpers/server-process.ts';

t.test('a step and a request end per line, with the timeline', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'step-trace-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const file = join(dir, 'steps.jsonl');
  const server = await startServer(['-m', await modelPath('tiny'), '-c', '512', '-np', '1', '--step-trace', file]);
  t.teardown(() => server.stop());
  const res = await fetch(`${server.url}/completion`, {
    method: 'POST',
    body: JSON.stringify({ prompt: 'Once upon a time', n_predict: 4, temperature: 0, logit_bias: [[2, false]] }),
  });
  t.equal(res.status, 200);
  await res.text();
  await server.stop();
  const lines = (await readFile(file, 'utf8'))
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Record<string, unknown>);
  const steps = lines.flatMap((l) => (l.step ? [l.step as Record<string, number>] : []));
  t.equal(steps.length, 4, 'four steps: the prompt (with the first token), then three tokens');
  t.equal(steps[0]?.promptTokens, 5);
  for (const s of steps)
    t.ok((s.decodeMs ?? 0) > 0 && (s.decodeMs ?? 0) <= (s.durationMs ?? 0), 'llama_decode inside the step');
  const end = lines.find((l) => l.end)?.end as { reason: string; timeline: Record<string, number> };
  t.equal(end.reason, 'length');
  t.equal(end.timeline.prefillSteps, 1);
  t.ok(
    lines.every((l) => typeof l.t === 'number'),
    'each line has its time',
  );
});
