// `npm start -- --models-dir DIR` as a user runs it: router mode from the command line, a preset's flags applied, a
// bad preset refused at start with the file and key named, and a clean exit on SIGTERM.
import { spawn } from 'node:child_process';
import { mkdtemp, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { projectRoot } from '../../src/paths.ts';
import { modelPath } from '../helpers/models.ts';
import { startServer } from '../helpers/server-process.ts';

async function folder(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'serve-router-'));
  await symlink(await modelPath('tiny'), join(dir, 'tiny.gguf'));
  return dir;
}

const post = async (url: string, body: object) => {
  const res = await fetch(url, { method: 'POST', body: JSON.stringify(body) });
  return { status: res.status, json: (await res.json()) as Record<string, unknown> };
};

t.test('router mode from the command line, with a preset over the folder', async (t) => {
  const dir = await folder();
  const preset = join(dir, 'models.ini');
  await writeFile(preset, '[*]\nc = 1024\n\n[tiny]\nnp = 3\nalias = small\n');
  const server = await startServer(['--models-dir', dir, '--models-preset', preset, '-t', '2']);
  t.teardown(() => server.stop());
  t.match(server.output(), /listening on http:\/\/127\.0\.0\.1:\d+ \(router mode\)/);
  const done = await post(`${server.url}/completion`, { model: 'small', prompt: 'hi', n_predict: 3 });
  t.equal(done.status, 200, 'an alias names its model');
  t.equal(done.json.model, 'tiny');
  const props = (await (await fetch(`${server.url}/props?model=tiny`)).json()) as Record<string, unknown>;
  t.equal(props.total_slots, 3, "the section's -np");
  t.match(props.default_generation_settings, { n_ctx: 341 }, "[*]'s -c split over the section's 3 slots");
  t.equal(await server.stop(), 0, 'SIGTERM: exit 0');
});

t.test('a preset with an unknown key stops the start, naming the file, section and key', async (t) => {
  const dir = await folder();
  const preset = join(dir, 'bad.ini');
  await writeFile(preset, '[tiny]\nno-such-flag = 1\n');
  const child = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      join(projectRoot, 'src', 'entry', 'main.ts'),
      'serve',
      '--models-preset',
      preset,
      '--port',
      '0',
    ],
    { cwd: projectRoot, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let stderr = '';
  child.stderr.on('data', (c: Buffer) => {
    stderr += c.toString();
  });
  const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
  t.equal(code, 2);
  t.match(stderr, /bad\.ini:2: \[tiny\]: unknown option 'no-such-flag'/);
});

t.test('-m with --models-dir serves the one model and says the router flags are ignored', async (t) => {
  const dir = await folder();
  const server = await startServer(['-m', await modelPath('tiny'), '--models-dir', dir, '-c', '512']);
  t.teardown(() => server.stop());
  t.match(server.output(), /--models-dir\/--models-preset are ignored: -m serves one model/);
  t.equal((await post(`${server.url}/completion`, { prompt: 'hi', n_predict: 2 })).status, 200);
});
