#!/usr/bin/env node
// One entry for every command: serve (default), make-model, bench-decoder.
import { runDecoderBenchCli } from './bench/decoder-bench.ts';
import { runMakeModel } from './gguf/generate.ts';

const COMMANDS: Record<string, (argv: string[]) => Promise<number>> = {
  'make-model': (argv) => runMakeModel(argv),
  'bench-decoder': (argv) => runDecoderBenchCli(argv),
};

const USAGE = `Usage: cli.ts <command> [options]
Commands:
  make-model      generate a GGUF with random weights (npm run make-model -- --help)
  bench-decoder   decoder throughput beside llama-batched-bench (npm run bench:decoder -- --help)`;

async function main(): Promise<number> {
  const [command = '', ...argv] = process.argv.slice(2);
  const run = COMMANDS[command];
  if (!run) {
    process.stderr.write(`${command ? `unknown command '${command}'\n` : ''}${USAGE}\n`);
    return 2;
  }
  return run(argv);
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`error: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  },
);
