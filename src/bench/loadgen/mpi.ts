// Ranks as MPI processes (`mpirun -np N npm run -s bench -- --mpi ...`), on any hosts in the hostfile.
// There is no well-kept MPI binding for Node, so MPI only starts the processes and says who is who (its
// environment: rank and world size); the ranks meet over TCP at rank 0, which is the coordinator of
// barrier.ts: each other rank connects, and becomes a RankLink there exactly as a forked rank is one, so
// the barrier, the go signal and the merged report are the same code as with --ranks N.
//
// Clocks: a rank reports epoch times from its own host's clock. At connect, rank 0 measures each remote
// rank's clock offset (the smallest of a few round trips) and converts the go time into the rank's clock
// and the rank's records into its own, so figures that span ranks (wall time) stay right across hosts.
import { createServer, type Socket, connect as tcpConnect } from 'node:net';
import { createInterface } from 'node:readline';
import type { RankLink } from './barrier.ts';
import { type CoordinatorChannel, serveRank } from './rank.ts';
import { type CoordinatorMessage, epochNow, type RankMessage, type RequestRecord } from './types.ts';

/** This process's place in the MPI job. */
export interface MpiWorld {
  rank: number;
  size: number;
  /** Which launcher's variables said so. */
  source: string;
}

export interface CoordinatorAddress {
  host: string;
  port: number;
}

/** Rank 0's port when --coordinator gives none. */
export const DEFAULT_COORDINATOR_PORT = 29517;

/** Rank and size variables, by launcher: Open MPI, MPICH/Intel MPI (PMI), PMIx, Slurm. */
const WORLD_VARIABLES: ReadonlyArray<{ source: string; rank: string; size: string | null }> = [
  { source: 'Open MPI', rank: 'OMPI_COMM_WORLD_RANK', size: 'OMPI_COMM_WORLD_SIZE' },
  { source: 'PMI', rank: 'PMI_RANK', size: 'PMI_SIZE' },
  // PMIx puts the job size behind a query, not in the environment; launchers that use it set one of the
  // others too (Open MPI 5, Slurm), else --ranks says it.
  { source: 'PMIx', rank: 'PMIX_RANK', size: null },
  { source: 'Slurm', rank: 'SLURM_PROCID', size: 'SLURM_NTASKS' },
];

export class MpiError extends Error {
  override name = 'MpiError';
}

function count(env: Readonly<Record<string, string | undefined>>, name: string): number | null {
  const raw = env[name];
  if (raw === undefined || raw.trim() === '') return null;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 0) throw new MpiError(`${name}='${raw}' is not a rank number`);
  return n;
}

/**
 * Rank and world size from the launcher's environment. `ranks`: the --ranks flag, which must agree with
 * the world size when both are known, and is the size when the environment gives none.
 */
export function mpiWorld(env: Readonly<Record<string, string | undefined>>, ranks: number | null): MpiWorld {
  for (const v of WORLD_VARIABLES) {
    const rank = count(env, v.rank);
    if (rank === null) continue;
    const size = (v.size === null ? null : count(env, v.size)) ?? ranks;
    if (size === null)
      throw new MpiError(`${v.rank} is set but the world size is not (${v.source}): pass --ranks N as well`);
    if (ranks !== null && ranks !== size)
      throw new MpiError(`--ranks ${ranks} disagrees with the MPI world size ${size} (${v.source})`);
    if (size < 1 || rank >= size) throw new MpiError(`rank ${rank} is outside a world of ${size} (${v.source})`);
    return { rank, size, source: v.source };
  }
  throw new MpiError(
    `--mpi: no MPI rank in the environment (${WORLD_VARIABLES.map((v) => v.rank).join(', ')}); run it under mpirun`,
  );
}

/** HOST:PORT, HOST, or :PORT ([v6]:PORT for IPv6). Default 127.0.0.1:29517: every rank on this host. */
export function parseCoordinator(value: string | null): CoordinatorAddress {
  if (value === null) return { host: '127.0.0.1', port: DEFAULT_COORDINATOR_PORT };
  const m = /^(?:\[([^\]]+)\]|([^:[\]]*))(?::(\d+))?$/.exec(value.trim());
  const host = m?.[1] ?? m?.[2] ?? '';
  const port = m?.[3] === undefined ? DEFAULT_COORDINATOR_PORT : Number(m[3]);
  if (m === null || !(port >= 1 && port <= 65535))
    throw new MpiError(`--coordinator must be HOST:PORT (e.g. node0:${DEFAULT_COORDINATOR_PORT}), got '${value}'`);
  return { host: host === '' ? '127.0.0.1' : host, port };
}

// --- the wire: one JSON message per line -------------------------------------------------------------

type FromRank = RankMessage | { type: 'hello'; rank: number; size: number } | { type: 'clock'; t0: number; tr: number };
type ToRank = CoordinatorMessage | { type: 'clock'; t0: number };

function lines(socket: Socket, onLine: (message: unknown) => void): void {
  createInterface({ input: socket, crlfDelay: Number.POSITIVE_INFINITY }).on('line', (line) => {
    if (line.trim() === '') return;
    try {
      onLine(JSON.parse(line));
    } catch {
      socket.destroy(new Error('unreadable message'));
    }
  });
}

function write(socket: Socket, message: FromRank | ToRank, callback?: () => void): void {
  if (socket.destroyed) return callback?.();
  socket.write(`${JSON.stringify(message)}\n`, () => callback?.());
}

const LOOPBACK = new Set(['127.0.0.1', 'localhost', '::1']);

/** Rounds of the clock exchange; the one with the shortest round trip is used. */
const CLOCK_ROUNDS = 5;

/**
 * A remote rank as barrier.ts sees it; times are converted between the two clocks here. `feed` is how the
 * socket's reader hands over the messages that follow the handshake.
 */
function socketLink(socket: Socket, offsetMs: number): { link: RankLink; feed: (message: FromRank) => void } {
  const toLocal = (record: RequestRecord): RequestRecord => ({
    ...record,
    sendMs: record.sendMs - offsetMs,
    endMs: record.endMs - offsetMs,
    chunkMs: record.chunkMs.map((t) => t - offsetMs),
  });
  const listeners: Array<(message: RankMessage) => void> = [];
  const waiting: RankMessage[] = [];
  const feed = (message: FromRank): void => {
    if (message.type === 'hello' || message.type === 'clock') return;
    const local = message.type === 'record' ? { ...message, record: toLocal(message.record) } : message;
    if (listeners.length === 0) waiting.push(local);
    for (const l of listeners) l(local);
  };
  const link: RankLink = {
    send: (message) => write(socket, message.type === 'go' ? { type: 'go', goMs: message.goMs + offsetMs } : message),
    onMessage: (listener) => {
      listeners.push(listener);
      for (const m of waiting.splice(0)) listener(m);
    },
    onExit: (listener) => {
      socket.once('close', () => listener(null, null));
    },
    kill: () => socket.destroy(),
  };
  return { link, feed };
}

/**
 * Rank 0: listens at `address` and waits until ranks 1..size-1 have connected and had their clocks read.
 * Resolves with their links, ready for runRanks(); rejects (closing everything) naming missing ranks.
 */
export async function acceptRanks(
  world: MpiWorld,
  address: CoordinatorAddress,
  timeoutMs: number,
): Promise<{ links: Map<number, RankLink>; close: () => void }> {
  const links = new Map<number, RankLink>();
  const sockets: Socket[] = [];
  if (world.size === 1) return { links, close: () => {} };
  const server = createServer();
  const close = (): void => {
    server.close();
    for (const s of sockets) s.destroy();
  };
  // On another host's address, listen on every interface: the name may resolve to a loopback alias here.
  const bindHost = LOOPBACK.has(address.host) ? address.host : undefined;
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err) =>
      reject(new MpiError(`rank 0 cannot listen on ${address.host}:${address.port}: ${err.message} (--coordinator)`)),
    );
    server.listen({ port: address.port, ...(bindHost ? { host: bindHost } : {}) }, resolve);
  });
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        const missing = Array.from({ length: world.size - 1 }, (_, i) => i + 1).filter((r) => !links.has(r));
        reject(
          new MpiError(
            `ranks ${missing.join(', ')} did not connect to ${address.host}:${address.port} within ${timeoutMs / 1000} s (--coordinator must be rank 0's address, reachable from every host)`,
          ),
        );
      }, timeoutMs);
      server.on('connection', (socket) => {
        sockets.push(socket);
        socket.setNoDelay(true);
        socket.on('error', () => {});
        let rank = -1;
        const samples: Array<{ rtt: number; offset: number }> = [];
        let feed: ((message: FromRank) => void) | null = null;
        lines(socket, (raw) => {
          const message = raw as FromRank;
          if (feed !== null) return feed(message);
          if (message.type === 'hello') {
            const valid = message.size === world.size && message.rank >= 1 && message.rank < world.size;
            if (!valid || links.has(message.rank) || rank !== -1) return void socket.destroy();
            rank = message.rank;
            return write(socket, { type: 'clock', t0: epochNow() });
          }
          if (message.type !== 'clock' || rank < 1) return void socket.destroy();
          const t1 = epochNow();
          samples.push({ rtt: t1 - message.t0, offset: message.tr - (message.t0 + t1) / 2 });
          if (samples.length < CLOCK_ROUNDS) return write(socket, { type: 'clock', t0: epochNow() });
          const best = samples.reduce((a, b) => (b.rtt < a.rtt ? b : a));
          const handed = socketLink(socket, best.offset);
          feed = handed.feed;
          links.set(rank, handed.link);
          if (links.size === world.size - 1) {
            clearTimeout(timer);
            resolve();
          }
        });
      });
    });
  } catch (err) {
    close();
    throw err;
  }
  server.close(); // no more ranks will come; the accepted sockets stay open
  return { links, close };
}

/**
 * A rank other than 0: connects to the coordinator (retrying while rank 0 starts), answers its clock
 * reads, then serves its share of the run as a forked rank would. Resolves with the process exit code.
 */
export async function runRemoteRank(
  world: MpiWorld,
  address: CoordinatorAddress,
  timeoutMs: number,
  log: (line: string) => void,
  /** This host's clock (tests give one that is off). */
  now: () => number = epochNow,
): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  let socket: Socket | null = null;
  let lastError = '';
  while (socket === null && Date.now() < deadline) {
    socket = await new Promise<Socket | null>((resolve) => {
      const s = tcpConnect({ host: address.host, port: address.port });
      s.once('connect', () => resolve(s));
      s.once('error', (err) => {
        lastError = err.message;
        s.destroy();
        resolve(null);
      });
    });
    if (socket === null) await new Promise((r) => setTimeout(r, 200));
  }
  if (socket === null) {
    log(`rank ${world.rank}: cannot reach rank 0 at ${address.host}:${address.port} (${lastError}); --coordinator?`);
    return 1;
  }
  const s = socket;
  s.setNoDelay(true);
  let finished = false;
  const listeners: Array<(message: CoordinatorMessage) => void> = [];
  const channel: CoordinatorChannel = {
    send: (message, callback) => {
      write(s, message, () => callback?.(null));
      return true;
    },
    on: (_event, listener) => {
      listeners.push(listener);
    },
  };
  lines(s, (raw) => {
    const message = raw as ToRank;
    if (message.type === 'clock') return write(s, { type: 'clock', t0: message.t0, tr: now() });
    for (const l of listeners) l(message);
  });
  const lost = new Promise<number>((resolve) =>
    s.once('close', () => {
      if (!finished) log(`rank ${world.rank}: rank 0 went away before the run ended`);
      resolve(finished ? 0 : 1);
    }),
  );
  s.on('error', () => {});
  write(s, { type: 'hello', rank: world.rank, size: world.size });
  const served = serveRank(channel, { now }).then(() => {
    finished = true;
    s.end();
    return 0;
  });
  return Promise.race([served, lost]);
}
