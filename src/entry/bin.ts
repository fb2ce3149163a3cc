#!/usr/bin/env node
// `llama-slots-server` (the package's bin, compiled to dist/entry/bin.js): the server, with `npm start`'s flags.
import { serve } from './serve.ts';

serve(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`error: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  },
);
