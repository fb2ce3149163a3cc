// Native faults injected under the real server (app, scheduler, BatchDecoder, tiny model): llama_decode returning -1
// and 1, a sampler that throws (LLAMA_SLOTS_FAULTS, native/core/faults.h), an allocation failure at load, and the
// model file deleted while it serves. Each time the affected requests end with a clear error, the others go on, the
// decoder's slots are idle afterwards and the server keeps answering.
import { spawn } from 'node:child_process';
import { copyFile, mkdtemp, rm, unlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance, LightMyRequestResponse } from 'fastify';
import t, { type Test } from 'tap';
import { Model } from '../../src/engine/index.ts';
import { ModelLoadError } from '../../src/errors.ts';
import { projectRoot } from '../../src/paths.ts';
import { loadModel, modelPath } from '../helpers/models.ts';
import { startServer } from '../helpers/server-process.ts';
import { errorOf, type Harness, type HarnessOptions, makeHarness, NO_EOS } from './harness.ts';

const FAULTS = 'LLAMA_SLOTS_FAULTS';
const model = await loadModel('tiny');
t.teardown(() => model.dispose());

/** A harness whose decoder was created with `spec` planned: the decoder reads the variable once, when created. */
async function faultyHarness(t: Test, spec: string, options: HarnessOptions = {}): Promise<Harness> {
  process.env[FAULTS] = spec;
  try {
    return await makeHarness(t, model, options);
  } finally {
    delete process.env[FAULTS];
  }
}

const chat = (maxTokens: number, content = 'hi') => ({
  messages: [{ role: 'user', content }],
  temperature: 0,
  max_tokens: maxTokens,
  logit_bias: NO_EOS,
});

function post(app: FastifyInstance, payload: object): Promise<LightMyRequestResponse> {
  return app.inject({ method: 'POST', url: '/v1/chat/completions', payload });
}

function contentOf(res: LightMyRequestResponse): string {
  return (res.json() as { choices: Array<{ message: { content: string } }> }).choices[0]?.message.content ?? '';
}

/** What the fault-free server answers: the text the unaffected requests must still get. */
async function baseline(t: Test, payloads: object[]): Promise<string[]> {
  const { app } = await makeHarness(t, model);
  const out: string[] = [];
  for (const p of payloads) {
    const res = await post(app, p);
    t.equal(res.statusCode, 200);
    out.push(contentOf(res));
  }
  return out;
}

async function assertServing(t: Test, h: Harness): Promise<void> {
  t.same(
    Array.from({ length: h.decoder.slots }, (_, i) => h.decoder.slotInfo(i).state),
    Array.from({ length: h.decoder.slots }, () => 'idle'),
    "the decoder's slots are idle",
  );
  t.same(
    h.scheduler.snapshot().map((s) => s.state),
    Array.from({ length: h.decoder.slots }, () => 'idle'),
    "the scheduler's slots are idle",
  );
  t.equal((await h.app.inject({ method: 'GET', url: '/health' })).statusCode, 200, '/health answers');
  const again = await post(h.app, chat(4, 'still there?'));
  t.equal(again.statusCode, 200, 'a new request is served');
}

t.test(
  'decode_ret=-1: the request in that step gets a 500, the queued one is served',
  { timeout: 60_000 },
  async (t) => {
    const payloads = [chat(8, 'first'), chat(6, 'second')];
    const expected = await baseline(t, payloads);
    // One slot: the request admitted first is in step 2's batch, the other waits in the queue. Which one arrives
    // first is not fixed (each renders its chat template on its own), so each answer is judged by what it got.
    const h = await faultyHarness(t, 'decode_ret=-1@step=2', { slots: 1 });
    const answers = await Promise.all(payloads.map((p) => post(h.app, p)));
    t.same(answers.map((a) => a.statusCode).sort(), [200, 500], 'one request failed, the other was served');
    const failedAt = answers.findIndex((a) => a.statusCode === 500);
    const servedAt = 1 - failedAt;
    const [failedAnswer, served] = [answers[failedAt], answers[servedAt]];
    t.match(failedAnswer && errorOf(failedAnswer), { type: 'server_error', code: 'generation_failed' });
    const failed = h.ended.find((s) => s.reason === 'error');
    t.match(failed?.error, /llama_decode failed \(-1\)/, 'the summary names the failed decode');
    t.equal(served && contentOf(served), expected[servedAt], 'the queued request gets the fault-free text');
    t.equal(h.ended.length, 2);
    await assertServing(t, h);
  },
);

t.test('decode_ret=1 (no KV room): no request is lost or left hanging', { timeout: 60_000 }, async (t) => {
  const h = await faultyHarness(t, 'decode_ret=1@step=2', { slots: 2 });
  const payloads = [chat(8, 'one'), chat(8, 'two'), chat(8, 'three')];
  const answers = await Promise.all(payloads.map((p) => post(h.app, p)));
  for (const res of answers) {
    if (res.statusCode === 200) continue;
    t.ok(res.statusCode >= 500, `status ${res.statusCode}`);
    t.match(errorOf(res), { message: String, type: String });
  }
  t.equal(h.ended.length, payloads.length, 'every request ended');
  // The fault took effect: the second step decoded for no slot (however the scheduler then treats a full KV).
  t.equal(h.steps.records[1]?.decoded.size, 0, 'step 2 decoded nothing');
  await assertServing(t, h);
});

t.test('sampler_throw: that slot ends with an error, the other slot finishes', { timeout: 60_000 }, async (t) => {
  const [a, b] = await baseline(t, [chat(8, 'alpha'), chat(8, 'beta')]);
  // Both requests share step 3's batch; the first slot sampled in it fails.
  const h = await faultyHarness(t, 'sampler_throw@step=3', { slots: 2 });
  const answers = await Promise.all([post(h.app, chat(8, 'alpha')), post(h.app, chat(8, 'beta'))]);
  const statuses = answers.map((r) => r.statusCode).sort();
  t.same(statuses, [200, 500], 'one failed, one served');
  const ok = answers.findIndex((r) => r.statusCode === 200);
  t.equal(contentOf(answers[ok] as LightMyRequestResponse), ok === 0 ? a : b, 'the other request is unaffected');
  t.match(errorOf(answers[1 - ok] as LightMyRequestResponse), { code: 'generation_failed' });
  t.match(h.ended.find((s) => s.reason === 'error')?.error, /sampling failed: injected fault/);
  await assertServing(t, h);
});

t.test('alloc_fail_load: Model.load rejects with ModelLoadError naming it; the next load works', async (t) => {
  const path = await modelPath('tiny');
  // The native load reads the variable on its own thread: keep it set until the load settles.
  process.env[FAULTS] = 'alloc_fail_load';
  const failed = await Model.load(path).then(
    () => undefined,
    (err: unknown) => err,
  );
  delete process.env[FAULTS];
  t.type(failed, ModelLoadError);
  t.match((failed as Error).message, /could not load .*bad_alloc/);
  const m = await Model.load(path);
  t.teardown(() => m.dispose());
  t.ok(m.tokenize('works').length > 0);
});

t.test(
  'alloc_fail_load under `serve`: a clear message and exit status 1, not a crash',
  { timeout: 60_000 },
  async (t) => {
    const path = await modelPath('tiny');
    const child = spawn(
      process.execPath,
      [
        '--import',
        'tsx',
        join(projectRoot, 'src', 'entry', 'main.ts'),
        'serve',
        '-m',
        path,
        '--host',
        '127.0.0.1',
        '--port',
        '0',
      ],
      {
        cwd: projectRoot,
        env: { ...process.env, [FAULTS]: 'alloc_fail_load' },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    // Should the fault not take effect, the server would serve on: end it with the test.
    t.teardown(() => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    });
    let out = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    child.stderr.on('data', (c: Buffer) => (out += c.toString()));
    const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve) =>
      child.on('exit', (c, s) => resolve([c, s])),
    );
    t.equal(signal, null, 'not killed by a signal');
    t.equal(code, 1, out);
    t.match(out, /cannot serve .*bad_alloc/);
  },
);

t.test('decode_ret=-1 in a served process: the process lives and serves on', async (t) => {
  const server = await startServer(['-m', await modelPath('tiny'), '-np', '1', '-c', '512'], {
    [FAULTS]: 'decode_ret=-1@step=2',
  });
  t.teardown(() => server.stop());
  const send = (content: string) =>
    fetch(`${server.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(chat(6, content)),
    });
  const failed = await send('first');
  t.equal(failed.status, 500);
  t.match(((await failed.json()) as { error: unknown }).error, { code: 'generation_failed' });
  const next = await send('second');
  t.equal(next.status, 200);
  t.equal(server.child.exitCode, null, 'the server process is still running');
  const slots = (await (await fetch(`${server.url}/slots`)).json()) as Array<{ is_processing: boolean }>;
  t.same(
    slots.map((s) => s.is_processing),
    [false],
  );
});

t.test('the model file deleted while serving (mmap): serving goes on, same text', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'llama-slots-unlinked-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const copy = join(dir, 'tiny.gguf');
  await copyFile(await modelPath('tiny'), copy);
  const mapped = await Model.load(copy, { useMmap: true });
  t.teardown(() => mapped.dispose());
  const payloads = [chat(8, 'before'), chat(8, 'after')];
  const expected = await baseline(t, payloads);

  const h = await makeHarness(t, mapped);
  const before = await post(h.app, payloads[0] as object);
  t.equal(contentOf(before), expected[0]);
  await unlink(copy);
  const [again, after] = await Promise.all([post(h.app, payloads[0] as object), post(h.app, payloads[1] as object)]);
  t.equal(contentOf(again), expected[0], 'the same request, same text');
  t.equal(contentOf(after), expected[1], 'a new prompt, the same text as from the intact file');
  // A decoder created after the deletion maps nothing new: it works too.
  const later = await makeHarness(t, mapped);
  t.equal(contentOf(await post(later.app, payloads[1] as object)), expected[1]);
  await assertServing(t, h);
});
