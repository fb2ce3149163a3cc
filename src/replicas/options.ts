// Command line of `npm run replicas`: the launcher's own flags (one table, on the flag layer the server's uses), and
// every other argument passed through unchanged to each replica's `serve`. The passed-through flags are checked
// here with the server's own parser, so a typo fails before anything starts.

import { parseServeConfig, type ServeConfig } from '../entry/config/index.ts';
import type { Command } from '../flags/command.ts';
import { FlagError, type FlagSpec, parseFlags } from '../flags/parse.ts';

export interface ReplicasOptions {
  /** 0: one per GPU. */
  replicas: number;
  model: string | undefined;
  /** Where HAProxy listens. */
  host: string;
  port: number;
  /** First replica port (then +1 each); 0: each replica takes a free port once and keeps it across restarts. */
  basePort: number;
  /** GPU ids to spread the replicas over (CUDA_VISIBLE_DEVICES); undefined: the ones this machine has. */
  gpus: string[] | undefined;
  haproxy: string | undefined;
  /** Requests carrying the same value go to the same replica (its prompt cache). */
  sessionHeader: string;
  /** Arguments for each replica's `serve`, as given (less the launcher's own). */
  serverArgs: string[];
  /** serverArgs as the server reads them (timeouts and grace shape HAProxy's). */
  server: ServeConfig;
}

export const REPLICA_FLAGS: readonly FlagSpec<Exclude<keyof ReplicasOptions, 'serverArgs' | 'server'>>[] = [
  {
    names: ['--replicas'],
    kind: 'int',
    key: 'replicas',
    min: 1,
    max: 256,
    help: 'servers to start (default: one per GPU; required without a GPU)',
  },
  {
    names: ['-m', '--model'],
    kind: 'string',
    key: 'model',
    value: 'FILE',
    help: 'GGUF model every replica serves (default: the demo model)',
  },
  {
    names: ['--host'],
    kind: 'string',
    key: 'host',
    value: 'HOST',
    default: '127.0.0.1',
    help: 'address HAProxy listens on',
  },
  { names: ['--port'], kind: 'int', key: 'port', min: 1, max: 65535, default: '8090', help: 'port HAProxy listens on' },
  {
    names: ['--base-port'],
    kind: 'int',
    key: 'basePort',
    min: 0,
    max: 65535,
    default: '0',
    help: 'replica i listens on 127.0.0.1:BASE+i (0: free ports, kept across restarts)',
  },
  {
    names: ['--gpus'],
    kind: 'list',
    key: 'gpus',
    value: 'A,B',
    help: 'GPU ids to spread replicas over, round-robin (default: CUDA_VISIBLE_DEVICES, else every GPU found)',
  },
  {
    names: ['--haproxy'],
    kind: 'string',
    key: 'haproxy',
    value: 'PATH',
    help: 'the haproxy binary (default: PATH, /usr/sbin)',
  },
  {
    names: ['--session-header'],
    kind: 'string',
    key: 'sessionHeader',
    value: 'NAME',
    default: 'x-session-id',
    parse: (v) => {
      if (!/^[A-Za-z0-9-]+$/.test(v as string)) throw new Error(`must be a header name, got '${v}'`);
      return v;
    },
    help: 'header whose value keeps a conversation on one replica (else the tenant header)',
  },
];

export const REPLICAS_COMMAND: Command = {
  name: 'replicas',
  synopsis: `Usage: npm run replicas -- [--replicas N] [--model FILE] [--port P] [server options]

Starts N copies of the server (one per GPU when there are several: CUDA_VISIBLE_DEVICES per replica) and
HAProxy in front on P: health checks on /health, least-outstanding-requests balance, session affinity,
retries of requests that never reached a replica, draining on SIGTERM. Every option not listed here is
passed to each replica (npm start -- --help lists them).`,
  flags: REPLICA_FLAGS,
  options: { passUnknown: true },
};

/** Server flags the launcher sets itself for each replica (--host, --port and --model are its own). */
const RESERVED_SERVER_FLAGS = ['--trust-proxy'];

/** Splits the launcher's flags from the server's and checks both; throws a FlagError that names the flag. */
export function parseReplicasArgs(
  argv: readonly string[],
  env: Readonly<Record<string, string | undefined>> = process.env,
): ReplicasOptions {
  const { values, rest: serverArgs } = parseFlags(REPLICA_FLAGS, argv, {}, REPLICAS_COMMAND.options);
  const options = values as Pick<ReplicasOptions, 'host' | 'port' | 'basePort' | 'sessionHeader'> &
    Partial<ReplicasOptions>;
  const replicas = options.replicas ?? 0;
  for (const arg of serverArgs) {
    const name = arg.startsWith('--') && arg.includes('=') ? arg.slice(0, arg.indexOf('=')) : arg;
    if (RESERVED_SERVER_FLAGS.includes(name)) throw new FlagError(`${name} is set by the launcher for each replica`);
  }
  let server: ServeConfig;
  try {
    // As each replica will see them, with the environment it inherits.
    server = parseServeConfig(serverArgs, env);
  } catch (err) {
    if (err instanceof FlagError) throw new FlagError(`server option: ${err.message}`);
    throw err;
  }
  if (options.basePort > 0 && replicas > 0 && options.basePort + replicas - 1 > 65535)
    throw new FlagError(`--base-port ${options.basePort} leaves no room for ${replicas} replicas`);
  return {
    ...options,
    replicas,
    model: options.model,
    gpus: options.gpus,
    haproxy: options.haproxy,
    serverArgs,
    server,
  };
}
