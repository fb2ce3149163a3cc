#!/usr/bin/env node
// Compiles src/ to dist/ (tsconfig.build.json: .ts imports rewritten to .js) for `npm start` and the package's
// bin. Compiled files from an earlier build are removed first, so a deleted module leaves nothing behind;
// dist/webui (the web page, scripts/build-web.mjs) is kept.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const dist = join(root, 'dist');

/** True when this checkout has sources to compile (an installed package ships dist/ only). */
export function hasSources() {
  return existsSync(join(root, 'src', 'entry', 'main.ts')) && existsSync(join(root, 'tsconfig.build.json'));
}

export function buildTs() {
  if (existsSync(dist)) {
    for (const entry of readdirSync(dist))
      if (entry !== 'webui') rmSync(join(dist, entry), { recursive: true, force: true });
  }
  const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
  const r = spawnSync(process.execPath, [tsc, '-p', join(root, 'tsconfig.build.json')], { stdio: 'inherit' });
  if (r.status !== 0) throw new Error(`tsc failed (exit ${r.status ?? r.signal})`);
  process.stderr.write('[build:ts] compiled src/ to dist/\n');
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  try {
    buildTs();
  } catch (err) {
    process.stderr.write(`[build:ts] error: ${err.message}\n`);
    process.exit(1);
  }
}
