// `npm run bench:conversations` flags. Every error names its flag (exit code 2).
import type { Command } from '../../flags/command.ts';
import { type FlagSpec, parseFlags } from '../../flags/parse.ts';
import { normalizeBaseUrl } from '../loadgen/options.ts';

export interface ConversationsOptions {
  url: string;
  apiKey: string | null;
  model: string | null;
  /** Conversations, each `turns` requests long; more than the server's slots makes it evict and restore. */
  conversations: number;
  turns: number;
  /** Requests in flight at once. */
  concurrency: number;
  /** The system prompt every conversation shares, in tokens (about). */
  systemTokens: number;
  /** Each user message, in tokens (about). */
  userTokens: number;
  maxTokens: number;
  /** Every n-th request is streamed and abandoned after `cancelAfter` chunks (0: none); its turn is sent again. */
  cancelEvery: number;
  cancelAfter: number;
  timeoutMs: number;
  seed: number;
  jsonFile: string | null;
}

type Key = keyof ConversationsOptions;

const FLAGS: readonly FlagSpec<Key>[] = [
  {
    names: ['--url'],
    kind: 'string',
    key: 'url',
    value: 'URL',
    parse: (v) => normalizeBaseUrl(v as string),
    default: 'http://127.0.0.1:8090',
    help: 'the server (this one or llama-server); /metrics is read when it answers',
  },
  { names: ['--api-key'], kind: 'string', key: 'apiKey', value: 'KEY', help: 'sent as Authorization: Bearer KEY' },
  { names: ['--model'], kind: 'string', key: 'model', value: 'NAME', help: "the requests' model field" },
  {
    names: ['--conversations'],
    kind: 'int',
    key: 'conversations',
    min: 1,
    max: 10_000,
    default: '16',
    help: 'conversations (more than the slots: their prompts leave the slots and come back)',
  },
  { names: ['--turns'], kind: 'int', key: 'turns', min: 1, max: 100, default: '3', help: 'requests per conversation' },
  {
    names: ['--concurrency'],
    kind: 'int',
    key: 'concurrency',
    min: 1,
    max: 1024,
    default: '8',
    help: 'requests in flight at once',
  },
  {
    names: ['--system-tokens'],
    kind: 'int',
    key: 'systemTokens',
    min: 0,
    max: 100_000,
    default: '400',
    help: 'the shared system prompt, about this many tokens',
  },
  {
    names: ['--user-tokens'],
    kind: 'int',
    key: 'userTokens',
    min: 1,
    max: 100_000,
    default: '16',
    help: 'each user message, about this many tokens',
  },
  { names: ['--max-tokens'], kind: 'int', key: 'maxTokens', min: 1, default: '32', help: 'max_tokens of each request' },
  {
    names: ['--cancel-every'],
    kind: 'int',
    key: 'cancelEvery',
    min: 0,
    default: '5',
    help: 'every n-th request is streamed and abandoned mid-answer, then sent again (0: none)',
  },
  {
    names: ['--cancel-after'],
    kind: 'int',
    key: 'cancelAfter',
    min: 1,
    default: '3',
    help: 'chunks a cancelled request reads before the client goes away',
  },
  {
    names: ['--timeout'],
    kind: 'float',
    key: 'timeoutMs',
    above: 0,
    default: '300',
    parse: (v) => Number(v) * 1000,
    help: 'seconds a request may take',
  },
  { names: ['--seed'], kind: 'int', key: 'seed', min: 0, max: 0x7fffffff, default: '1', help: 'seed of the texts' },
  { names: ['--json'], kind: 'string', key: 'jsonFile', value: 'FILE', help: 'write the report as JSON' },
];

export const CONVERSATIONS_COMMAND: Command = {
  name: 'bench-conversations',
  synopsis: `Usage: npm run bench:conversations -- [--url URL] [options]

Many conversations sharing a long system prompt, more of them than the server has slots: a greedy burst of
turns in which prompts leave the slots (to host RAM) and come back, some requests are abandoned mid-answer and sent
again, and new conversations arrive while others run. Then every answered request is sent again alone with
cache_prompt false: each answer must be what the model gives that conversation alone (llama.cpp #27148: a server
whose prompt cache restores another conversation's state fails here). Prints the figures, the cached prompt tokens
against the server's metrics, and every mismatch.`,
  footer:
    'Exit codes: 0 every answer was its solo run and the counts agree, 1 a mismatch, a failed request or an unreachable server, 2 bad arguments.',
  flags: FLAGS,
};

export function parseConversationsArgs(argv: readonly string[]): ConversationsOptions {
  const v = parseFlags(FLAGS, argv, {}).values as Partial<ConversationsOptions> &
    Omit<ConversationsOptions, 'apiKey' | 'model' | 'jsonFile'>;
  return {
    url: v.url,
    apiKey: v.apiKey ?? null,
    model: v.model ?? null,
    conversations: v.conversations,
    turns: v.turns,
    concurrency: v.concurrency,
    systemTokens: v.systemTokens,
    userTokens: v.userTokens,
    maxTokens: v.maxTokens,
    cancelEvery: v.cancelEvery,
    cancelAfter: v.cancelAfter,
    timeoutMs: v.timeoutMs,
    seed: v.seed,
    jsonFile: v.jsonFile ?? null,
  };
}
