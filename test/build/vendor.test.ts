// The vendored llama.cpp tree is exactly the pinned commit, and the install step is idempotent.
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { checkVendorTree, vendorDir } from '../../scripts/vendor-llama.mjs';
import { projectRoot } from '../../src/paths.ts';

const pin = JSON.parse(readFileSync(join(projectRoot, 'package.json'), 'utf8')).llamaCpp;

t.test(
  'vendor/llama.cpp is a clean checkout of the pinned commit',
  { skip: process.env.LLAMA_CPP_DIR ? 'LLAMA_CPP_DIR is set' : false },
  async (t) => {
    t.match(pin.commit, /^[0-9a-f]{40}$/);
    t.match(pin.integrity, /^sha512-/);
    const state = checkVendorTree();
    t.ok(state.ok, state.ok ? 'clean' : state.reason);
    const head = spawnSync('git', ['-C', vendorDir, 'rev-parse', 'HEAD'], { encoding: 'utf8' }).stdout.trim();
    t.equal(head, pin.commit);
    // git fsck over the checked-out objects: the tree matches its hashes.
    const fsck = spawnSync('git', ['-C', vendorDir, 'fsck', '--no-dangling', '--connectivity-only'], {
      encoding: 'utf8',
    });
    t.equal(fsck.status, 0, fsck.stderr);
    t.ok(readFileSync(join(vendorDir, 'include', 'llama.h'), 'utf8').includes('llama_decode'));
  },
);

t.test('a modified vendored file is detected', async (t) => {
  const dir = t.testdir({});
  const r = spawnSync('git', ['clone', '--quiet', '--shared', vendorDir, join(dir, 'copy')], { encoding: 'utf8' });
  t.equal(r.status, 0, r.stderr);
  spawnSync('git', [
    '-C',
    join(dir, 'copy'),
    '-c',
    'advice.detachedHead=false',
    'checkout',
    '--quiet',
    '--detach',
    pin.commit,
  ]);
  t.ok(checkVendorTree(join(dir, 'copy')).ok, 'a fresh copy passes');
  const file = join(dir, 'copy', 'include', 'llama.h');
  const text = readFileSync(file, 'utf8');
  await import('node:fs/promises').then((fs) => fs.writeFile(file, `${text}\n// tampered\n`));
  const state = checkVendorTree(join(dir, 'copy'));
  t.notOk(state.ok);
  t.match(state.ok ? '' : state.reason, /include\/llama\.h/);
});

t.test('running the vendor step again downloads nothing', async (t) => {
  const r = spawnSync(process.execPath, [join(projectRoot, 'scripts', 'vendor-llama.mjs')], { encoding: 'utf8' });
  t.equal(r.status, 0, r.stderr);
  t.match(r.stderr, /already at/);
  t.notMatch(r.stderr, /downloading/);
});
