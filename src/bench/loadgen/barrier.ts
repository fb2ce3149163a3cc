// The coordinator side of the ranks, MPI style: start every rank, send each its plan, wait until all
// report ready, then release them with one go signal. A rank that fails before the barrier stops the
// run (all ranks are killed and nothing is sent); one that fails after it is reported with the records
// it did deliver.
import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import {
  type CoordinatorMessage,
  epochNow,
  type RankMessage,
  type RankPlan,
  type RequestRecord,
  type RequestTemplate,
} from './types.ts';

/** How the coordinator talks to one rank; a forked process in production, a fake in tests. */
export interface RankLink {
  send(message: CoordinatorMessage): void;
  onMessage(listener: (message: RankMessage) => void): void;
  /** Called once when the rank is gone (after its last message has been delivered). */
  onExit(listener: (code: number | null, signal: string | null) => void): void;
  kill(): void;
}

export type StartRank = (rank: number) => RankLink;

export interface RankFailure {
  rank: number;
  /** 'start': before the barrier released (the run did not happen); 'run': after go. */
  phase: 'start' | 'run';
  message: string;
}

export class RankStartError extends Error {
  override name = 'RankStartError';
  constructor(readonly failures: RankFailure[]) {
    super(failures.map((f) => `rank ${f.rank}: ${f.message}`).join('; '));
  }
}

export interface RankRun {
  /** When the go signal was sent (epoch ms, the coordinator's clock). */
  goMs: number;
  records: RequestRecord[];
  /** Ranks that failed after go; their missing requests are absent from `records`. */
  failures: RankFailure[];
}

export interface RunRanksOptions {
  plans: RankPlan[];
  template: RequestTemplate;
  startRank: StartRank;
  /** Longest wait for all ranks to be ready. Default 60 s (starting a TypeScript process takes a moment). */
  readyTimeoutMs?: number;
  onReady?: (readyRanks: number) => void;
  onGo?: (goMs: number) => void;
  onRecord?: (record: RequestRecord) => void;
  now?: () => number;
}

function exitText(code: number | null, signal: string | null): string {
  return signal ? `killed by ${signal}` : `exited with code ${code}`;
}

export function runRanks(o: RunRanksOptions): Promise<RankRun> {
  const now = o.now ?? epochNow;
  const n = o.plans.length;
  const links: Array<RankLink | null> = Array.from({ length: n }, () => null);
  const ready = new Set<number>();
  const finished = new Set<number>();
  const delivered = new Map<number, number>();
  const records: RequestRecord[] = [];
  const runFailures: RankFailure[] = [];
  let goMs: number | null = null;
  let settled = false;
  let readyTimer: NodeJS.Timeout | undefined;

  return new Promise<RankRun>((resolve, reject) => {
    const killAll = (): void => {
      for (const link of links) {
        try {
          link?.kill();
        } catch {
          // already gone
        }
      }
    };
    const failStart = (rank: number, message: string): void => {
      if (settled) return;
      settled = true;
      clearTimeout(readyTimer);
      killAll();
      reject(new RankStartError([{ rank, phase: 'start', message }]));
    };
    const maybeFinish = (): void => {
      if (settled || goMs === null || finished.size < n) return;
      settled = true;
      resolve({ goMs, records, failures: runFailures });
    };
    const failRun = (rank: number, message: string): void => {
      if (finished.has(rank)) return;
      finished.add(rank);
      runFailures.push({ rank, phase: 'run', message });
      maybeFinish();
    };
    const release = (): void => {
      clearTimeout(readyTimer);
      goMs = now();
      o.onGo?.(goMs);
      for (const [rank, link] of links.entries()) {
        try {
          link?.send({ type: 'go', goMs });
        } catch (err) {
          failRun(rank, `go signal not delivered: ${(err as Error).message}`);
        }
      }
    };

    const onMessage = (rank: number, message: RankMessage): void => {
      if (settled) return;
      switch (message.type) {
        case 'ready':
          if (goMs !== null || ready.has(rank)) return;
          ready.add(rank);
          o.onReady?.(ready.size);
          if (ready.size === n) release();
          return;
        case 'record':
          records.push(message.record);
          delivered.set(rank, (delivered.get(rank) ?? 0) + 1);
          o.onRecord?.(message.record);
          return;
        case 'done':
          if (goMs === null) return failStart(rank, 'reported done before the go signal');
          finished.add(rank);
          maybeFinish();
          return;
        case 'fatal':
          if (goMs === null) return failStart(rank, message.message);
          failRun(
            rank,
            `${message.message} (after ${delivered.get(rank) ?? 0} of ${o.plans[rank]?.requests.length ?? 0} requests)`,
          );
          return;
      }
    };
    const onExit = (rank: number, code: number | null, signal: string | null): void => {
      if (settled) return;
      if (goMs === null) return failStart(rank, `${exitText(code, signal)} before it was ready`);
      failRun(
        rank,
        `${exitText(code, signal)} after ${delivered.get(rank) ?? 0} of ${o.plans[rank]?.requests.length ?? 0} requests`,
      );
    };

    readyTimer = setTimeout(() => {
      const missing = o.plans.map((p) => p.rank).filter((r) => !ready.has(r));
      failStart(
        missing[0] ?? 0,
        `not ready after ${(o.readyTimeoutMs ?? 60_000) / 1000} s (ranks not ready: ${missing.join(', ')})`,
      );
    }, o.readyTimeoutMs ?? 60_000);

    for (const [rank, plan] of o.plans.entries()) {
      if (settled) break;
      let link: RankLink;
      try {
        link = o.startRank(rank);
      } catch (err) {
        failStart(rank, `could not start: ${(err as Error).message}`);
        break;
      }
      links[rank] = link;
      link.onMessage((message) => onMessage(rank, message));
      link.onExit((code, signal) => onExit(rank, code, signal));
      try {
        link.send({ type: 'init', plan, template: o.template });
      } catch (err) {
        failStart(rank, `could not send its plan: ${(err as Error).message}`);
      }
    }
  });
}

/** The rank process entry next to this file (TypeScript here, JavaScript if this file was compiled). */
export const RANK_ENTRY = fileURLToPath(
  new URL(`./rank-main${import.meta.url.endsWith('.ts') ? '.ts' : '.js'}`, import.meta.url),
);

/**
 * Starts a rank as a child process with an IPC channel (stdout/stderr shared with ours). A TypeScript
 * entry runs under tsx, resolved from this package, whatever loader (tsx, tap) runs the coordinator.
 */
export function forkRank(entry: string = RANK_ENTRY): StartRank {
  const execArgv = entry.endsWith('.ts') ? ['--import', import.meta.resolve('tsx')] : [];
  return (rank) => {
    const child = fork(entry, [], { execArgv, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    let exited = false;
    const exitListeners: Array<(code: number | null, signal: string | null) => void> = [];
    const exit = (code: number | null, signal: string | null): void => {
      if (exited) return;
      exited = true;
      for (const listener of exitListeners) listener(code, signal);
    };
    // 'close' comes after the IPC channel has delivered everything the rank sent; 'error' when the
    // process could not be spawned at all.
    child.on('close', (code, signal) => exit(code, signal));
    child.on('error', (err) => {
      process.stderr.write(`rank ${rank}: ${err.message}\n`);
      if (child.pid === undefined) exit(null, null);
    });
    return {
      // A rank that has died cannot take messages; its exit is what gets reported, not the send error.
      send: (message) => {
        child.send(message, () => {});
      },
      onMessage: (listener) => {
        child.on('message', (message) => listener(message as RankMessage));
      },
      onExit: (listener) => {
        exitListeners.push(listener);
      },
      kill: () => {
        if (child.exitCode === null && child.signalCode === null) child.kill();
      },
    };
  };
}
