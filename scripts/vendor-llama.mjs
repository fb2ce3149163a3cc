#!/usr/bin/env node
import { spawnSync } from 'node:child_process';
// Puts llama.cpp at the pinned commit into vendor/llama.cpp.
// Source: the git bundle that node-llama-cpp ships on the npm registry (the only place we can reach),
// checked against the integrity hash pinned in package.json. The tarball is cached outside the clone.
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { requireTools } from './lib/prereqs.mjs';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const pin = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')).llamaCpp;
export const vendorDir = join(root, 'vendor', 'llama.cpp');

function log(msg) {
  process.stderr.write(`[vendor] ${msg}\n`);
}

function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', ...opts });
  if (r.error) throw new Error(`${cmd} could not run: ${r.error.message}`);
  if (r.status !== 0) {
    throw new Error(`${cmd} ${args.join(' ')} failed (exit ${r.status}):\n${(r.stderr || r.stdout || '').trim()}`);
  }
  return (r.stdout || '').trim();
}

export function cacheDir() {
  const base =
    process.env.LLAMA_SERVER_CACHE_DIR ??
    join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'llama-slots-server');
  return base;
}

function integrityOf(file) {
  const [algo] = pin.integrity.split('-');
  return `${algo}-${createHash(algo).update(readFileSync(file)).digest('base64')}`;
}

/** The pinned tarball, from the cache when its hash matches, else from the registry via `npm pack`. */
function fetchTarball() {
  const dir = join(cacheDir(), 'downloads');
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `${pin.package}-${pin.version}.tgz`);
  if (existsSync(file) && integrityOf(file) === pin.integrity) {
    log(`using cached ${file}`);
    return file;
  }
  log(`downloading ${pin.package}@${pin.version} from the npm registry (~35 MB)`);
  const tmp = mkdtempSync(join(dir, 'pack-'));
  try {
    run('npm', ['pack', `${pin.package}@${pin.version}`, '--pack-destination', tmp, '--silent'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
  } catch (err) {
    rmSync(tmp, { recursive: true, force: true });
    throw new Error(
      `could not download ${pin.package}@${pin.version} from the npm registry: ${err.message}\n` +
        'Check network access to the registry (npm config get registry), or set LLAMA_CPP_DIR to an existing ' +
        `llama.cpp checkout at commit ${pin.commit}.`,
    );
  }
  const got = readdirSync(tmp).find((f) => f.endsWith('.tgz'));
  if (!got) throw new Error('npm pack produced no tarball');
  const actual = integrityOf(join(tmp, got));
  if (actual !== pin.integrity) {
    rmSync(tmp, { recursive: true, force: true });
    throw new Error(`integrity mismatch for ${pin.package}@${pin.version}: expected ${pin.integrity}, got ${actual}`);
  }
  renameSync(join(tmp, got), file);
  rmSync(tmp, { recursive: true, force: true });
  return file;
}

/** HEAD of dir when it is a clean checkout of the pinned commit, else a reason it is not. */
export function checkVendorTree(dir = vendorDir) {
  if (!existsSync(join(dir, '.git'))) return { ok: false, reason: `${dir} is not a git checkout` };
  const head = spawnSync('git', ['-C', dir, 'rev-parse', 'HEAD'], { encoding: 'utf8' }).stdout?.trim();
  if (head !== pin.commit) return { ok: false, reason: `HEAD is ${head || 'unknown'}, expected ${pin.commit}` };
  const dirty = spawnSync('git', ['-C', dir, 'status', '--porcelain', '--untracked-files=no'], { encoding: 'utf8' });
  if (dirty.status !== 0 || dirty.stdout.trim() !== '') {
    return { ok: false, reason: `tracked files differ from commit ${pin.commit}:\n${dirty.stdout.trim()}` };
  }
  return { ok: true, head };
}

export function vendor() {
  if (process.env.LLAMA_CPP_DIR) {
    const dir = resolve(process.env.LLAMA_CPP_DIR);
    if (!existsSync(join(dir, 'include', 'llama.h'))) {
      throw new Error(`LLAMA_CPP_DIR=${dir} does not look like a llama.cpp checkout (no include/llama.h)`);
    }
    log(`using LLAMA_CPP_DIR=${dir} (not fetching)`);
    return dir;
  }
  const state = checkVendorTree();
  if (state.ok) {
    log(`vendor/llama.cpp already at ${pin.commit.slice(0, 12)}`);
    return vendorDir;
  }
  requireTools(['git', 'tar']);
  if (existsSync(vendorDir)) log(`refreshing vendor/llama.cpp: ${state.reason}`);
  const tarball = fetchTarball();
  // Work beside the target so the final rename stays on one filesystem.
  mkdirSync(dirname(vendorDir), { recursive: true });
  const work = mkdtempSync(join(dirname(vendorDir), '.llama.cpp-'));
  try {
    run('tar', ['-xzf', tarball, '-C', work, pin.bundle]);
    const bundle = join(work, pin.bundle);
    const clone = join(work, 'llama.cpp');
    run('git', ['-c', 'advice.detachedHead=false', 'clone', '--quiet', '--no-checkout', bundle, clone]);
    run('git', ['-C', clone, '-c', 'advice.detachedHead=false', 'checkout', '--quiet', pin.commit]);
    const cloned = checkVendorTree(clone);
    if (!cloned.ok) throw new Error(`the bundle did not give the pinned tree: ${cloned.reason}`);
    rmSync(vendorDir, { recursive: true, force: true });
    renameSync(clone, vendorDir);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  log(`vendor/llama.cpp checked out at ${pin.commit}`);
  return vendorDir;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  try {
    vendor();
  } catch (err) {
    process.stderr.write(`[vendor] error: ${err.message}\n`);
    process.exit(1);
  }
}
