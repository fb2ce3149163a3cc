#!/usr/bin/env node
// npm install hook: vendor llama.cpp, then build the addon. Each step is a no-op when already done.
import { build } from './build-addon.mjs';
import { vendor } from './vendor-llama.mjs';

try {
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
