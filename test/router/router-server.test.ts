// Router mode over HTTP with real generated models (tiny and tiny-gemma3) served from one --models-dir: each request
// goes to the model it names, loaded on demand; two busy models take turns and each answers as it would alone.
import { mkdtemp, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import t, { type Test } from 'tap';
import { parseServeConfig } from '../../src/entry/config/index.ts';
import { createRouter, type RouterServer, routerApp } from '../../src/entry/router-serve.ts';
import { modelPath } from '../helpers/models.ts';

interface Served {
  app: FastifyInstance;
  parts: RouterServer;
  url: string;
}

async function modelsDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'router-models-'));
  await symlink(await modelPath('tiny'), join(dir, 'tiny.gguf'));
  await symlink(await modelPath('tiny-gemma3'), join(dir, 'tiny-gemma3.gguf'));
  await writeFile(join(dir, 'broken.gguf'), 'GGUF but not really');
  return dir;
}

async function serve(t: Test, dir: string, flags: string[] = []): Promise<Served> {
  const argv = ['--models-dir', dir, '-c', '1024', '-np', '2', '-t', '2', '--metrics', ...flags];
  const config = parseServeConfig(argv, {});
  const parts = createRouter(config, argv, {}, { info: () => {}, error: () => {} });
  await parts.router.start();
  const app = routerApp(config, { apiKeys: [], chatTemplate: undefined, grammar: undefined }, parts);
  await app.listen({ host: '127.0.0.1', port: 0 });
  const address = app.server.address();
  const port = typeof address === 'object' && address !== null ? address.port : 0;
  t.teardown(async () => {
    await app.close();
    await parts.router.close(0);
  });
  return { app, parts, url: `http://127.0.0.1:${port}` };
}

async function post(url: string, body: object): Promise<{ status: number; json: Record<string, unknown> }> {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  return { status: res.status, json: (await res.json()) as Record<string, unknown> };
}

const completion = (model: string, prompt: string, n = 24) => ({
  model,
  prompt,
  n_predict: n,
  temperature: 0,
  ignore_eos: true,
});

async function statusOf(url: string, id: string): Promise<Record<string, unknown>> {
  const res = await fetch(`${url}/models`);
  const list = (await res.json()) as { data: Array<{ id: string; status: Record<string, unknown> }> };
  const m = list.data.find((d) => d.id === id);
  if (m === undefined) throw new Error(`${id} is not listed`);
  return m.status;
}

/** Polls the listing until the model reaches the status (statuses change on the server's own events). */
async function waitFor(url: string, id: string, value: string): Promise<void> {
  for (;;) {
    if ((await statusOf(url, id)).value === value) return;
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** A streamed /completion: each token's text and when it came. */
async function stream(url: string, body: object): Promise<{ texts: string[]; at: number[]; stop: string | null }> {
  const res = await fetch(`${url}/completion`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ ...body, stream: true }),
  });
  const texts: string[] = [];
  const at: number[] = [];
  let stop: string | null = null;
  const decoder = new TextDecoder();
  let buffer = '';
  for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
    buffer += decoder.decode(chunk, { stream: true });
    for (let i = buffer.indexOf('\n\n'); i >= 0; i = buffer.indexOf('\n\n')) {
      const event = buffer.slice(0, i);
      buffer = buffer.slice(i + 2);
      if (!event.startsWith('data: ')) continue;
      const data = JSON.parse(event.slice(6)) as { content: string; stop: boolean; stop_type?: string };
      if (data.stop) stop = data.stop_type ?? 'stop';
      else {
        texts.push(data.content);
        at.push(performance.now());
      }
    }
  }
  return { texts, at, stop };
}

t.test('router mode over two generated models', async (t) => {
  const dir = await modelsDir();
  const s = await serve(t, dir);

  t.test('the listing names every model of the folder, unloaded, with the broken one', async (t) => {
    const res = await fetch(`${s.url}/v1/models`);
    const body = (await res.json()) as { data: Array<{ id: string; status: { value: string } }> };
    t.same(
      body.data.map((m) => [m.id, m.status.value]),
      [
        ['broken', 'unloaded'],
        ['tiny', 'unloaded'],
        ['tiny-gemma3', 'unloaded'],
      ],
    );
    const props = await (await fetch(`${s.url}/props`)).json();
    t.match(props, { role: 'router', max_instances: 4, models_autoload: true });
  });

  t.test('a request without a model, or for an unknown one, is refused naming it', async (t) => {
    const missing = await post(`${s.url}/completion`, { prompt: 'x', n_predict: 1 });
    t.equal(missing.status, 400);
    t.match(missing.json, { error: { message: /model name is missing/, param: 'model' } });
    const unknown = await post(`${s.url}/v1/chat/completions`, {
      model: 'no-such-model',
      messages: [{ role: 'user', content: 'hi' }],
    });
    t.equal(unknown.status, 404);
    t.match(unknown.json, { error: { message: "model 'no-such-model' not found", code: 'model_not_found' } });
  });

  const solo = new Map<string, unknown>();
  t.test('each model alone: loaded by its first request', async (t) => {
    for (const model of ['tiny', 'tiny-gemma3']) {
      const r = await post(`${s.url}/completion`, completion(model, 'The quick brown fox'));
      t.equal(r.status, 200, model);
      t.equal((r.json.timings as { predicted_n: number }).predicted_n, 24);
      solo.set(model, r.json.content);
      t.equal((await statusOf(s.url, model)).value, 'loaded');
    }
    t.not(solo.get('tiny'), solo.get('tiny-gemma3'), 'two different models');
  });

  t.test('both busy at once: their steps take turns and each answers as it did alone', async (t) => {
    const waitedBefore = s.parts.turns.waited;
    const requests = ['tiny', 'tiny-gemma3', 'tiny', 'tiny-gemma3'].map((model) =>
      post(`${s.url}/completion`, completion(model, 'The quick brown fox')).then((r) => ({ model, ...r })),
    );
    for (const r of await Promise.all(requests)) {
      t.equal(r.status, 200);
      t.equal(r.json.content, solo.get(r.model), `${r.model} equals its solo greedy output`);
      t.equal(r.json.model, r.model, 'the response names its model');
    }
    t.ok(s.parts.turns.waited > waitedBefore, 'a model waited for the other model’s step');
  });

  t.test('a broken file fails its own requests with the loader’s message; the others serve', async (t) => {
    const [broken, fine] = await Promise.all([
      post(`${s.url}/completion`, completion('broken', 'hi', 4)),
      post(`${s.url}/completion`, completion('tiny', 'hi', 4)),
    ]);
    t.equal(broken.status, 500);
    t.match(broken.json, { error: { code: 'model_load_failed', message: /model 'broken' failed to load: .*GGUF/ } });
    t.equal(fine.status, 200);
    t.match(await statusOf(s.url, 'broken'), { value: 'failed', failed: true, error: /GGUF/ });
  });

  t.test('unloading a model lets its running request finish first', async (t) => {
    const running = stream(s.url, completion('tiny-gemma3', 'Once upon a time', 64));
    // Unload once the stream has started (the model holds a running request).
    await new Promise<void>((resolve) => {
      const check = async () => {
        const m = (await (await fetch(`${s.url}/slots?model=tiny-gemma3`)).json()) as Array<{ is_processing: boolean }>;
        if (m.some((x) => x.is_processing)) resolve();
        else setTimeout(check, 5);
      };
      void check();
    });
    const unload = await post(`${s.url}/models/unload`, { model: 'tiny-gemma3' });
    t.same(unload.json, { success: true });
    const done = await running;
    t.equal(done.texts.length, 64, 'the running request got all its tokens');
    t.equal(done.stop, 'limit');
    await waitFor(s.url, 'tiny-gemma3', 'unloaded');
    const again = await post(`${s.url}/completion`, completion('tiny-gemma3', 'The quick brown fox'));
    t.equal(again.json.content, solo.get('tiny-gemma3'), 'loaded again by the next request, same answer');
  });

  t.test('a model loading while another streams: the stream keeps flowing during the load', async (t) => {
    await post(`${s.url}/models/unload`, { model: 'tiny-gemma3' });
    await waitFor(s.url, 'tiny-gemma3', 'unloaded');
    const running = stream(s.url, completion('tiny', 'Once upon a time', 400));
    const loadStart = performance.now();
    const other = await post(`${s.url}/completion`, completion('tiny-gemma3', 'hello', 1));
    const loadEnd = performance.now();
    t.equal(other.status, 200);
    const done = await running;
    const during = done.at.filter((x) => x > loadStart && x < loadEnd).length;
    t.ok(during > 0, `tokens of the other model's stream arrived while it loaded (${during})`);
    t.equal(done.texts.length, 400);
  });

  t.test('a stored response is the server’s: read back without naming a model', async (t) => {
    const made = await post(`${s.url}/v1/responses`, { model: 'tiny', input: 'hi', max_output_tokens: 4 });
    t.equal(made.status, 200);
    const id = made.json.id as string;
    const read = await fetch(`${s.url}/v1/responses/${id}`);
    t.equal(read.status, 200);
    t.match(await read.json(), { id, model: 'tiny' });
  });

  t.test('one scrape: per-model series labelled, the gateway’s gauges summed', async (t) => {
    const text = await (await fetch(`${s.url}/metrics`)).text();
    t.match(text, /llamacpp:tokens_predicted_total\{model="tiny"\} [1-9]/);
    t.match(text, /llamacpp:tokens_predicted_total\{model="tiny-gemma3"\} [1-9]/);
    t.match(text, /^vllm:num_requests_running 0$/m);
    t.match(text, /llama_router_model_loads_total\{model="broken",result="failure"\} [1-9]/);
    t.match(text, /llama_router_model_unloads_total\{model="tiny-gemma3"\} [1-9]/);
    t.match(text, /llama_router_models\{status="loaded"\} 2/);
  });
});

t.test('--models-max 1: the next model waits for the busy one, then takes its place', async (t) => {
  const dir = await modelsDir();
  const s = await serve(t, dir, ['--models-max', '1']);
  const running = stream(s.url, completion('tiny', 'Once upon a time', 48));
  await waitFor(s.url, 'tiny', 'loaded');
  const next = await post(`${s.url}/completion`, completion('tiny-gemma3', 'hi', 2));
  t.equal(next.status, 200);
  const done = await running;
  t.equal(done.texts.length, 48, 'the busy model was not unloaded under its request');
  t.equal((await statusOf(s.url, 'tiny')).value, 'unloaded');
  t.equal((await statusOf(s.url, 'tiny-gemma3')).value, 'loaded');
});

t.test('--no-models-autoload refuses a model until POST /models/load', async (t) => {
  const dir = await modelsDir();
  const s = await serve(t, dir, ['--no-models-autoload']);
  const refused = await post(`${s.url}/completion`, completion('tiny', 'hi', 2));
  t.equal(refused.status, 400);
  t.match(refused.json, { error: { code: 'model_not_loaded' } });
  t.same((await post(`${s.url}/models/load`, { model: 'tiny' })).json, { success: true });
  await waitFor(s.url, 'tiny', 'loaded');
  t.equal((await post(`${s.url}/completion`, completion('tiny', 'hi', 2))).status, 200);
  const again = await post(`${s.url}/models/load`, { model: 'tiny' });
  t.equal(again.status, 400, 'loading a loaded model is refused');
  const unknown = await post(`${s.url}/models/load`, { model: 'nope' });
  t.equal(unknown.status, 404);
  const download = await post(`${s.url}/models`, { model: 'ggml-org/some-model' });
  t.equal(download.status, 501, 'no downloads');
  t.match(download.json, { error: { message: /--models-dir/ } });
});

t.test('--sleep-idle-seconds: an idle model is unloaded and its next request loads it again', async (t) => {
  const dir = await modelsDir();
  const s = await serve(t, dir, ['--sleep-idle-seconds', '1']);
  t.equal((await post(`${s.url}/completion`, completion('tiny', 'hi', 2))).status, 200);
  await waitFor(s.url, 'tiny', 'sleeping');
  t.equal((await post(`${s.url}/completion`, completion('tiny', 'hi', 2))).status, 200);
  t.equal((await statusOf(s.url, 'tiny')).value, 'loaded');
});

t.test('--models-memory-budget: a model that does not fit beside another unloads the idle one', async (t) => {
  const dir = await modelsDir();
  // tiny (35.3 MiB with its KV) and tiny-gemma3 (27.7 MiB): either fits in 50 MiB, not both.
  const s = await serve(t, dir, ['--models-memory-budget', '50MiB']);
  t.equal((await post(`${s.url}/completion`, completion('tiny', 'hi', 2))).status, 200);
  t.equal((await post(`${s.url}/completion`, completion('tiny-gemma3', 'hi', 2))).status, 200);
  t.equal((await statusOf(s.url, 'tiny')).value, 'unloaded', 'the least recently used idle model made room');
  t.equal((await statusOf(s.url, 'tiny-gemma3')).value, 'loaded');
});

t.test('--vram-budget: each model planned for the card, and what does not fit beside another unloads it', async (t) => {
  const dir = await modelsDir();
  // The planner gives tiny 170 MiB and tiny-gemma3 186 MiB of a 300 MiB card: one at a time.
  const s = await serve(t, dir, ['--vram-budget', '300MiB']);
  t.equal((await post(`${s.url}/completion`, completion('tiny', 'hi', 2))).status, 200);
  t.equal((await post(`${s.url}/completion`, completion('tiny-gemma3', 'hi', 2))).status, 200);
  t.equal((await statusOf(s.url, 'tiny')).value, 'unloaded', 'the idle model made room on the card');
  t.equal((await statusOf(s.url, 'tiny-gemma3')).value, 'loaded');
  const small = await serve(t, dir, ['--vram-budget', '64MiB']);
  const refused = await post(`${small.url}/completion`, completion('tiny', 'hi', 2));
  t.equal(refused.status, 500);
  t.match(refused.json, { error: { message: /does not fit in 64\.00 MiB of VRAM/ } });
});

t.test('a slot saved by one model is never restored into another', async (t) => {
  const dir = await modelsDir();
  const slots = await mkdtemp(join(tmpdir(), 'router-slots-'));
  const s = await serve(t, dir, ['--slot-save-path', slots]);
  t.equal((await post(`${s.url}/completion`, completion('tiny', 'The quick brown fox', 2))).status, 200);
  const saved = await post(`${s.url}/slots/0?action=save`, { model: 'tiny', filename: 'state.bin' });
  t.equal(saved.status, 200);
  t.equal((await post(`${s.url}/completion`, completion('tiny-gemma3', 'hi', 2))).status, 200);
  const restored = await post(`${s.url}/slots/0?action=restore`, { model: 'tiny-gemma3', filename: 'state.bin' });
  t.equal(restored.status, 400, 'the other model does not see the file');
  const own = await post(`${s.url}/slots/0?action=restore`, { model: 'tiny', filename: 'state.bin' });
  t.equal(own.status, 200, 'its own model restores it');
});
