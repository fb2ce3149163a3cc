#!/usr/bin/env node
// npm install hook: in a checkout, compile the TypeScript to dist/ and build the web page; then vendor llama.cpp
// and build the addon (an installed package ships dist/ and builds only the addon). The llama.cpp steps are
// no-ops when already done; the page and the compile take seconds and always run in a checkout.
import { build } from './build-addon.mjs';
import { buildTs, hasSources } from './build-ts.mjs';
import { buildWeb } from './build-web.mjs';
import { vendor } from './vendor-llama.mjs';

try {
  if (hasSources()) {
    buildTs();
    buildWeb();
  }
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
