// `npm run soak -- --minutes 30 [--url URL]`: mixed load against a server for a long time (workload.ts), sampled
// every few seconds (probe.ts), then a verdict (verdict.ts): RSS growth after the warm-up, slots still busy once
// the load stopped, 5xx answers. Prints the figures and the verdict; --json writes every sample.
import { writeFile } from 'node:fs/promises';
import { readCommandLine } from '../../flags/command.ts';
import { DEFAULT_BODY_LIMIT_BYTES } from '../../server/options.ts';
import { ensureModel } from '../../tools/model-cache.ts';
import { describeNetworkError } from '../loadgen/request.ts';
import { parseSoakArgs, SOAK_COMMAND, type SoakOptions } from './options.ts';
import { busySlots, MetricsUnavailable, readMetrics, sample } from './probe.ts';
import { type SoakServer, startSoakServer } from './server.ts';
import { formatVerdict, type Sample, soakVerdict } from './verdict.ts';
import { Workload } from './workload.ts';

export interface SoakIo {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
}

async function serverFor(o: SoakOptions, io: SoakIo): Promise<SoakServer | null> {
  if (o.url !== null) return null;
  const model = o.model ?? (await ensureModel({ preset: 'tiny', quant: 'Q4_K_M', seed: 1 }));
  const args = [
    '-m',
    model,
    '-np',
    String(o.parallel),
    '-c',
    String(o.ctxSize),
    '--max-queue',
    String(o.maxQueue),
    '--metrics',
  ];
  const server = await startSoakServer(args, (line) => io.stderr.write(`server: ${line}\n`));
  io.stdout.write(`server: ${server.command}\n`);
  return server;
}

/** After the load: waits (up to 30 s) for every slot to free and the queue to empty; returns what is left. */
async function settle(url: string, apiKey: string | null): Promise<{ busy: number; queued: number }> {
  let left = { busy: 0, queued: 0 };
  for (let k = 0; k < 300; k++) {
    const metrics = await readMetrics(url, apiKey);
    left = { busy: await busySlots(url, apiKey), queued: metrics.get('llamacpp:requests_deferred') ?? 0 };
    if (left.busy === 0 && left.queued === 0) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  return left;
}

export async function runSoak(o: SoakOptions, io: SoakIo): Promise<number> {
  const server = await serverFor(o, io);
  const url = o.url ?? server?.url ?? '';
  try {
    try {
      await readMetrics(url, o.apiKey);
    } catch (err) {
      io.stderr.write(
        `soak: ${err instanceof MetricsUnavailable ? err.message : `cannot reach ${url}: ${describeNetworkError(err)}`}\n`,
      );
      return 1;
    }
    const durationSeconds = o.minutes * 60;
    const warmupSeconds = (o.warmupMinutes ?? o.minutes / 10) * 60;
    const workload = new Workload({
      url,
      apiKey: o.apiKey,
      maxTokens: o.maxTokens,
      seed: o.seed,
      bodyLimitBytes: DEFAULT_BODY_LIMIT_BYTES,
    });
    const samples: Sample[] = [];
    const t0 = performance.now();
    const elapsed = (): number => (performance.now() - t0) / 1000;
    const stop = (): boolean => elapsed() >= durationSeconds;
    io.stdout.write(`soak: ${o.concurrency} clients for ${o.minutes} min against ${url}\n`);
    const clients = Array.from({ length: o.concurrency }, () => workload.client(stop));
    let nextReport = 60;
    while (!stop()) {
      const s = await sample(url, o.apiKey, elapsed());
      samples.push(s);
      if (s.t >= nextReport) {
        nextReport += 60;
        io.stdout.write(
          `  ${(s.t / 60).toFixed(0)} min: RSS ${(s.rssBytes / 2 ** 20).toFixed(1)} MiB, lag p99 ${s.lagP99Ms.toFixed(1)} ms, handles ${s.handles}, busy ${s.busySlots}, requests ${workload.counts.requests}, 5xx ${workload.counts.serverErrors}\n`,
        );
      }
      await new Promise((r) =>
        setTimeout(r, Math.max(0, Math.min(o.sampleSeconds * 1000, (durationSeconds - elapsed()) * 1000))),
      );
    }
    samples.push(await sample(url, o.apiKey, elapsed()));
    await Promise.all(clients);
    const left = await settle(url, o.apiKey);
    const verdict = soakVerdict({
      samples,
      durationSeconds,
      warmupSeconds,
      counts: workload.counts,
      leakedSlots: left.busy,
      leftQueued: left.queued,
      maxRssGrowthPercent: o.maxRssGrowthPercent,
    });
    io.stdout.write(formatVerdict(verdict, workload.counts, durationSeconds));
    if (o.jsonFile !== null)
      await writeFile(
        o.jsonFile,
        `${JSON.stringify({ options: o, server: server?.command ?? url, counts: workload.counts, verdict, samples }, null, 2)}\n`,
      );
    return verdict.pass ? 0 : 1;
  } finally {
    await server?.stop();
  }
}

export async function runSoakCli(argv: string[], io: SoakIo = process): Promise<number> {
  const line = readCommandLine(SOAK_COMMAND, argv, io, parseSoakArgs);
  if ('exit' in line) return line.exit;
  return runSoak(line.args, io);
}
