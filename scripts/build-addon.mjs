#!/usr/bin/env node
// Builds llama.cpp (static) and the N-API addon with cmake-js into build-cmake/.
// Incremental: an existing build-cmake/ is reused, so a second `npm ci` only relinks what changed.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cpuDefines, cudaArchitectures, parseCpuFlags, parseNvccVersion } from './lib/build-options.mjs';
import { hasCommand, requireTools } from './lib/prereqs.mjs';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
export const buildDir = join(root, 'build-cmake');

function log(msg) {
  process.stderr.write(`[build] ${msg}\n`);
}

function detectGpuArch() {
  const r = spawnSync('nvidia-smi', ['--query-gpu=compute_cap', '--format=csv,noheader'], { encoding: 'utf8' });
  if (r.status !== 0) return undefined;
  const first = r.stdout.trim().split('\n')[0];
  const n = Math.round(Number.parseFloat(first) * 10);
  return Number.isFinite(n) && n > 0 ? n : undefined;
}

function cudaDefines(env) {
  const nvccPath = env.CUDACXX || 'nvcc';
  const r = spawnSync(nvccPath, ['--version'], { encoding: 'utf8' });
  const nvcc = r.status === 0 ? parseNvccVersion(r.stdout) : null;
  const archs = cudaArchitectures({ nvcc, requested: env.LLAMA_CUDA_ARCH, detected: detectGpuArch() });
  log(`CUDA ${nvcc.major}.${nvcc.minor}, architectures ${archs}`);
  const defs = { GGML_CUDA: 'ON', CMAKE_CUDA_ARCHITECTURES: archs };
  if (env.CUDACXX) defs.CMAKE_CUDA_COMPILER = env.CUDACXX;
  return defs;
}

export function buildDefines(env = process.env) {
  const cpuinfo = existsSync('/proc/cpuinfo') ? readFileSync('/proc/cpuinfo', 'utf8') : '';
  const defs = {
    CMAKE_BUILD_TYPE: 'Release',
    ...cpuDefines({ arch: process.arch, cpuFlags: parseCpuFlags(cpuinfo), override: env.LLAMA_CPU_FEATURES }),
  };
  if (env.LLAMA_CPP_DIR) defs.LLAMA_CPP_DIR = resolve(env.LLAMA_CPP_DIR);
  if (env.LLAMA_CUDA === '1' || env.LLAMA_CUDA === 'ON' || env.LLAMA_CUDA === 'true')
    Object.assign(defs, cudaDefines(env));
  else defs.GGML_CUDA = 'OFF';
  return defs;
}

export function build(env = process.env) {
  requireTools(['cmake', 'c++']);
  const defs = buildDefines(env);
  const cpu = Object.entries(defs)
    .filter(([k, v]) => k.startsWith('GGML_') && v === 'ON')
    .map(([k]) => k.slice(5));
  log(`CPU features: ${cpu.join(' ') || 'baseline'} (GGML_NATIVE=OFF, no AMX)`);
  const jobs = Number(env.LLAMA_BUILD_JOBS) || availableParallelism();
  const options = ['--out', buildDir, '--parallel', String(jobs)];
  if (hasCommand('ninja')) options.push('--generator', 'Ninja');
  for (const [k, v] of Object.entries(defs)) options.push(`--CD${k}=${v}`);
  for (const extra of (env.LLAMA_CMAKE_ARGS ?? '').split(/\s+/).filter(Boolean)) {
    const m = /^-D([^=]+)=(.*)$/.exec(extra);
    if (!m) throw new Error(`LLAMA_CMAKE_ARGS: expected -DNAME=VALUE entries, got '${extra}'`);
    options.push(`--CD${m[1]}=${m[2]}`);
  }
  // cmake-js `build` skips configuring when a cache exists, even a broken one or one made with other
  // options, so configure explicitly unless the last successful configure used exactly these options.
  const stamp = join(buildDir, 'configured-with.json');
  const wanted = JSON.stringify(options);
  const configured =
    existsSync(stamp) &&
    readFileSync(stamp, 'utf8') === wanted &&
    (existsSync(join(buildDir, 'build.ninja')) || existsSync(join(buildDir, 'Makefile')));
  if (!configured) {
    rmSync(stamp, { force: true });
    // A fresh cache: values from an earlier configure (an old LLAMA_CMAKE_ARGS) must not linger. Objects
    // whose compile commands did not change stay up to date.
    rmSync(join(buildDir, 'CMakeCache.txt'), { force: true });
    cmakeJs('configure', options, env);
    writeFileSync(stamp, wanted);
  }
  cmakeJs('build', options, env);
}

function cmakeJs(command, options, env) {
  const bin = join(root, 'node_modules', 'cmake-js', 'bin', 'cmake-js');
  const r = spawnSync(process.execPath, [bin, command, ...options], {
    cwd: root,
    stdio: 'inherit',
    env: { ...env, CCACHE_BASEDIR: root, CCACHE_NOHASHDIR: 'true' },
  });
  if (r.status !== 0) throw new Error(`cmake-js ${command} failed with exit code ${r.status}`);
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  try {
    build();
  } catch (err) {
    process.stderr.write(`[build] error: ${err.message}\n`);
    process.exit(1);
  }
}
