import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { toolPath } from '../../src/bench/llama-tools.ts';
import type { RequestRecord } from '../../src/bench/loadgen/types.ts';
import {
  emptyRun,
  formatRouterBench,
  headline,
  isParserRefusal,
  loadGaps,
  METRICS,
  oursOverLlama,
  type PhaseFigures,
  phaseFigures,
  phaseRecord,
  type RunResult,
  routerBenchJsonLine,
  spreadOf,
  summarize,
  switchExpectedMs,
  timedRequest,
} from '../../src/bench/router/figures.ts';
import { parseRouterBenchArgs, routerArgs, twoModelClients } from '../../src/bench/router/options.ts';
import { parseModelList } from '../../src/bench/router/server.ts';
import {
  generatedIds,
  measureRun,
  prepareModelsDir,
  promptFor,
  runRouterBench,
  targetCommand,
} from '../../src/bench/router-bench.ts';

const quiet = () => {};

t.test('defaults: the issue procedure (-c 4096 -np 2 -t 2, 4 clients x 3 requests of 48 tokens, 3 runs)', async (t) => {
  t.same(parseRouterBenchArgs([]), {
    targets: ['ours', 'llama-server'],
    runs: 3,
    tokens: 48,
    clients: 4,
    requests: 3,
    llamaServer: null,
    modelsDir: null,
    models: null,
    preset: 'gemma3-1b',
    quant: 'Q4_K_M',
    ctxSize: 4096,
    parallel: 2,
    threads: 2,
    ignoreEos: true,
    flags: [],
    timeoutS: 600,
    json: null,
  });
  const o = parseRouterBenchArgs([
    '--targets',
    'llama-server',
    '--runs',
    '1',
    '--models',
    'x,y',
    '--flags',
    ' -fa  on ',
    '--no-ignore-eos',
    '-np',
    '4',
  ]);
  t.same(o.targets, ['llama-server']);
  t.same(o.models, ['x', 'y']);
  t.same(routerArgs(o, '/m'), ['--models-dir', '/m', '-c', '4096', '-np', '4', '-t', '2', '-fa', 'on']);
  t.same(routerArgs(parseRouterBenchArgs([]), '/m').slice(-1), ['--ignore-eos']);
});

t.test('bad command lines name their flag', async (t) => {
  t.throws(() => parseRouterBenchArgs(['--targets', 'vllm']), /--targets.*'vllm' is not one of ours, llama-server/);
  t.throws(() => parseRouterBenchArgs(['--targets', 'ours,ours']), /twice/);
  t.throws(() => parseRouterBenchArgs(['--models', 'a']), /--models.*two different models/);
  t.throws(() => parseRouterBenchArgs(['--models', 'a,a']), /two different models/);
  t.throws(() => parseRouterBenchArgs(['--clients', '1']), /--clients/);
  t.throws(() => parseRouterBenchArgs(['--quant', 'Q2_K']), /--quant/);
});

t.test('phase two splits the clients, A first; both servers get the same router flags', async (t) => {
  t.same(twoModelClients(4, 'a', 'b'), ['a', 'a', 'b', 'b']);
  t.same(twoModelClients(3, 'a', 'b'), ['a', 'a', 'b']);
  const o = parseRouterBenchArgs([]);
  const ours = targetCommand('ours', o, '/m', '/bin/llama-server');
  const peer = targetCommand('llama-server', o, '/m', '/bin/llama-server');
  t.equal(ours.cmd, process.execPath);
  t.match(ours.args.join(' '), /--import tsx .*src\/entry\/main\.ts serve --models-dir \/m -c 4096 -np 2 -t 2/);
  t.same(peer, { cmd: '/bin/llama-server', args: routerArgs(o, '/m') });
  t.same(generatedIds('gemma3-1b'), ['gemma3-1b-a', 'gemma3-1b-b']);
  const prompts = new Set([0, 1, 2, 3].flatMap((c) => [0, 1, 2].map((k) => promptFor('one-1', c, k))));
  t.equal(prompts.size, 12, 'every request of a phase has its own prompt');
  t.not(promptFor('one-1', 0, 0), promptFor('two-1', 0, 0));
});

t.test('GET /models rows: status object or string, failures', async (t) => {
  t.same(
    parseModelList({
      data: [
        { id: 'a', status: { value: 'loaded', args: [] } },
        { id: 'b', status: { value: 'unloaded', failed: true, exit_code: 1 } },
        { id: 'c', status: 'failed' },
        { id: 'd' },
        { nope: 1 },
        null,
      ],
    }),
    [
      { id: 'a', status: 'loaded', failed: false },
      { id: 'b', status: 'unloaded', failed: true },
      { id: 'c', status: 'failed', failed: true },
      { id: 'd', status: 'unknown', failed: false },
    ],
  );
  t.throws(() => parseModelList({ object: 'list' }), /no data array/);
});

function record(over: Partial<RequestRecord> & { sendMs: number; endMs: number }): RequestRecord {
  return {
    id: 0,
    rank: 0,
    chunkMs: [],
    status: 200,
    ok: true,
    errorKind: null,
    error: null,
    promptTokens: 10,
    outputTokens: 0,
    outputTokensFrom: 'usage',
    finishReason: 'length',
    ...over,
  };
}

t.test('requests: TTFT, tokens, and answers only the chat parser refused count as served', async (t) => {
  const ok = record({ sendMs: 1000, endMs: 1500, chunkMs: [1100, 1200], outputTokens: 48 });
  t.same(timedRequest('a', ok), { model: 'a', ok: true, parserError: false, ttftMs: 100, tokens: 48, error: null });
  const refused = record({
    sendMs: 0,
    endMs: 900,
    chunkMs: [50, 60, 70],
    ok: false,
    errorKind: 'stream',
    error: 'The model produced output that does not match the expected peg-native format (server_error)',
    outputTokens: 3,
    outputTokensFrom: 'chunks',
  });
  t.ok(isParserRefusal(refused));
  t.match(timedRequest('a', refused), { ok: true, parserError: true, ttftMs: 50, tokens: 3 });
  const http = record({ sendMs: 0, endMs: 5, ok: false, errorKind: 'http', status: 404, error: 'HTTP 404: no model' });
  t.notOk(isParserRefusal(http));
  t.match(timedRequest('b', http), { ok: false, ttftMs: null, tokens: 0, error: 'HTTP 404: no model' });
  const empty = { ...refused, chunkMs: [] };
  t.notOk(isParserRefusal(empty), 'a refusal before any content is a failure');
});

t.test('phase figures: tokens over the wall time, per model over the same wall time, TTFT medians', async (t) => {
  const p = phaseRecord(1000, [
    { model: 'a', record: record({ sendMs: 1000, endMs: 2000, chunkMs: [1100], outputTokens: 40 }) },
    { model: 'a', record: record({ sendMs: 1000, endMs: 2500, chunkMs: [1300], outputTokens: 40 }) },
    { model: 'b', record: record({ sendMs: 1000, endMs: 3000, chunkMs: [1200], outputTokens: 20 }) },
    {
      model: 'b',
      record: record({ sendMs: 1000, endMs: 1010, ok: false, errorKind: 'network', error: 'ECONNRESET' }),
    },
  ]);
  t.equal(p.wallMs, 2000);
  const f = phaseFigures(p);
  t.equal(f.tokensPerSecond, 50);
  t.equal(f.ttftP50Ms, 200);
  t.match(f, { ok: 3, errors: 1, parserErrors: 0, firstError: 'ECONNRESET' });
  t.same(f.perModel, { a: { tokensPerSecond: 40, ttftP50Ms: 200 }, b: { tokensPerSecond: 10, ttftP50Ms: 200 } });
  const none = phaseFigures({ wallMs: 0, requests: [] });
  t.same([none.tokensPerSecond, none.ttftP50Ms, none.ok], [null, null, 0]);
});

function phase(tokensPerSecond: number, a: number, b: number | null): PhaseFigures {
  return {
    tokensPerSecond,
    ttftP50Ms: 100,
    ok: 12,
    errors: 0,
    parserErrors: 1,
    firstError: null,
    perModel: {
      A: { tokensPerSecond: a, ttftP50Ms: 100 },
      ...(b === null ? {} : { B: { tokensPerSecond: b, ttftP50Ms: 100 } }),
    },
  };
}

function run(target: 'ours' | 'llama-server', n: number, one: number, two: number, switchMs: number): RunResult {
  return {
    ...emptyRun(target, n),
    command: `${target} --models-dir /m`,
    models: ['A', 'B'],
    loadMs: [500, 400],
    coldTtftMs: [50, 100],
    one: phase(one, one, null),
    two: phase(two, two / 2, two / 2),
    unloadMs: 10,
    switchTtftMs: switchMs,
  };
}

t.test('medians over runs, the ratios, the verdicts, the table and the JSON line', async (t) => {
  t.same(spreadOf([3, null, 1, 2, Number.NaN, undefined]), { median: 2, min: 1, max: 3, n: 3 });
  t.same(spreadOf([]), { median: null, min: null, max: null, n: 0 });
  t.equal(switchExpectedMs(run('ours', 1, 100, 95, 550)), 500);
  t.equal(switchExpectedMs(emptyRun('ours', 1)), null);
  const o = parseRouterBenchArgs(['--runs', '3']);
  const failed = { ...emptyRun('ours', 3), error: 'ours exited (2) while starting:\nerror: --models-dir is refused\n' };
  const runs = [
    run('ours', 1, 100, 95, 550),
    run('llama-server', 1, 100, 28, 900),
    run('ours', 2, 110, 99, 520),
    run('llama-server', 2, 90, 30, 1000),
    failed,
    run('llama-server', 3, 100, 25, 800),
  ];
  const ours = summarize('ours', runs);
  t.match(ours, { runs: 3, failed: 1 });
  t.same(ours.errors, ['run 3: ours exited (2) while starting:\nerror: --models-dir is refused\n']);
  t.equal(ours.metrics.twoTokensPerSecond?.median, 97);
  t.equal(ours.metrics.twoOverOne?.median, (0.95 + 0.9) / 2);
  t.equal(ours.metrics.switchRatio?.median, (550 / 500 + 520 / 500) / 2);
  const peer = summarize('llama-server', runs);
  t.equal(peer.metrics.twoTokensPerSecond?.median, 28);
  t.equal(peer.metrics.twoTokensPerSecondB?.median, 14);
  t.equal(oursOverLlama([ours, peer], 'twoTokensPerSecond'), 97 / 28);
  t.equal(oursOverLlama([ours], 'twoTokensPerSecond'), null);

  const result = { options: o, modelsDir: '/m', runs };
  const table = formatRouterBench(result);
  t.match(table, /A = A, B = B \| -c 4096 -np 2 -t 2 --ignore-eos \| 4 clients x 3 requests \| max_tokens 48/);
  t.match(table, /\| metric \| ours \| llama-server \| ours\/llama-server \|\n\|---\|---:\|---:\|---:\|/);
  t.match(
    table,
    /\| two: tokens\/s, A \+ B at once \| 97\.00 \(95\.00-99\.00\) \| 28\.00 \(25\.00-30\.00\) \| 3\.464 \|/,
  );
  t.match(table, /\| \*\*two \/ one tokens\/s\*\* \(target >= 0\.9\) \| 0\.925 \(0\.900-0\.950\) \| 0\.280 /);
  t.match(table, /\| runs completed \/ failed \| 2 \/ 1 \| 3 \/ 0 \| \|/);
  t.match(table, /\| served, but refused by the chat parser \(random weights\) \| 4 \| 6 \| \|/);
  t.match(table, /- ours: two\/one 0\.925 MET \(>= 0\.9\); switch 1\.070 MET \(<= 1\.1\)/);
  t.match(table, /- llama-server: two\/one 0\.280 NOT MET \(>= 0\.9\); switch 1\.800 NOT MET/);
  t.match(table, /FAILED run 3: ours exited \(2\) while starting: error: --models-dir is refused/);
  t.match(table, /- ours\/llama-server, phase two tokens\/s: 3\.464/);
  t.match(table, /- ours: `ours --models-dir \/m`/);

  const line = routerBenchJsonLine(result);
  t.notMatch(line, /\n/);
  const json = JSON.parse(line);
  t.match(json, {
    bench: 'router',
    models: ['A', 'B'],
    targets: {
      ours: { runs: 3, failed: 1, twoOverOneMet: true, switchMet: true, medians: { twoTokensPerSecond: 97 } },
      'llama-server': { failed: 0, twoOverOneMet: false, switchMet: false },
    },
  });
  t.equal(json.oursOverLlamaServerTwoTokensPerSecond, 97 / 28);
  t.same(json.targets.ours.errors, ['run 3: ours exited (2) while starting: error: --models-dir is refused']);

  const alone = formatRouterBench({ ...result, options: { ...o, targets: ['ours'] }, runs: [failed] });
  t.match(alone, /\| metric \| ours \|\n/);
  t.match(alone, /ours: two\/one n\/a/);
  t.match(JSON.parse(routerBenchJsonLine({ ...result, runs: [failed] })), {
    models: null,
    targets: { ours: { twoOverOneMet: null } },
  });
});

t.test('headline: the first line, with the next when the first only introduces it', async (t) => {
  t.equal(headline('boom\nmore'), 'boom');
  t.equal(
    headline('exited (1) while starting:\n\n  error: bad flag\nlog'),
    'exited (1) while starting: error: bad flag',
  );
  t.equal(headline('x:'), 'x:');
});

// A router in a few lines: two models, loads take 40 ms, a request to an unloaded model loads it first, answers stream
// one chunk per token with usage and [DONE], as llama-server's router does.
const FAKE_ROUTER = `
const http = require('node:http');
const argv = process.argv.slice(1);
const port = Number(argv[argv.indexOf('--port') + 1]);
const state = { 'fake-a': 'unloaded', 'fake-b': 'unloaded' };
const load = (id) => new Promise((resolve) => { state[id] = 'loading'; setTimeout(() => { state[id] = 'loaded'; resolve(); }, 40); });
const body = (req) => new Promise((resolve) => { let s = ''; req.on('data', (c) => (s += c)); req.on('end', () => resolve(s ? JSON.parse(s) : {})); });
http.createServer(async (req, res) => {
  const json = (code, v) => { res.writeHead(code, { 'content-type': 'application/json' }); res.end(JSON.stringify(v)); };
  if (req.url === '/health') return json(200, { status: 'ok' });
  if (req.url === '/models') return json(200, { data: Object.entries(state).map(([id, value]) => ({ id, status: { value } })) });
  const b = await body(req);
  if (!(b.model in state)) return json(404, { error: { message: 'no model ' + b.model } });
  if (req.url === '/models/load') { void load(b.model); return json(200, { success: true }); }
  if (req.url === '/models/unload') { setTimeout(() => (state[b.model] = 'unloaded'), 5); return json(200, { success: true }); }
  if (state[b.model] !== 'loaded') await load(b.model);
  res.writeHead(200, { 'content-type': 'text/event-stream' });
  const send = (v) => res.write('data: ' + JSON.stringify(v) + '\\n\\n');
  for (let k = 0; k < b.max_tokens; k++) {
    await new Promise((r) => setTimeout(r, 1));
    send({ choices: [{ index: 0, delta: { content: 'x' }, finish_reason: null }] });
  }
  send({ choices: [{ index: 0, delta: {}, finish_reason: 'length' }] });
  send({ choices: [], usage: { prompt_tokens: 9, completion_tokens: b.max_tokens } });
  res.end('data: [DONE]\\n\\n');
}).listen(port, '127.0.0.1');
process.on('SIGTERM', () => process.exit(0));
`;

const fake = (o: ReturnType<typeof parseRouterBenchArgs>) => ({
  cmd: process.execPath,
  args: ['-e', FAKE_ROUTER, '--', ...routerArgs(o, '/nowhere')],
});

t.test('one run against a fake router: every figure is there', async (t) => {
  const o = parseRouterBenchArgs(['--models-dir', '/nowhere', '--runs', '1', '--tokens', '6', '--requests', '2']);
  const lines: string[] = [];
  const r = await measureRun('ours', 1, fake(o), o, (l) => lines.push(l));
  t.equal(r.error, null);
  t.same(r.models, ['fake-a', 'fake-b']);
  t.ok((r.loadMs?.[0] ?? 0) >= 40 && (r.loadMs?.[1] ?? 0) >= 40, 'loads take 40 ms');
  t.match(r.one, { ok: 8, errors: 0 });
  t.match(r.two, { ok: 8, errors: 0 });
  t.ok((r.one?.tokensPerSecond ?? 0) > 0);
  t.same(Object.keys(r.two?.perModel ?? {}), ['fake-a', 'fake-b']);
  t.ok((r.switchTtftMs ?? 0) >= 40, 'the request to the unloaded model waited for its load');
  t.ok((r.unloadMs ?? -1) >= 0);
  t.match(r.command, /--models-dir \/nowhere .*--host 127\.0\.0\.1 --port \d+$/);
  t.match(lines.join('\n'), /ours run 1\/1: phase two: [\d.]+ tokens\/s/);
});

t.test('a run that cannot go on ends with its error; the next run still happens', async (t) => {
  const o = parseRouterBenchArgs(['--models-dir', '/nowhere', '--runs', '1', '--models', 'fake-a,nope']);
  const missing = await measureRun('ours', 1, fake(o), o, quiet);
  t.match(missing.error, /GET \/models does not list 'nope' \(it lists: fake-a, fake-b\)/);
  t.match(missing.error, /--- server log ---/);
  const exits = await measureRun(
    'llama-server',
    1,
    { cmd: process.execPath, args: ['-e', 'console.error("error: unknown --models-dir"); process.exit(3)', '--'] },
    o,
    quiet,
  );
  t.match(headline(exits.error ?? ''), /llama-server exited \(3\) while starting: error: unknown --models-dir/);
  const absent = await measureRun('ours', 1, { cmd: '/nonexistent/server', args: [] }, o, quiet);
  t.match(absent.error, /could not start|exited/);
});

t.test('the models dir: a given one as it is; else the pair generated once and linked under the cache', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'router-bench-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const given = join(dir, 'given');
  await mkdir(given);
  await writeFile(join(given, 'only.gguf'), '');
  const warnings: string[] = [];
  t.equal(await prepareModelsDir(parseRouterBenchArgs(['--models-dir', given]), (l) => warnings.push(l)), given);
  t.match(warnings, [/holds 1 \.gguf file/]);

  const saved = process.env.LLAMA_SERVER_CACHE_DIR;
  process.env.LLAMA_SERVER_CACHE_DIR = join(dir, 'cache');
  t.teardown(() => {
    if (saved === undefined) delete process.env.LLAMA_SERVER_CACHE_DIR;
    else process.env.LLAMA_SERVER_CACHE_DIR = saved;
  });
  const o = parseRouterBenchArgs(['--preset', 'tiny', '--quant', 'F16']);
  const made = await prepareModelsDir(o, quiet);
  t.equal(made, join(dir, 'cache', 'router-bench', 'tiny-F16'));
  const [a, b] = await Promise.all(['tiny-a', 'tiny-b'].map((id) => stat(join(made, `${id}.gguf`))));
  t.not(a?.ino, b?.ino, 'two different models');
  t.equal(await prepareModelsDir(o, quiet), made, 'reused');
  t.equal((await stat(join(made, 'tiny-a.gguf'))).ino, a?.ino);
});

const llamaServer = toolPath('llama-server');
t.test(
  "llama-server's router with two tiny models",
  { skip: existsSync(llamaServer) ? false : `${llamaServer} is not built` },
  async (t) => {
    const o = parseRouterBenchArgs([
      '--targets',
      'llama-server',
      '--llama-server',
      llamaServer,
      '--preset',
      'tiny-gemma3',
      '--quant',
      'F16',
      '--runs',
      '1',
      '--clients',
      '2',
      '--requests',
      '1',
      '--tokens',
      '8',
    ]);
    const r = await runRouterBench(o, quiet);
    const [only] = r.runs;
    t.equal(only?.error, null, only?.error ?? '');
    t.same(only?.models, ['tiny-gemma3-a', 'tiny-gemma3-b']);
    t.ok((only?.two?.tokensPerSecond ?? 0) > 0);
    t.ok((only?.switchTtftMs ?? 0) > 0);
    t.match(formatRouterBench(r), /\| metric \| llama-server \|/);
  },
);

t.test('stream gaps split by whether they overlap the other model’s load', async (t) => {
  // Role chunk at 0, first token at 100, then tokens every 10 ms, one 60 ms gap inside the load [150, 200].
  const chunks = [0, 100, 110, 120, 130, 140, 200, 210, 220];
  t.same(loadGaps(chunks, 150, 200), { usualMs: 10, duringP50Ms: 60, duringMaxMs: 60 });
  t.equal(loadGaps(chunks, 1000, 2000), null, 'no gap during the load');
  t.equal(loadGaps([0, 100], 0, 50), null, 'no gaps at all');
  const r = { ...emptyRun('ours', 1), loadGaps: { usualMs: 10, duringP50Ms: 15, duringMaxMs: 40 } };
  const ratio = METRICS.find((m) => m.key === 'gapRatio');
  t.equal(ratio?.pick(r), 1.5);
});
