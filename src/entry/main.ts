#!/usr/bin/env node
// One entry for every command: serve (default), make-model, bench, bench-compare, bench-router, bench-decoder,
// bench-chat, bench-embed, bench-conversations, fit, replicas, fuzz, soak, docs-compat, docs-reliability.
//
// src/entry/ is the entry wing, the one way in: this dispatcher, the package's bin (bin.ts), the server's start and
// shutdown (serve.ts), the one server factory (assemble.ts), the serve flags (config/) and what turns them into each
// layer's options (server-options.ts, engine-options.ts, inputs.ts), the log and the startup lines. It sits on top
// and may import every layer; nothing imports it but its config/ (the serve flags, for replicas, docs and benches)
// and assemble.ts (for the fuzzer and the test harnesses).
import { runChatBenchCli } from '../bench/chat-bench.ts';
import { runCompareCli } from '../bench/compare.ts';
import { runConversationsCli } from '../bench/conversations/cli.ts';
import { runDecoderBenchCli } from '../bench/decoder-bench.ts';
import { runEmbedBenchCli } from '../bench/embed-bench.ts';
import { runLoadgenCli } from '../bench/loadgen/cli.ts';
import { runRouterBenchCli } from '../bench/router-bench.ts';
import { runSoakCli } from '../bench/soak/cli.ts';
import { updateCompatDoc } from '../docs/compat-doc.ts';
import { updateReliabilityDoc } from '../docs/limits-doc.ts';
import { runFitCli } from '../fit/cli.ts';
import { runFuzzCli } from '../fuzz/cli.ts';
import { runReplicasCli } from '../replicas/cli.ts';
import { runMakeModel } from '../tools/make-model.ts';
import { serve } from './serve.ts';

const COMMANDS: Record<string, (argv: string[]) => Promise<number>> = {
  serve: (argv) => serve(argv),
  'make-model': (argv) => runMakeModel(argv),
  'bench-decoder': (argv) => runDecoderBenchCli(argv),
  bench: (argv) => runLoadgenCli(argv),
  fit: (argv) => runFitCli(argv),
  'bench-compare': (argv) => runCompareCli(argv),
  'bench-router': (argv) => runRouterBenchCli(argv),
  'bench-chat': (argv) => runChatBenchCli(argv),
  'bench-embed': (argv) => runEmbedBenchCli(argv),
  'bench-conversations': (argv) => runConversationsCli(argv),
  replicas: (argv) => runReplicasCli(argv),
  fuzz: (argv) => runFuzzCli(argv),
  soak: (argv) => runSoakCli(argv),
  'docs-compat': async () => {
    await updateCompatDoc();
    return 0;
  },
  'docs-reliability': async () => {
    await updateReliabilityDoc();
    return 0;
  },
};

const USAGE = `Usage: main.ts <command> [options]
Commands:
  serve           the OpenAI-compatible server (npm start -- --help)
  fit             plan GPU layers/slots/context/KV for a VRAM budget (npm run fit -- --help)
  make-model      generate a GGUF with random weights (npm run make-model -- --help)
  bench           load generator: ranks of streaming chat clients (npm run bench -- --help)
  bench-compare   the same load against this server and llama-server (npm run bench:compare -- --help)
  bench-router    two models in one server (router mode), this server and llama-server (npm run bench:router -- --help)
  bench-decoder   decoder throughput beside llama-batched-bench (npm run bench:decoder -- --help)
  bench-chat      chat layer costs: template rendering, output parsing per token (npm run bench:chat)
  bench-embed     embedding throughput, one input per llama_decode against many (npm run bench:embed)
  bench-conversations  returning conversations over a shared system prompt; each answer checked against its solo run
  replicas        N servers behind HAProxy on one host (npm run replicas -- --help)
  fuzz            generated and mutated requests against the server (npm run fuzz -- --help)
  soak            mixed load for a long time; RSS, event loop, slots, 5xx (npm run soak -- --help)
  docs-compat     rewrite the flag table of docs/COMPATIBILITY.md (npm run docs:compat)
  docs-reliability  rewrite the limits table of docs/RELIABILITY.md (npm run docs:reliability)`;

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
