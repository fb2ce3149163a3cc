// Command line of `npm run replicas`: the launcher's own flags (one table, as src/config.ts declares the
// server's), and every other argument passed through unchanged to each replica's `serve`. The passed-through
// flags are checked here with the server's own parser, so a typo fails before anything starts.
import { ConfigError, parseServeConfig, type ServeConfig } from '../config.ts';

export class ReplicasUsageError extends Error {}

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
  help: boolean;
  /** Arguments for each replica's `serve`, as given (less the launcher's own). */
  serverArgs: string[];
  /** serverArgs as the server reads them (timeouts and grace shape HAProxy's). */
  server: ServeConfig;
}

type Kind = 'int' | 'string' | 'list' | 'bool';

interface FlagSpec {
  names: string[];
  kind: Kind;
  key: keyof Omit<ReplicasOptions, 'serverArgs' | 'server'>;
  help: string;
  min?: number;
  max?: number;
}

export const REPLICA_FLAGS: readonly FlagSpec[] = [
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
    help: 'GGUF model every replica serves (default: the demo model)',
  },
  { names: ['--host'], kind: 'string', key: 'host', help: 'address HAProxy listens on (default 127.0.0.1)' },
  { names: ['--port'], kind: 'int', key: 'port', min: 1, max: 65535, help: 'port HAProxy listens on (default 8090)' },
  {
    names: ['--base-port'],
    kind: 'int',
    key: 'basePort',
    min: 0,
    max: 65535,
    help: 'replica i listens on 127.0.0.1:BASE+i (default 0: free ports, kept across restarts)',
  },
  {
    names: ['--gpus'],
    kind: 'list',
    key: 'gpus',
    help: 'GPU ids to spread replicas over, round-robin (default: CUDA_VISIBLE_DEVICES, else every GPU found)',
  },
  { names: ['--haproxy'], kind: 'string', key: 'haproxy', help: 'the haproxy binary (default: PATH, /usr/sbin)' },
  {
    names: ['--session-header'],
    kind: 'string',
    key: 'sessionHeader',
    help: 'header whose value keeps a conversation on one replica (default x-session-id; else the tenant header)',
  },
  { names: ['-h', '--help'], kind: 'bool', key: 'help', help: 'show this help' },
];

/** Server flags the launcher sets itself for each replica (--host, --port and --model are its own). */
const RESERVED_SERVER_FLAGS = ['--trust-proxy'];

export function defaultReplicasOptions(): Omit<ReplicasOptions, 'server'> {
  return {
    replicas: 0,
    model: undefined,
    host: '127.0.0.1',
    port: 8090,
    basePort: 0,
    gpus: undefined,
    haproxy: undefined,
    sessionHeader: 'x-session-id',
    help: false,
    serverArgs: [],
  };
}

function convert(spec: FlagSpec, raw: string, name: string): unknown {
  switch (spec.kind) {
    case 'int': {
      const n = Number(raw);
      if (raw.trim() === '' || !Number.isInteger(n))
        throw new ReplicasUsageError(`${name} must be an integer, got '${raw}'`);
      if ((spec.min !== undefined && n < spec.min) || (spec.max !== undefined && n > spec.max))
        throw new ReplicasUsageError(`${name} must be between ${spec.min} and ${spec.max}, got ${n}`);
      return n;
    }
    case 'string':
      if (raw.trim() === '') throw new ReplicasUsageError(`${name} needs a value`);
      return raw;
    case 'list': {
      const items = raw
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean);
      if (items.length === 0) throw new ReplicasUsageError(`${name} needs a comma-separated list`);
      return items;
    }
    case 'bool':
      return true;
  }
}

/** Splits the launcher's flags from the server's and checks both. */
export function parseReplicasArgs(
  argv: readonly string[],
  env: Readonly<Record<string, string | undefined>> = process.env,
): ReplicasOptions {
  const options = defaultReplicasOptions();
  const set = options as unknown as Record<string, unknown>;
  const serverArgs: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] ?? '';
    const eq = arg.startsWith('--') ? arg.indexOf('=') : -1;
    const name = eq > 0 ? arg.slice(0, eq) : arg;
    const spec = REPLICA_FLAGS.find((f) => f.names.includes(name));
    if (spec === undefined) {
      serverArgs.push(arg);
      continue;
    }
    let raw = 'true';
    if (eq > 0) raw = arg.slice(eq + 1);
    else if (spec.kind !== 'bool') {
      const next = argv[i + 1];
      if (next === undefined) throw new ReplicasUsageError(`${name} needs a value`);
      raw = next;
      i++;
    }
    set[spec.key] = convert(spec, raw, name);
  }
  if (!/^[A-Za-z0-9-]+$/.test(options.sessionHeader))
    throw new ReplicasUsageError(`--session-header must be a header name, got '${options.sessionHeader}'`);
  for (const arg of serverArgs) {
    const name = arg.startsWith('--') && arg.includes('=') ? arg.slice(0, arg.indexOf('=')) : arg;
    if (RESERVED_SERVER_FLAGS.includes(name))
      throw new ReplicasUsageError(`${name} is set by the launcher for each replica`);
  }
  let server: ServeConfig;
  try {
    // As each replica will see them, with the environment it inherits.
    server = parseServeConfig(serverArgs, env);
  } catch (err) {
    if (err instanceof ConfigError) throw new ReplicasUsageError(`server option: ${err.message}`);
    throw err;
  }
  if (options.basePort > 0 && options.replicas > 0 && options.basePort + options.replicas - 1 > 65535)
    throw new ReplicasUsageError(`--base-port ${options.basePort} leaves no room for ${options.replicas} replicas`);
  return { ...options, serverArgs, server };
}

export function replicasUsage(): string {
  const rows = REPLICA_FLAGS.map((f) => {
    const value = f.kind === 'bool' ? '' : f.kind === 'int' ? ' N' : f.kind === 'list' ? ' A,B' : ' VALUE';
    return `${`  ${f.names.join(', ')}${value}`.padEnd(30)} ${f.help}`;
  });
  return `Usage: npm run replicas -- [--replicas N] [--model FILE] [--port P] [server options]

Starts N copies of the server (one per GPU when there are several: CUDA_VISIBLE_DEVICES per replica) and
HAProxy in front on P: health checks on /health, least-outstanding-requests balance, session affinity,
retries of requests that never reached a replica, draining on SIGTERM. Every option not listed here is
passed to each replica (npm start -- --help lists them).

Options:
${rows.join('\n')}
`;
}
