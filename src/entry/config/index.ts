// The flags and environment variables of `npm start`: llama-server's, with its names, short forms, defaults and
// LLAMA_ARG_* variables (vendor/llama.cpp/common/arg.cpp), plus a few of this server's own. A llama-server flag
// that changes nothing here is accepted with one warning; one for something this server does not do is refused
// with the reason; an unknown flag is an error naming it. Pure: parseServeConfig(argv, env) returns the config.
//
// The folder: serve-config.ts (the type and its defaults), one table per --help section as llama-server groups
// them (common-flags, sampling-flags, speculative-flags, server-*-flags; own-flags for this server's), checks.ts
// (across flags).
// It imports the flag layer (src/flags/), the HTTP layer's types and defaults, and the GGUF library's KV types.
import { type FlagSpec, flagTable, flagUsage, parseFlags } from '../../flags/parse.ts';
import { checkServeConfig } from './checks.ts';
import { COMMON_FLAGS } from './common-flags.ts';
import { OWN_FLAGS } from './own-flags.ts';
import { SAMPLING_FLAGS } from './sampling-flags.ts';
import { defaultServeConfig, type ServeConfig, type ServeFlagKey } from './serve-config.ts';
import { SERVER_CHAT_FLAGS } from './server-chat-flags.ts';
import { SERVER_HTTP_FLAGS } from './server-http-flags.ts';
import { SERVER_LOG_FLAGS } from './server-log-flags.ts';
import { SERVER_MODEL_FLAGS } from './server-model-flags.ts';
import { SERVER_SCHEDULING_FLAGS } from './server-scheduling-flags.ts';
import { SPECULATIVE_FLAGS } from './speculative-flags.ts';

export { FlagError as ConfigError } from '../../flags/parse.ts';
export { defaultServeConfig, type ServeConfig, type ServeFlagKey } from './serve-config.ts';

/** Every flag, in --help's order. */
const FLAGS: readonly FlagSpec<ServeFlagKey>[] = [
  ...COMMON_FLAGS,
  ...SAMPLING_FLAGS,
  ...SPECULATIVE_FLAGS,
  ...SERVER_MODEL_FLAGS,
  ...SERVER_SCHEDULING_FLAGS,
  ...SERVER_HTTP_FLAGS,
  ...SERVER_CHAT_FLAGS,
  ...SERVER_LOG_FLAGS,
  ...OWN_FLAGS,
];

export function parseServeConfig(
  argv: readonly string[],
  env: Readonly<Record<string, string | undefined>> = process.env,
): ServeConfig {
  const parsed = parseFlags(FLAGS, argv, env);
  const config = { ...defaultServeConfig(), ...parsed.values } as ServeConfig;
  config.explicit = parsed.explicit;
  config.warnings = parsed.warnings;
  return checkServeConfig(config);
}

/** Context per slot: -c split over the slots, else 4096, never above what the model was trained on. */
export function slotContext(config: Pick<ServeConfig, 'ctxSize' | 'parallel'>, nCtxTrain: number): number {
  const total = config.ctxSize === 0 ? nCtxTrain : config.ctxSize;
  const wanted = total !== undefined && total > 0 ? Math.floor(total / config.parallel) : 4096;
  return Math.max(64, Math.min(wanted, nCtxTrain > 0 ? nCtxTrain : wanted));
}

export function serveUsage(): string {
  return flagUsage(
    FLAGS,
    "Usage: npm start -- [options]\n\nAn OpenAI-compatible server that takes llama-server's flags. Routes: POST /v1/chat/completions,\n/v1/completions, /completion, /tokenize, /detokenize, /apply-template; GET /v1/models, /health, /props, /slots,\n/metrics (with --metrics); with --embeddings: POST /v1/embeddings, /embeddings.",
  );
}

/** Every serve flag's spec, in --help's order: router mode maps --models-preset keys onto them (src/router/catalog.ts). */
export function serveFlagSpecs(): readonly FlagSpec<ServeFlagKey>[] {
  return FLAGS;
}

/** The flag table of docs/COMPATIBILITY.md (scripts/update-compat-doc.ts writes it there). */
export function serveFlagTable(): string {
  return flagTable(FLAGS);
}
