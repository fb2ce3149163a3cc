// `npm run replicas`: N servers behind HAProxy on one host (docs/SCALING.md). Exit codes: 0 drained and
// stopped, 1 something could not start (or HAProxy died), 2 bad arguments.
import { commandUsage, readCommandLine } from '../flags/command.ts';
import { createProgress } from '../progress.ts';
import { DEMO_MODEL, ensureModel } from '../tools/model-cache.ts';
import { assignGpus, gpuIds } from './gpus.ts';
import { parseReplicasArgs, REPLICAS_COMMAND } from './options.ts';
import { findHaproxy, ReplicaSet } from './supervisor.ts';

export interface ReplicasIo {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WriteStream;
  env: NodeJS.ProcessEnv;
}

export async function runReplicasCli(
  argv: readonly string[],
  io: ReplicasIo = { stdout: process.stdout, stderr: process.stderr, env: process.env },
): Promise<number> {
  const log = (line: string): void => void io.stderr.write(`replicas: ${line}\n`);
  const line = readCommandLine(REPLICAS_COMMAND, argv, io, (args) => parseReplicasArgs(args, io.env));
  if ('exit' in line) return line.exit;
  const o = line.args;
  const haproxy = o.haproxy ?? findHaproxy(io.env);
  if (haproxy === undefined) {
    log('haproxy is not installed (Debian/Ubuntu: apt-get install haproxy), or pass --haproxy PATH');
    return 1;
  }
  const ids = o.gpus ?? gpuIds(io.env);
  const replicas = o.replicas > 0 ? o.replicas : ids.length;
  if (replicas === 0) {
    io.stderr.write(
      `replicas: no GPU found: say how many replicas with --replicas N\n\n${commandUsage(REPLICAS_COMMAND)}`,
    );
    return 2;
  }
  if (ids.length > 0 && replicas > ids.length)
    log(`${replicas} replicas on ${ids.length} GPUs: some GPUs serve more than one`);

  let model = o.model;
  if (model === undefined) {
    // Generated once here, not by every replica at the same time.
    const progress = createProgress('generating the demo model (first start only)', { stream: io.stderr });
    model = await ensureModel({ ...DEMO_MODEL, onProgress: (f, detail) => progress.update(f, detail) });
    progress.done(model);
  }

  const set = new ReplicaSet({
    replicas,
    model,
    devices: assignGpus(replicas, ids),
    host: o.host,
    port: o.port,
    basePort: o.basePort,
    haproxy,
    sessionHeader: o.sessionHeader,
    serverArgs: o.serverArgs,
    shutdownGraceSeconds: o.server.shutdownGraceSeconds,
    requestTimeoutSeconds: o.server.timeoutSeconds,
    env: io.env,
    log,
  });
  const onSignal = (signal: NodeJS.Signals): void => void set.stop(signal);
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  try {
    await set.start();
  } catch (err) {
    log(`error: ${(err as Error).message}`);
    return 1;
  }
  const code = await set.finished;
  process.off('SIGTERM', onSignal);
  process.off('SIGINT', onSignal);
  return code;
}
