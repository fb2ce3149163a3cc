#!/usr/bin/env node
// Builds the web page (web/) into dist/webui/: one JS and one CSS bundle with content hashes under assets/,
// an index.html that names them, and gzip + brotli copies of each file for the server to send as they are.
// esbuild does the bundling (minified, no source maps: the page must load in under 100 KB gzipped).
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { brotliCompressSync, constants, gzipSync } from 'node:zlib';
import { buildSync } from 'esbuild';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
export const webuiDir = join(root, 'dist', 'webui');

function log(msg) {
  process.stderr.write(`[build:web] ${msg}\n`);
}

/** Builds the page; returns the files written (relative to outDir) with their raw and gzipped sizes. */
export function buildWeb(outDir = webuiDir) {
  rmSync(outDir, { recursive: true, force: true });
  const assets = join(outDir, 'assets');
  const result = buildSync({
    entryPoints: { app: join(root, 'web', 'src', 'main.tsx') },
    bundle: true,
    minify: true,
    format: 'esm',
    // TextDecoderStream and Array.prototype.findLastIndex set the floor (esbuild adds no polyfills).
    target: ['es2022', 'chrome100', 'firefox105', 'safari15.4'],
    jsx: 'automatic',
    jsxImportSource: 'preact',
    entryNames: '[name]-[hash]',
    outdir: assets,
    metafile: true,
    logLevel: 'warning',
  });
  const outputs = Object.keys(result.metafile.outputs).map((p) => resolve(root, p));
  const js = outputs.find((p) => p.endsWith('.js'));
  const css = outputs.find((p) => p.endsWith('.css'));
  if (js === undefined || css === undefined) throw new Error('esbuild wrote no JS or no CSS bundle');
  const template = readFileSync(join(root, 'web', 'index.html'), 'utf8');
  const html = template
    .replace('%APP_JS%', `/assets/${relative(assets, js)}`)
    .replace('%APP_CSS%', `/assets/${relative(assets, css)}`);
  writeFileSync(join(outDir, 'index.html'), html);

  const files = [join(outDir, 'index.html'), js, css].map((path) => {
    const body = readFileSync(path);
    const gz = gzipSync(body, { level: 9 });
    writeFileSync(`${path}.gz`, gz);
    writeFileSync(
      `${path}.br`,
      brotliCompressSync(body, { params: { [constants.BROTLI_PARAM_QUALITY]: constants.BROTLI_MAX_QUALITY } }),
    );
    return { file: relative(outDir, path), bytes: body.length, gzipBytes: gz.length };
  });
  const total = files.reduce((n, f) => n + f.gzipBytes, 0);
  log(
    `${files.map((f) => `${f.file} ${(f.bytes / 1024).toFixed(1)} KiB (${(f.gzipBytes / 1024).toFixed(1)} KiB gz)`).join(', ')}; ${(total / 1024).toFixed(1)} KiB gzipped in all`,
  );
  return files;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  try {
    buildWeb(process.argv[2] ? resolve(process.argv[2]) : webuiDir);
  } catch (err) {
    log(`error: ${err.message}`);
    process.exit(1);
  }
}
