// llama-server's server params, logs: off, to a file, verbose; its log decorations are accepted and ignored.
import type { FlagSpec } from '../../flags/parse.ts';
import { SERVER } from './groups.ts';
import type { ServeFlagKey } from './serve-config.ts';

export const SERVER_LOG_FLAGS: readonly FlagSpec<ServeFlagKey>[] = [
  { names: ['--log-disable'], kind: 'bool', key: 'logDisable', group: SERVER, help: 'no log output' },
  {
    names: ['--log-file'],
    env: 'LLAMA_ARG_LOG_FILE',
    kind: 'string',
    key: 'logFile',
    value: 'FNAME',
    group: SERVER,
    help: 'write the log to a file (JSON lines)',
  },
  {
    names: ['-v', '--verbose', '--log-verbose'],
    kind: 'bool',
    key: 'verbose',
    group: SERVER,
    help: 'debug logs; responses carry __verbose (the prompt)',
  },
  {
    names: ['-lv', '--verbosity', '--log-verbosity'],
    env: 'LLAMA_ARG_LOG_VERBOSITY',
    kind: 'int',
    key: 'logLevel',
    min: 0,
    max: 5,
    group: SERVER,
    help: 'log threshold: 1 error, 2 warn, 3 info (default), 4+ debug',
    parse: (v) => ((v as number) <= 1 ? 'error' : v === 2 ? 'warn' : v === 3 ? 'info' : 'debug'),
  },
  ...[['--log-colors'], ['--log-prompts-dir']].map(
    (names): FlagSpec<ServeFlagKey> => ({
      names,
      kind: 'string',
      group: SERVER,
      help: 'log decoration',
      ignored: 'logs are one line per event (text at a terminal, JSON otherwise)',
    }),
  ),
  ...[
    ['--log-prefix', '--no-log-prefix'],
    ['--log-timestamps', '--no-log-timestamps'],
  ].map(
    ([name, negated]): FlagSpec<ServeFlagKey> => ({
      names: [name ?? ''],
      negated: [negated ?? ''],
      kind: 'bool',
      group: SERVER,
      help: 'log decoration',
      ignored: 'logs are one line per event (text at a terminal, JSON otherwise)',
    }),
  ),
];
