// llama-server's server params, scheduling: the slots (-np), continuous batching, prompt caching and slot choice.
import type { FlagSpec } from '../../flags/parse.ts';
import { SERVER } from './groups.ts';
import type { ServeFlagKey } from './serve-config.ts';

export const SERVER_SCHEDULING_FLAGS: readonly FlagSpec<ServeFlagKey>[] = [
  {
    names: ['-np', '--parallel'],
    env: 'LLAMA_ARG_N_PARALLEL',
    kind: 'int',
    key: 'parallel',
    min: -1,
    max: 256,
    group: SERVER,
    help: 'slots: requests decoded together (default 4; -1: auto)',
    parse: (v) => {
      if (v === 0) throw new Error('must not be 0');
      return v === -1 ? 4 : v;
    },
  },
  {
    names: ['-cb', '--cont-batching'],
    env: 'LLAMA_ARG_CONT_BATCHING',
    kind: 'bool',
    group: SERVER,
    help: 'continuous batching',
    ignored: 'continuous batching is always on',
  },
  {
    names: ['-nocb', '--no-cont-batching'],
    kind: 'bool',
    group: SERVER,
    help: 'turn continuous batching off',
    refused: 'continuous batching is always on',
  },
  {
    names: ['--cache-prompt'],
    negated: ['--no-cache-prompt'],
    env: 'LLAMA_ARG_CACHE_PROMPT',
    kind: 'bool',
    key: 'cachePrompt',
    group: SERVER,
    help: "reuse a slot's cached prompt prefix (default on; requests may say cache_prompt: false)",
  },
  {
    names: ['--cache-reuse'],
    env: 'LLAMA_ARG_CACHE_REUSE',
    kind: 'int',
    group: SERVER,
    help: 'minimum chunk to reuse by shifting the KV cache',
    ignored: "prompts are reused by their common prefix with a slot's cache or the RAM cache (--cache-ram)",
  },
  {
    names: ['-sps', '--slot-prompt-similarity'],
    kind: 'float',
    group: SERVER,
    help: 'prompt similarity for slot choice',
    ignored: 'slots are chosen by longest common prefix',
  },
  {
    names: ['--sleep-idle-seconds'],
    kind: 'int',
    key: 'sleepIdleSeconds',
    min: -1,
    value: 'N',
    default: '-1',
    parse: (value) => {
      if (value === 0) throw new Error('cannot be 0 (-1: never)');
      return value;
    },
    group: SERVER,
    help: 'unload a model idle this long; its next request loads it again (-1: never)',
  },
];
