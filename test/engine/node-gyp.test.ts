// binding.gyp is a working second route to the same addon: node-gyp builds it against the CMake-built
// llama.cpp libraries, and the result loads a model and tokenizes exactly like the cmake-js addon.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { projectRoot } from '../../src/paths.ts';
import { loadModel, modelPath } from '../helpers/models.ts';

const gypAddon = join(projectRoot, 'build', 'Release', 'llama_addon.node');

t.test('node-gyp builds the addon', { timeout: 900_000 }, async (t) => {
  const nodeGyp = join(projectRoot, 'node_modules', 'node-gyp', 'bin', 'node-gyp.js');
  const r = spawnSync(process.execPath, [nodeGyp, 'rebuild', '--jobs', 'max'], {
    cwd: projectRoot,
    encoding: 'utf8',
    // Offline: build against the headers of the running Node (npm is configured the same way here).
    env: { ...process.env, npm_config_nodedir: process.env.npm_config_nodedir ?? join(process.execPath, '..', '..') },
  });
  t.equal(r.status, 0, `node-gyp rebuild failed:\n${r.stderr.slice(-4000)}`);
  t.ok(existsSync(gypAddon), gypAddon);
});

t.test('the node-gyp addon loads a model and agrees with the cmake-js addon', async (t) => {
  const path = await modelPath('tiny');
  const script = `
    const addon = require(${JSON.stringify(gypAddon)});
    const m = new addon.Model();
    m.load(${JSON.stringify(path)}, {}).then(async () => {
      const tokens = m.tokenize('The node-gyp route works', true, false);
      const out = await m.referenceGreedy(tokens, { nPredict: 6 });
      console.log(JSON.stringify({ tokens: Array.from(tokens), out: Array.from(out), params: m.info().nParams }));
      m.dispose();
    });`;
  const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8' });
  t.equal(r.status, 0, r.stderr);
  const got = JSON.parse(r.stdout.trim().split('\n').at(-1) ?? '{}');
  const model = await loadModel('tiny');
  t.teardown(() => model.dispose());
  const tokens = model.tokenize('The node-gyp route works');
  t.same(got.tokens, Array.from(tokens));
  t.same(got.out, await model.referenceGreedy(tokens, { nPredict: 6 }));
  t.equal(got.params, model.info.nParams);
});
