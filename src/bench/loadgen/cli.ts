// `npm run bench`: the load generator. Checks the server answers, plans the workload, runs the ranks
// behind a barrier, prints the seed's block and the details, and writes the JSON and HTML reports.
// Under --mpi this process is one MPI rank: rank 0 does all of that with the others as its remote ranks.
// Exit codes: 0 it ran (request errors included), 1 server unreachable or a rank failed, 2 bad arguments.
import { writeFile } from 'node:fs/promises';
import { readCommandLine } from '../../flags/command.ts';
import { createProgress } from '../../progress.ts';
import { forkRank, type RankRun, RankStartError, runRanks, type StartRank } from './barrier.ts';
import { renderHtml } from './html.ts';
import {
  acceptRanks,
  type CoordinatorAddress,
  MpiError,
  type MpiWorld,
  mpiWorld,
  parseCoordinator,
  runRemoteRank,
} from './mpi.ts';
import { LOADGEN_COMMAND, type LoadgenOptions, parseLoadgenArgs } from './options.ts';
import { planRanks } from './plan.ts';
import { formatReport, type RunInfo, reportJson } from './report.ts';
import { authHeaders, describeNetworkError } from './request.ts';
import { computeReport } from './stats.ts';
import type { RequestTemplate } from './types.ts';

export interface LoadgenIo {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WriteStream;
  /** How ranks start; default: forked processes (under --mpi: rank 0's own rank). */
  startRank?: StartRank;
  readyTimeoutMs?: number;
  /** Where --mpi reads its rank and world size; default process.env. */
  env?: Readonly<Record<string, string | undefined>>;
}

export type ProbeResult = { reachable: true; status: number; models: string[] } | { reachable: false; message: string };

/** GET /v1/models: any HTTP answer means the server is there; its first model id is the default --model. */
export async function probeServer(url: string, apiKey: string | null, timeoutMs = 10_000): Promise<ProbeResult> {
  try {
    const response = await fetch(`${url}/v1/models`, {
      headers: authHeaders(apiKey),
      signal: AbortSignal.timeout(timeoutMs),
    });
    let models: string[] = [];
    if (response.ok) {
      const body = (await response.json().catch(() => null)) as { data?: Array<{ id?: unknown }> } | null;
      models = (body?.data ?? []).flatMap((m) => (typeof m.id === 'string' ? [m.id] : []));
    } else {
      await response.body?.cancel().catch(() => {});
    }
    return { reachable: true, status: response.status, models };
  } catch (err) {
    const message =
      err instanceof Error && err.name === 'TimeoutError'
        ? `no answer within ${timeoutMs / 1000} s`
        : describeNetworkError(err);
    return { reachable: false, message };
  }
}

export async function runLoadgen(o: LoadgenOptions, io: LoadgenIo): Promise<number> {
  if (!o.mpi) return coordinate(o, io, io.startRank ?? forkRank(), '');
  const { stderr } = io;
  let world: MpiWorld;
  let address: CoordinatorAddress;
  try {
    world = mpiWorld(io.env ?? process.env, o.ranksGiven ? o.ranks : null);
    address = parseCoordinator(o.coordinator);
  } catch (err) {
    if (!(err instanceof MpiError)) throw err;
    stderr.write(`bench: ${err.message}\n`);
    return 2;
  }
  if (world.size > o.requests) {
    stderr.write(
      `bench: ${world.size} MPI ranks but --requests ${o.requests}: every rank sends at least one request\n`,
    );
    return 2;
  }
  const timeoutMs = io.readyTimeoutMs ?? 60_000;
  if (world.rank !== 0) return runRemoteRank(world, address, timeoutMs, (line) => stderr.write(`bench: ${line}\n`));
  // Rank 0: meet the others first, so that whatever happens next they hear of it (and exit) at once.
  let accepted: Awaited<ReturnType<typeof acceptRanks>>;
  try {
    accepted = await acceptRanks(world, address, timeoutMs);
  } catch (err) {
    if (!(err instanceof MpiError)) throw err;
    stderr.write(`bench: ${err.message}\n`);
    return 1;
  }
  const own = io.startRank ?? forkRank();
  const startRank: StartRank = (rank) => {
    if (rank === 0) return own(0);
    const link = accepted.links.get(rank);
    if (link === undefined) throw new Error(`MPI rank ${rank} is not connected`);
    return link;
  };
  try {
    return await coordinate(
      { ...o, ranks: world.size },
      io,
      startRank,
      ` (MPI: ${world.size} processes, ${world.source}; coordinator ${address.host}:${address.port})`,
    );
  } finally {
    accepted.close();
  }
}

/** Probe, plan, run the ranks behind the barrier, report. `how` says where the ranks run. */
async function coordinate(o: LoadgenOptions, io: LoadgenIo, startRank: StartRank, how: string): Promise<number> {
  const { stdout, stderr } = io;
  const probe = await probeServer(o.url, o.apiKey);
  if (!probe.reachable) {
    stderr.write(
      `bench: cannot reach the server at ${o.url} (${probe.message}).\nIs it running? Start it with \`npm start\`, or point --url at a running server.\n`,
    );
    return 1;
  }
  if (probe.status === 401 || probe.status === 403) {
    stderr.write(
      `bench: warning: ${o.url}/v1/models answered HTTP ${probe.status}; requests will likely fail too (--api-key?)\n`,
    );
  }
  const model = o.model ?? probe.models[0] ?? null;

  const template: RequestTemplate = {
    url: o.url,
    apiKey: o.apiKey,
    model,
    maxTokens: o.maxTokens,
    promptTokens: o.promptTokens,
    systemTokens: o.systemTokens,
    multiTurn: o.multiTurn,
    seed: o.seed,
    timeoutMs: o.timeoutMs,
  };
  const plans = planRanks(o);
  const loop = o.rate === null ? 'closed loop' : `open loop at ${o.rate} requests/s`;
  stderr.write(
    `bench: ${o.ranks} ranks${how}, ${o.requests} requests (${loop}) -> ${o.url}, model ${model ?? '(none sent)'}, ` +
      `max_tokens ${o.maxTokens}, ~${o.promptTokens} prompt tokens` +
      (o.systemTokens > 0 ? ` after a shared ~${o.systemTokens}-token system prompt` : '') +
      (o.multiTurn ? ', each rank one growing conversation' : '') +
      '\n',
  );

  const progress = createProgress('bench', { stream: stderr });
  let received = 0;
  let failed = 0;
  let run: RankRun;
  try {
    run = await runRanks({
      plans,
      template,
      startRank,
      ...(io.readyTimeoutMs === undefined ? {} : { readyTimeoutMs: io.readyTimeoutMs }),
      onReady: (ready) => progress.update(0, `${ready}/${o.ranks} ranks ready`),
      onRecord: (record) => {
        received++;
        if (!record.ok) failed++;
        progress.update(received / o.requests, `${received}/${o.requests} requests, ${failed} errors`);
      },
    });
  } catch (err) {
    progress.done('failed');
    if (err instanceof RankStartError) {
      stderr.write(`bench: the ranks did not start, nothing was sent: ${err.message}\n`);
      return 1;
    }
    throw err;
  }

  const report = computeReport(run.records, {
    goMs: run.goMs,
    requests: o.requests,
    ranks: o.ranks,
    slo: { ttftMs: o.sloTtftMs, tpotMs: o.sloTpotMs },
  });
  progress.done(`${report.ok} ok, ${report.errors} errors in ${(report.wallMs / 1000).toFixed(1)} s`);
  const info: RunInfo = {
    url: o.url,
    model,
    ranks: o.ranks,
    requests: o.requests,
    rate: o.rate,
    maxTokens: o.maxTokens,
    promptTokens: o.promptTokens,
    seed: o.seed,
    timeoutMs: o.timeoutMs,
    goMs: run.goMs,
  };
  stdout.write(formatReport(report, info));

  let code = 0;
  for (const failure of run.failures) {
    stderr.write(`bench: rank ${failure.rank} failed: ${failure.message}\n`);
    code = 1;
  }
  const outputs: Array<[string | null, () => string]> = [
    [
      o.jsonFile,
      () => `${JSON.stringify({ ...reportJson(report, info, run.records), rankFailures: run.failures }, null, 2)}\n`,
    ],
    [o.htmlFile, () => renderHtml(report, info, run.records)],
  ];
  for (const [file, render] of outputs) {
    if (file === null) continue;
    try {
      await writeFile(file, render());
      stderr.write(`bench: wrote ${file}\n`);
    } catch (err) {
      stderr.write(`bench: could not write ${file}: ${(err as Error).message}\n`);
      code = 1;
    }
  }
  return code;
}

export async function runLoadgenCli(
  argv: string[],
  io: LoadgenIo = { stdout: process.stdout, stderr: process.stderr },
): Promise<number> {
  const line = readCommandLine(LOADGEN_COMMAND, argv, io, parseLoadgenArgs);
  if ('exit' in line) return line.exit;
  return runLoadgen(line.args, io);
}
