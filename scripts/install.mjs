#!/usr/bin/env node
// npm install hook: build the web page, vendor llama.cpp, then build the addon. The llama.cpp steps are
// no-ops when already done; the page takes about a second and is always rebuilt.
import { build } from './build-addon.mjs';
import { buildWeb } from './build-web.mjs';
import { vendor } from './vendor-llama.mjs';

try {
  buildWeb();
  if (process.env.LLAMA_SKIP_BUILD === '1') {
    process.stderr.write('[install] LLAMA_SKIP_BUILD=1: not vendoring or building llama.cpp\n');
  } else {
    vendor();
    build();
  }
} catch (err) {
  process.stderr.write(`[install] error: ${err.message}\n`);
  process.exit(1);
}
