// The server a soak starts when it is given no --url: `src/entry/main.ts serve` as a child process on a free loopback port,
// with --metrics (the soak reads its RSS and event loop there) and a small queue.
import { type ChildProcess, spawn } from 'node:child_process';
import { join } from 'node:path';
import { projectRoot } from '../../paths.ts';

export interface SoakServer {
  url: string;
  /** The command line, for the report. */
  command: string;
  stop(): Promise<number | null>;
}

export async function startSoakServer(args: readonly string[], log: (line: string) => void): Promise<SoakServer> {
  const argv = [
    '--import',
    'tsx',
    join(projectRoot, 'src', 'entry', 'main.ts'),
    'serve',
    '--host',
    '127.0.0.1',
    '--port',
    '0',
    ...args,
  ];
  const child: ChildProcess = spawn(process.execPath, argv, {
    cwd: projectRoot,
    env: { ...process.env, LLAMA_ARG_LOG_FORMAT: 'json' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const url = await new Promise<string>((resolve, reject) => {
    const onData = (chunk: Buffer): void => {
      out += chunk.toString();
      const m = /listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(out);
      if (m?.[1]) resolve(m[1]);
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    void exited.then((code) => reject(new Error(`the server exited (${code}) before listening:\n${out.slice(-2000)}`)));
  });
  // Only its errors are of interest during the run (a 5xx leaves one).
  child.stdout?.on('data', (chunk: Buffer) => {
    for (const line of chunk.toString().split('\n')) if (/"level":(50|60)/.test(line)) log(line);
  });
  for (let k = 0; k < 1200; k++) {
    const r = await fetch(`${url}/health`).catch(() => undefined);
    if (r?.status === 200) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    url,
    command: `node ${argv.slice(2).join(' ')}`,
    async stop() {
      if (child.exitCode === null) child.kill('SIGTERM');
      return exited;
    },
  };
}
