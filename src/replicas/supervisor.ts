// Runs the replicas and HAProxy in front of them: starts every replica (`serve` as a child process, one GPU
// each through CUDA_VISIBLE_DEVICES), waits until each answers /health, writes haproxy.cfg and starts
// HAProxy, then supervises. A replica that crashes is restarted on the same port (HAProxy's health check
// takes it out and back in); one that exits cleanly was drained on purpose and stays down. SIGTERM/SIGINT
// drain the whole set: HAProxy stops accepting and finishes what it is serving (soft stop), then every
// replica gets SIGTERM and drains its own queue within its grace period.
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { FAIRNESS_HEADERS } from '../server/client-key.ts';
import { type HaproxyServer, haproxyConfig } from './haproxy-config.ts';

export interface SupervisorOptions {
  replicas: number;
  model: string;
  /** CUDA_VISIBLE_DEVICES of each replica (null: leave the environment as it is). */
  devices: Array<string | null>;
  host: string;
  port: number;
  basePort: number;
  haproxy: string;
  sessionHeader: string;
  serverArgs: string[];
  /** The server's grace period and request timeout (they size HAProxy's drain and timeouts). */
  shutdownGraceSeconds: number;
  requestTimeoutSeconds: number;
  env: NodeJS.ProcessEnv;
  log: (line: string) => void;
}

/** The dispatcher of the entry wing (TypeScript here, JavaScript if compiled). */
const CLI_ENTRY = fileURLToPath(
  new URL(`../entry/main${import.meta.url.endsWith('.ts') ? '.ts' : '.js'}`, import.meta.url),
);

/** haproxy from PATH, else where Debian puts it (/usr/sbin is not on every user's PATH). */
export function findHaproxy(env: NodeJS.ProcessEnv = process.env): string | undefined {
  const dirs = [...(env.PATH ?? '').split(delimiter).filter(Boolean), '/usr/sbin', '/usr/local/sbin'];
  return dirs.map((d) => join(d, 'haproxy')).find((p) => existsSync(p));
}

const RESTART_DELAY_MS = [1000, 2000, 5000, 10_000, 30_000];
/** A replica that stayed up this long is healthy again: its next crash restarts it after the shortest delay. */
const STABLE_MS = 60_000;

function exitText(code: number | null, signal: NodeJS.Signals | null): string {
  return signal ? `killed by ${signal}` : `exited with code ${code}`;
}

/** A port nothing listens on now (the kernel's pick). */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Resolves when GET url/health answers 200; throws once `gone()` is true. */
async function healthy(url: string, gone: () => boolean): Promise<void> {
  while (!gone()) {
    const res = await fetch(`${url}/health`, { signal: AbortSignal.timeout(2000) }).catch(() => undefined);
    await res?.body?.cancel().catch(() => {});
    if (res?.status === 200) return;
    await sleep(200);
  }
  throw new Error('gone before it was ready');
}

class Replica {
  child: ChildProcess | null = null;
  port: number;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }> = Promise.resolve({ code: 0, signal: null });
  restarts = 0;
  startedAt = 0;

  constructor(
    readonly index: number,
    readonly device: string | null,
    port: number,
  ) {
    this.port = port;
  }

  get name(): string {
    return `replica${this.index}`;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }
}

export class ReplicaSet {
  readonly #o: SupervisorOptions;
  readonly #replicas: Replica[];
  #haproxy: ChildProcess | null = null;
  #haproxyExited: Promise<number | null> = Promise.resolve(0);
  #dir = '';
  #stopping: Promise<number> | null = null;
  #done: (code: number) => void = () => {};
  readonly finished: Promise<number>;

  constructor(options: SupervisorOptions) {
    this.#o = options;
    this.#replicas = Array.from(
      { length: options.replicas },
      (_, i) => new Replica(i, options.devices[i] ?? null, options.basePort > 0 ? options.basePort + i : 0),
    );
    this.finished = new Promise((resolve) => {
      this.#done = resolve;
    });
  }

  get statsSocket(): string {
    return join(this.#dir, 'haproxy.sock');
  }

  get configPath(): string {
    return join(this.#dir, 'haproxy.cfg');
  }

  /** Starts everything; rejects (having stopped what did start) if a replica or HAProxy cannot start. */
  async start(): Promise<void> {
    this.#dir = await mkdtemp(join(tmpdir(), 'llama-replicas-'));
    try {
      await Promise.all(this.#replicas.map((r) => this.#startReplica(r)));
      await this.#startHaproxy();
    } catch (err) {
      this.#stopping = Promise.resolve(1);
      await this.#killAll();
      await rm(this.#dir, { recursive: true, force: true });
      throw err;
    }
    const front = `http://${this.#o.host}:${this.#o.port}`;
    this.#o.log(
      `serving ${front} with ${this.#replicas.length} replicas; HAProxy stats: echo "show stat" | socat stdio ${this.statsSocket}`,
    );
  }

  /** Drains HAProxy, then the replicas; resolves with `code`. Idempotent (the first call's code stands). */
  stop(reason: string, code = 0): Promise<number> {
    if (this.#stopping) return this.#stopping;
    this.#o.log(`${reason}: draining (HAProxy stops accepting and finishes in-flight requests, then the replicas)`);
    this.#stopping = (async () => {
      const haproxy = this.#haproxy;
      if (haproxy && haproxy.exitCode === null && haproxy.signalCode === null) {
        haproxy.kill('SIGUSR1'); // soft stop; hard-stop-after bounds it
        await this.#haproxyExited;
      }
      await Promise.all(
        this.#replicas.map(async (r) => {
          const child = r.child;
          if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
          await r.exited;
        }),
      );
      await rm(this.#dir, { recursive: true, force: true });
      this.#o.log('stopped');
      return code;
    })();
    void this.#stopping.then((code) => this.#done(code));
    return this.#stopping;
  }

  async #killAll(): Promise<void> {
    this.#haproxy?.kill('SIGKILL');
    for (const r of this.#replicas) r.child?.kill('SIGKILL');
    await Promise.all([this.#haproxyExited, ...this.#replicas.map((r) => r.exited)]);
  }

  #pipe(child: ChildProcess, prefix: string, onLine?: (line: string) => void): void {
    for (const stream of [child.stdout, child.stderr]) {
      if (!stream) continue;
      createInterface({ input: stream, crlfDelay: Number.POSITIVE_INFINITY }).on('line', (line) => {
        onLine?.(line);
        this.#o.log(`[${prefix}] ${line}`);
      });
    }
  }

  async #startReplica(r: Replica): Promise<void> {
    const o = this.#o;
    // A free port, taken once and kept across restarts, so HAProxy's configuration never changes.
    if (r.port === 0) r.port = await freePort();
    const env: NodeJS.ProcessEnv = { ...o.env };
    if (r.device !== null) env.CUDA_VISIBLE_DEVICES = r.device;
    const execArgv = CLI_ENTRY.endsWith('.ts') ? ['--import', import.meta.resolve('tsx')] : [];
    const args = [
      ...execArgv,
      CLI_ENTRY,
      'serve',
      ...o.serverArgs,
      '-m',
      o.model,
      '--host',
      '127.0.0.1',
      '--port',
      String(r.port),
      // HAProxy's X-Forwarded-For names the client: the fairness key's last resort.
      '--trust-proxy',
      '127.0.0.1',
    ];
    const child = spawn(process.execPath, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    r.child = child;
    r.startedAt = Date.now();
    r.exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
    let exit: string | null = null;
    void r.exited.then(({ code, signal }) => {
      exit = exitText(code, signal);
    });
    this.#pipe(child, r.name);
    const before = (): Error => new Error(`${r.name} ${exit ?? 'exited'} before it was ready`);
    await healthy(r.url, () => exit !== null).catch(() => {
      throw before();
    });
    const gpu = r.device === null ? '' : `, CUDA_VISIBLE_DEVICES=${r.device}`;
    o.log(`${r.name} ready at ${r.url} (pid ${child.pid}${gpu})`);
    void r.exited.then(({ code, signal }) => this.#onReplicaExit(r, child, code, signal));
  }

  #onReplicaExit(r: Replica, child: ChildProcess, code: number | null, signal: NodeJS.Signals | null): void {
    if (this.#stopping || r.child !== child) return;
    if (code === 0) {
      this.#o.log(`${r.name} exited cleanly (drained); not restarted`);
      return;
    }
    if (Date.now() - r.startedAt >= STABLE_MS) r.restarts = 0;
    const delay = RESTART_DELAY_MS[Math.min(r.restarts, RESTART_DELAY_MS.length - 1)] ?? 30_000;
    r.restarts++;
    this.#o.log(`${r.name} ${exitText(code, signal)}; restarting in ${delay / 1000} s on port ${r.port}`);
    setTimeout(() => {
      if (this.#stopping) return;
      this.#startReplica(r).catch((err: unknown) => {
        this.#o.log(`${r.name} did not come back: ${(err as Error).message}`);
      });
    }, delay).unref();
  }

  async #startHaproxy(): Promise<void> {
    const o = this.#o;
    const servers: HaproxyServer[] = this.#replicas.map((r) => ({ name: r.name, host: '127.0.0.1', port: r.port }));
    await writeFile(
      this.configPath,
      haproxyConfig({
        bindHost: o.host,
        bindPort: o.port,
        servers,
        sessionHeader: o.sessionHeader,
        tenantHeaders: FAIRNESS_HEADERS,
        statsSocket: this.statsSocket,
        serverTimeoutSeconds: o.requestTimeoutSeconds + 10,
        drainSeconds: o.shutdownGraceSeconds + 5,
      }),
    );
    // -db: stay in the foreground, so signals and exit reach us; -W is not needed for a soft stop.
    const child = spawn(o.haproxy, ['-db', '-f', this.configPath], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.#haproxy = child;
    this.#haproxyExited = new Promise((resolve) => {
      child.once('exit', (code) => resolve(code));
      child.once('error', (err) => {
        o.log(`[haproxy] ${err.message}`);
        resolve(null);
      });
    });
    this.#pipe(child, 'haproxy');
    const front = `http://${o.host === '0.0.0.0' ? '127.0.0.1' : o.host}:${o.port}`;
    let exited = false;
    void this.#haproxyExited.then(() => {
      exited = true;
    });
    await healthy(front, () => exited).catch(() => {
      throw new Error(`haproxy did not start (see its output above); its configuration is ${this.configPath}`);
    });
    void this.#haproxyExited.then((code) => {
      if (this.#stopping) return;
      o.log(`haproxy exited unexpectedly (code ${code}); stopping the replicas`);
      void this.stop('haproxy is gone', 1);
    });
  }
}
