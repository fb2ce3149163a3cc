// `npm run bench:router`: several models in one server. Each target (this server, llama.cpp's llama-server) runs in
// router mode with the same flags (--models-dir DIR -c -np -t), one after the other and never both at once; per run:
// load A and B (timed), one cold request to each, phase one (every client on A), phase two (half on A, half on B at
// once), then B unloaded and one request to B, whose first token includes B's reload. The targets: phase two
// keeps >= 0.9x phase one's tokens/s (llama-server's router, a child process per model, measured 0.28x), and the
// switch's first token comes within 1.1x of B's load time plus its cold first token.
import { link, mkdir, readdir, stat, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { readCommandLine } from '../flags/command.ts';
import { cacheDir, projectRoot } from '../paths.ts';
import { ensureModel } from '../tools/model-cache.ts';
import { ensureLlamaTool } from './llama-tools.ts';
import { sendChatRequest } from './loadgen/request.ts';
import { epochNow, type RequestRecord } from './loadgen/types.ts';
import {
  emptyRun,
  formatRouterBench,
  loadGaps,
  type PhaseRecord,
  phaseFigures,
  phaseRecord,
  type RouterBenchResult,
  type RunResult,
  routerBenchJsonLine,
  timedRequest,
} from './router/figures.ts';
import {
  parseRouterBenchArgs,
  ROUTER_BENCH_COMMAND,
  type RouterBenchOptions,
  type RouterTarget,
  routerArgs,
  twoModelClients,
} from './router/options.ts';
import { listModels, loadModel, type RouterServer, startRouterServer, unloadModel } from './router/server.ts';

type Log = (line: string) => void;

/** The generated pair's ids: the file stems in their directory. */
export function generatedIds(preset: string): [string, string] {
  return [`${preset}-a`, `${preset}-b`];
}

/** `target` hard-linked as `path` (copied across file systems); an older file of that name is replaced. */
async function placeAt(target: string, path: string): Promise<void> {
  const [want, have] = await Promise.all([stat(target), stat(path).catch(() => null)]);
  if (have !== null && have.ino === want.ino && have.dev === want.dev) return;
  if (have !== null) await unlink(path);
  await link(target, path).catch(async (err: NodeJS.ErrnoException) => {
    if (err.code !== 'EXDEV') throw err;
    const { copyFile } = await import('node:fs/promises');
    await copyFile(target, path);
  });
}

/**
 * The models directory: --models-dir as given, else two models of --preset with seeds 1 and 2 (generated once into
 * the model cache) linked into a directory of their own under the cache, as <preset>-a.gguf and <preset>-b.gguf.
 */
export async function prepareModelsDir(o: RouterBenchOptions, log: Log): Promise<string> {
  if (o.modelsDir !== null) {
    const files = (await readdir(o.modelsDir)).filter((f) => f.endsWith('.gguf'));
    if (files.length < 2 && o.models === null)
      log(`warning: ${o.modelsDir} holds ${files.length} .gguf file(s); the bench needs two models`);
    return o.modelsDir;
  }
  const dir = join(cacheDir(), 'router-bench', `${o.preset}-${o.quant}`);
  await mkdir(dir, { recursive: true });
  const ids = generatedIds(o.preset);
  for (const [k, id] of ids.entries()) {
    let shown = -1;
    const file = await ensureModel({
      preset: o.preset as Parameters<typeof ensureModel>[0]['preset'],
      quant: o.quant,
      seed: k + 1,
      onProgress: (fraction, detail) => {
        const tenth = Math.floor(fraction * 10);
        if (tenth !== shown) log(`generating ${id} (${o.preset} ${o.quant}, seed ${k + 1}): ${tenth * 10}% ${detail}`);
        shown = tenth;
      },
    });
    await placeAt(file, join(dir, `${id}.gguf`));
  }
  return dir;
}

/** The server command of a target: this server's entry under tsx, or llama-server. */
export function targetCommand(
  target: RouterTarget,
  o: RouterBenchOptions,
  modelsDir: string,
  llamaServer: string,
): { cmd: string; args: string[] } {
  const shared = routerArgs(o, modelsDir);
  if (target === 'llama-server') return { cmd: llamaServer, args: shared };
  return {
    cmd: process.execPath,
    args: ['--import', 'tsx', join(projectRoot, 'src', 'entry', 'main.ts'), 'serve', ...shared],
  };
}

const TOPICS = ['rivers', 'clocks', 'bridges', 'owls', 'lanterns', 'glaciers', 'violins', 'comets', 'orchards'];

/** A short prompt, different for every request of a run so no prompt cache helps one phase over another. */
export function promptFor(tag: string, client: number, k: number): string {
  return `(${tag} ${client}.${k}) Write a few sentences about ${TOPICS[(client * 7 + k) % TOPICS.length]}.`;
}

function request(url: string, model: string, prompt: string, o: RouterBenchOptions, id: number, rank: number) {
  return sendChatRequest({
    id,
    rank,
    url,
    apiKey: null,
    model,
    prompt,
    maxTokens: o.tokens,
    timeoutMs: o.timeoutS * 1000,
  });
}

/** Clients at once, each sending its requests one after the other to its model. */
async function runPhase(url: string, clients: string[], o: RouterBenchOptions, tag: string): Promise<PhaseRecord> {
  const start = epochNow();
  const per = await Promise.all(
    clients.map(async (model, client) => {
      const records: Array<{ model: string; record: RequestRecord }> = [];
      for (let k = 0; k < o.requests; k++)
        records.push({
          model,
          record: await request(url, model, promptFor(tag, client, k), o, client * o.requests + k, client),
        });
      return records;
    }),
  );
  return phaseRecord(start, per.flat());
}

/** One request alone; its TTFT. */
async function firstToken(url: string, model: string, prompt: string, o: RouterBenchOptions, what: string) {
  const timed = timedRequest(model, await request(url, model, prompt, o, 0, 0));
  if (!timed.ok) throw new Error(`${what}: ${timed.error ?? 'failed'}`);
  return timed.ttftMs;
}

async function pickModels(server: RouterServer, o: RouterBenchOptions): Promise<[string, string]> {
  const listed = (await listModels(server.url)).map((m) => m.id);
  const wanted = o.models ?? (o.modelsDir === null ? generatedIds(o.preset) : null);
  if (wanted === null) {
    const sorted = [...listed].sort();
    if (sorted.length < 2) throw new Error(`GET /models lists ${sorted.length} model(s): ${sorted.join(', ')}`);
    return [sorted[0] as string, sorted[1] as string];
  }
  for (const id of wanted)
    if (!listed.includes(id)) throw new Error(`GET /models does not list '${id}' (it lists: ${listed.join(', ')})`);
  return wanted;
}

const ms = (v: number | null | undefined) => (v === null || v === undefined ? '-' : `${v.toFixed(0)} ms`);

/** One run on a fresh server; a failure ends the run with its error (and the server's last log lines). */
export async function measureRun(
  target: RouterTarget,
  run: number,
  command: { cmd: string; args: string[] },
  o: RouterBenchOptions,
  log: Log,
): Promise<RunResult> {
  const result = emptyRun(target, run);
  const timeoutMs = o.timeoutS * 1000;
  const say = (line: string) => log(`${target} run ${run}/${o.runs}: ${line}`);
  let server: RouterServer | null = null;
  try {
    server = await startRouterServer(target, command.cmd, command.args);
    result.command = server.command;
    const url = server.url;
    const [a, b] = await pickModels(server, o);
    result.models = [a, b];
    const coldA = promptFor(`cold-${run}`, 0, 0);
    const coldB = promptFor(`cold-${run}`, 1, 0);
    const loadA = await loadModel(url, a, timeoutMs);
    const ttftA = await firstToken(url, a, coldA, o, `first request to ${a}`);
    const loadB = await loadModel(url, b, timeoutMs);
    const ttftB = await firstToken(url, b, coldB, o, `first request to ${b}`);
    result.loadMs = [loadA, loadB];
    result.coldTtftMs = [ttftA, ttftB];
    say(`loaded ${a} in ${ms(loadA)} (cold TTFT ${ms(ttftA)}), ${b} in ${ms(loadB)} (cold TTFT ${ms(ttftB)})`);
    for (const [phase, clients] of [
      ['one', Array.from({ length: o.clients }, () => a)],
      ['two', twoModelClients(o.clients, a, b)],
    ] as const) {
      const figures = phaseFigures(await runPhase(url, clients, o, `${phase}-${run}`));
      if (figures.ok === 0) throw new Error(`phase ${phase}: every request failed: ${figures.firstError}`);
      result[phase] = figures;
      say(
        `phase ${phase}: ${figures.tokensPerSecond?.toFixed(2)} tokens/s, TTFT p50 ${ms(figures.ttftP50Ms)}` +
          (figures.errors > 0 ? `, ${figures.errors} failed (${figures.firstError})` : ''),
      );
    }
    result.unloadMs = await unloadModel(url, b, timeoutMs);
    // The same prompt as B's cold request: the reload's prefill is the same work.
    result.switchTtftMs = await firstToken(url, b, coldB, o, `request to unloaded ${b}`);
    say(`unloaded ${b} in ${ms(result.unloadMs)}; a request to it then: TTFT ${ms(result.switchTtftMs)}`);
    // A long stream on A; once it flows, B loads beside it: how much does the load slow A's tokens?
    await unloadModel(url, b, timeoutMs);
    const streaming = request(url, a, promptFor(`gaps-${run}`, 0, 0), { ...o, tokens: o.tokens * 4 }, 0, 0);
    await new Promise((resolve) => setTimeout(resolve, Math.max(1000, (result.coldTtftMs?.[0] ?? 0) * 2)));
    const loadStart = epochNow();
    await loadModel(url, b, timeoutMs);
    const loadEnd = epochNow();
    const record = await streaming;
    result.loadGaps = record.ok ? loadGaps(record.chunkMs, loadStart, loadEnd) : null;
    const g = result.loadGaps;
    say(
      g === null
        ? 'stream during a load: no gaps on both sides of the load'
        : `stream on ${a} while ${b} loads: gap p50 ${ms(g.duringP50Ms)} (max ${ms(g.duringMaxMs)}) against ${ms(g.usualMs)}`,
    );
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    const tail = server && !message.includes('\n') ? `\n--- server log ---\n${server.logTail(2000)}` : '';
    result.error = `${message}${tail}`;
    say(`FAILED: ${result.error}`);
  } finally {
    await server?.stop();
  }
  return result;
}

export async function runRouterBench(o: RouterBenchOptions, log: Log): Promise<RouterBenchResult> {
  const llamaServer = o.targets.includes('llama-server')
    ? (o.llamaServer ?? (await ensureLlamaTool('llama-server', (l) => log(`[llama-tools] ${l.slice(0, 160)}`))))
    : '';
  const modelsDir = await prepareModelsDir(o, log);
  const runs: RunResult[] = [];
  for (let run = 1; run <= o.runs; run++)
    for (const target of o.targets)
      runs.push(await measureRun(target, run, targetCommand(target, o, modelsDir, llamaServer), o, log));
  return { options: o, modelsDir, runs };
}

export async function runRouterBenchCli(argv: readonly string[]): Promise<number> {
  const line = readCommandLine(ROUTER_BENCH_COMMAND, argv, process, parseRouterBenchArgs);
  if ('exit' in line) return line.exit;
  const o = line.args;
  const result = await runRouterBench(o, (l) => process.stderr.write(`[router-bench] ${l}\n`));
  process.stdout.write(formatRouterBench(result));
  process.stdout.write(`${routerBenchJsonLine(result)}\n`);
  if (o.json) await writeFile(o.json, `${JSON.stringify(result, null, 2)}\n`);
  return result.runs.some((r) => r.error !== null) ? 1 : 0;
}
