// The package as a user installs it: `npm pack` ships the compiled server, the addon's sources and the install
// scripts, nothing of the tests or the vendored llama.cpp; the compiled bin runs without tsx.
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import t from 'tap';
import { buildTs } from '../../scripts/build-ts.mjs';
import { projectRoot } from '../../src/paths.ts';

const run = (cmd: string, args: string[]) =>
  spawnSync(cmd, args, { cwd: projectRoot, encoding: 'utf8', env: { ...process.env, npm_config_loglevel: 'error' } });

t.test('npm pack ships dist/, the native sources and the install scripts; not src/, tests or vendor/', async (t) => {
  const pack = run('npm', ['pack', '--dry-run', '--json', '--ignore-scripts']);
  t.equal(pack.status, 0, pack.stderr);
  const files = (JSON.parse(pack.stdout) as [{ files: { path: string }[] }])[0].files.map((f) => f.path);
  for (const f of [
    'dist/entry/bin.js',
    'dist/entry/main.js',
    'dist/server/app.js',
    'dist/webui/index.html',
    'native/core/batch_decoder.cpp',
    'native/binding/addon.cpp',
    'scripts/install.mjs',
    'scripts/vendor-llama.mjs',
    'scripts/build-addon.mjs',
    'CMakeLists.txt',
    'binding.gyp',
    'package.json',
    'README.md',
  ])
    t.ok(files.includes(f), `ships ${f}`);
  for (const prefix of ['src/', 'test/', 'web/', 'vendor/', '.ci/', 'build-cmake/', 'node_modules/', '.scratch/'])
    t.notOk(
      files.some((f) => f.startsWith(prefix)),
      `nothing under ${prefix}`,
    );
  t.notOk(
    files.some((f) => f.endsWith('.gguf')),
    'no models',
  );
});

t.test('the compiled bin (package.json "bin") runs the server without tsx', async (t) => {
  buildTs();
  const pkg = JSON.parse(run('node', ['-p', 'JSON.stringify(require("./package.json"))']).stdout) as {
    bin: Record<string, string>;
  };
  const bin = pkg.bin['llama-slots-server'];
  t.equal(bin, 'dist/entry/bin.js');
  const version = run('node', [join(projectRoot, bin ?? ''), '--version']);
  t.equal(version.status, 0, version.stderr);
  t.match(version.stdout, /^version: \d+\.\d+\.\d+ \(llama\.cpp b\d+-[0-9a-f]+\)/);
  const bad = run('node', [join(projectRoot, bin ?? ''), '--frobnicate']);
  t.equal(bad.status, 2);
  t.match(bad.stderr, /unknown option '--frobnicate'/);
  const imports = run('grep', ['-rl', "from '\\./.*\\.ts'", join(projectRoot, 'dist')]);
  t.equal(imports.stdout, '', 'no .ts import left in the compiled code');
});
