// A router-mode server under test, as a child process in its own process group (llama-server's router starts a
// child per model; stopping the group stops them too), and the model-management API both servers share:
// GET /models (data[i].id, data[i].status.value), POST /models/load and /models/unload {"model": id}.
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { createServer } from 'node:net';
import { projectRoot } from '../../paths.ts';

export interface RouterServer {
  url: string;
  /** The command line, as the report prints it. */
  command: string;
  /** The last lines it printed (stdout and stderr), for error messages. */
  logTail(chars?: number): string;
  stop(): Promise<void>;
}

async function pickPort(): Promise<number> {
  const probe = createServer();
  probe.listen(0, '127.0.0.1');
  await once(probe, 'listening');
  const { port } = probe.address() as { port: number };
  probe.close();
  await once(probe, 'close');
  return port;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Starts `cmd args --host 127.0.0.1 --port P` and waits for /health to answer 200. */
export async function startRouterServer(
  label: string,
  cmd: string,
  args: readonly string[],
  timeoutMs = 120_000,
): Promise<RouterServer> {
  const port = await pickPort();
  const argv = [...args, '--host', '127.0.0.1', '--port', String(port)];
  const child: ChildProcess = spawn(cmd, argv, { cwd: projectRoot, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  let log = '';
  const keep = (chunk: Buffer) => {
    log = (log + chunk.toString()).slice(-40_000);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  let spawnError: Error | null = null;
  child.on('error', (err) => {
    spawnError = err;
  });
  const exited = new Promise<void>((resolve) => child.on('close', () => resolve()));
  const signal = (sig: NodeJS.Signals) => {
    if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
    try {
      process.kill(-child.pid, sig);
    } catch {
      // already gone
    }
  };
  const server: RouterServer = {
    url: `http://127.0.0.1:${port}`,
    command: `${cmd} ${argv.join(' ')}`,
    logTail: (chars = 3000) => log.slice(-chars),
    async stop() {
      signal('SIGTERM');
      const timer = setTimeout(() => signal('SIGKILL'), 15_000);
      await exited;
      clearTimeout(timer);
      // The group may outlive its leader (a model's child still shutting down).
      if (child.pid !== undefined) {
        try {
          process.kill(-child.pid, 'SIGKILL');
        } catch {
          // the whole group is gone
        }
      }
    },
  };
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (spawnError !== null) throw new Error(`${label} could not start (${cmd}): ${(spawnError as Error).message}`);
    if (child.exitCode !== null || child.signalCode !== null)
      throw new Error(`${label} exited (${child.exitCode ?? child.signalCode}) while starting:\n${server.logTail()}`);
    const r = await fetch(`${server.url}/health`).catch(() => undefined);
    if (r?.status === 200) return server;
    await sleep(100);
  }
  await server.stop();
  throw new Error(`${label} did not answer /health within ${timeoutMs / 1000} s:\n${server.logTail()}`);
}

/** One row of GET /models. */
export interface ModelState {
  id: string;
  /** status.value: unloaded, loading, loaded, ... ('unknown' when the row has none). */
  status: string;
  failed: boolean;
}

/** Reads GET /models' body; rows without an id are skipped. A status may be an object ({value}) or a string. */
export function parseModelList(body: unknown): ModelState[] {
  const data = (body as { data?: unknown } | null)?.data;
  if (!Array.isArray(data)) throw new Error(`GET /models: no data array in ${JSON.stringify(body).slice(0, 200)}`);
  return data.flatMap((row: unknown) => {
    if (typeof row !== 'object' || row === null) return [];
    const { id, status } = row as { id?: unknown; status?: unknown };
    if (typeof id !== 'string') return [];
    const s = (typeof status === 'object' && status !== null ? status : { value: status }) as {
      value?: unknown;
      failed?: unknown;
    };
    const value = typeof s.value === 'string' ? s.value : 'unknown';
    return [{ id, status: value, failed: s.failed === true || value === 'failed' }];
  });
}

export async function listModels(url: string): Promise<ModelState[]> {
  const r = await fetch(`${url}/models`);
  const text = await r.text();
  if (r.status !== 200) throw new Error(`GET /models: HTTP ${r.status}: ${text.slice(0, 300)}`);
  return parseModelList(JSON.parse(text));
}

async function post(url: string, path: string, model: string): Promise<void> {
  const r = await fetch(`${url}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model }),
  });
  const text = await r.text();
  if (r.status < 200 || r.status >= 300)
    throw new Error(`POST ${path} ${model}: HTTP ${r.status}: ${text.slice(0, 300)}`);
}

/** Polls GET /models until the model's status is `want`; throws when it fails or the time is up. */
export async function waitForStatus(
  url: string,
  model: string,
  want: 'loaded' | 'unloaded',
  timeoutMs: number,
): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  let last = 'absent';
  while (performance.now() < deadline) {
    const row = (await listModels(url)).find((m) => m.id === model);
    if (row) {
      last = row.status;
      if (row.status === want) return;
      if (row.failed && want === 'loaded') throw new Error(`model ${model} failed to load (status ${row.status})`);
    }
    await sleep(10);
  }
  throw new Error(`model ${model} not ${want} within ${timeoutMs / 1000} s (status: ${last})`);
}

/** POST /models/load, then the wait for 'loaded': the milliseconds from the POST to the first poll that saw it. */
export async function loadModel(url: string, model: string, timeoutMs: number): Promise<number> {
  const start = performance.now();
  await post(url, '/models/load', model);
  await waitForStatus(url, model, 'loaded', timeoutMs);
  return performance.now() - start;
}

export async function unloadModel(url: string, model: string, timeoutMs: number): Promise<number> {
  const start = performance.now();
  await post(url, '/models/unload', model);
  await waitForStatus(url, model, 'unloaded', timeoutMs);
  return performance.now() - start;
}
