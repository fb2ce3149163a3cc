// --sleep-idle-seconds with one model, as a user runs it: idle, the model is unloaded (/props says so, read-only
// routes keep answering without waking it, /metrics keeps its counts); the next completion loads it again and
// answers exactly as before.
import t from 'tap';
import { modelPath } from '../helpers/models.ts';
import { startServer } from '../helpers/server-process.ts';

const json = async (url: string, init?: RequestInit) =>
  (await fetch(url, init)).json() as Promise<Record<string, unknown>>;

t.test('an idle model sleeps and the next request wakes it', async (t) => {
  const server = await startServer([
    '-m',
    await modelPath('tiny'),
    '-c',
    '512',
    '--sleep-idle-seconds',
    '1',
    '--metrics',
  ]);
  t.teardown(() => server.stop());
  const completion = () =>
    json(`${server.url}/completion`, {
      method: 'POST',
      body: JSON.stringify({ prompt: 'The quick brown fox', n_predict: 8, temperature: 0 }),
    });
  const before = await completion();
  // The log line is the event: the model was unloaded.
  while (!server.output().includes('idle: model unloaded (sleeping)')) await new Promise((r) => setTimeout(r, 50));
  const props = await json(`${server.url}/props`);
  t.equal(props.is_sleeping, true);
  t.match(props.model_path, /tiny/, '/props still describes the model');
  t.equal((await fetch(`${server.url}/health`)).status, 200);
  const models = (await json(`${server.url}/v1/models`)) as { data: unknown[] };
  t.equal(models.data.length, 1);
  const scrape = await (await fetch(`${server.url}/metrics`)).text();
  t.match(scrape, /llamacpp:tokens_predicted_total 8/, 'asleep, /metrics keeps its counts');
  t.match(scrape, /llamacpp:predicted_tokens_seconds [1-9]/, 'the first scrape: the last generation’s throughput');
  t.match(
    await (await fetch(`${server.url}/metrics`)).text(),
    /llamacpp:predicted_tokens_seconds 0/,
    'then an empty window',
  );
  t.equal((await json(`${server.url}/props`)).is_sleeping, true, 'none of these woke it');
  const after = await completion();
  t.equal(after.content, before.content, 'loaded again, it answers as before');
  t.equal((await json(`${server.url}/props`)).is_sleeping, false);
  t.match(server.output(), /model loaded again \(awake\)/);
});
