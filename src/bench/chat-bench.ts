// What the chat layer costs per request and per token: rendering a conversation with tools (on a worker thread,
// reported as wall time), and parsing the output as it grows (on the main thread, so it must stay well under a
// millisecond per token). `npm run bench:chat [-- --tokens 500]`.

import { ChatTemplates, Model } from '../engine/index.ts';
import { type Command, readCommandLine } from '../flags/command.ts';
import { type FlagSpec, parseFlags } from '../flags/parse.ts';
import { ensureModel } from '../tools/model-cache.ts';

const TOOL = {
  type: 'function',
  function: {
    name: 'search',
    description: 'Search the web',
    parameters: { type: 'object', properties: { query: { type: 'string' }, limit: { type: 'integer' } } },
  },
};

function stats(samples: number[]): string {
  const sorted = [...samples].sort((a, b) => a - b);
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0;
  const mean = samples.reduce((a, b) => a + b, 0) / samples.length;
  return `mean ${mean.toFixed(1)} µs, p50 ${at(0.5).toFixed(1)}, p99 ${at(0.99).toFixed(1)}, max ${at(1).toFixed(1)}`;
}

/** Pushes `text` in pieces of about 4 characters (a token), timing each push. */
function parseCost(chat: ChatTemplates, config: string, text: string): number[] {
  const parser = chat.parser(config);
  const out: number[] = [];
  for (let i = 0; i < text.length; i += 4) {
    const t0 = performance.now();
    parser.push(text.slice(i, i + 4));
    out.push((performance.now() - t0) * 1000);
  }
  const t0 = performance.now();
  parser.push('', true);
  out.push((performance.now() - t0) * 1000);
  return out;
}

const CHAT_BENCH_FLAGS: readonly FlagSpec<'tokens'>[] = [
  { names: ['--tokens'], kind: 'int', key: 'tokens', min: 1, default: '500', help: 'length of the parsed outputs' },
];

export const CHAT_BENCH_COMMAND: Command = {
  name: 'bench:chat',
  synopsis: `Usage: npm run bench:chat -- [--tokens N]

What the chat layer costs: rendering a conversation with tools, and parsing the output per token.`,
  flags: CHAT_BENCH_FLAGS,
};

export function parseChatBenchArgs(argv: readonly string[]): { tokens: number } {
  return parseFlags(CHAT_BENCH_FLAGS, argv, {}).values as { tokens: number };
}

export async function runChatBenchCli(argv: string[]): Promise<number> {
  const line = readCommandLine(CHAT_BENCH_COMMAND, argv, process, parseChatBenchArgs);
  if ('exit' in line) return line.exit;
  const { tokens } = line.args;
  const model = await Model.load(await ensureModel({ preset: 'tiny-qwen', quant: 'F16', seed: 1 }));
  const chat = new ChatTemplates(model);
  const messages = [
    { role: 'system', content: 'You are helpful.' },
    { role: 'user', content: 'Find recent results about llama.cpp servers, then summarise them.' },
  ];
  const renders: number[] = [];
  let prompt = await chat.apply({ messages, tools: [TOOL] });
  for (let k = 0; k < 20; k++) {
    const t0 = performance.now();
    prompt = await chat.apply({ messages, tools: [TOOL] });
    renders.push((performance.now() - t0) * 1000);
  }
  const words = 'the server decodes many sequences in one step and keeps their prompts cached '.repeat(tokens);
  const content = words.slice(0, tokens * 4);
  const call = `I will search.<tool_call>\n{"name": "search", "arguments": {"query": "${'llama '.repeat(tokens / 2).slice(0, tokens * 3)}", "limit": 5}}\n</tool_call>`;
  process.stdout.write(
    `chat layer on ${model.info.description} (Qwen 2.5 template, 1 tool), ${tokens}-token outputs\n`,
  );
  process.stdout.write(`render (worker thread, wall):      ${stats(renders)}\n`);
  process.stdout.write(`parse per token, plain content:    ${stats(parseCost(chat, prompt.parserConfig, content))}\n`);
  process.stdout.write(`parse per token, tool call:        ${stats(parseCost(chat, prompt.parserConfig, call))}\n`);
  chat.dispose();
  model.dispose();
  return 0;
}
