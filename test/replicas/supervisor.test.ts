// `npm run replicas` for real: two replicas of the tiny model behind Debian's haproxy. A session header
// keeps a conversation on one replica; a replica killed mid-load (SIGKILL) costs no request, because the
// requests it held are retried by the OpenAI SDK (HAProxy answered 502) and the supervisor restarts it; a
// replica drained mid-load (SIGTERM) under the load generator costs no request at all; SIGTERM to the
// launcher drains everything and exits 0. Every wait is for an event (a log line, a gauge, an exit).
import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import OpenAI from 'openai';
import t from 'tap';
import { chatPositions, compareGreedy, TIE_NATS } from '../../src/bench/greedy.ts';
import { ChatTemplates, Model } from '../../src/engine/index.ts';
import { projectRoot } from '../../src/paths.ts';
import { findHaproxy } from '../../src/replicas/supervisor.ts';
import { closedPort } from '../bench/loadgen/fake-server.ts';
import { modelPath } from '../helpers/models.ts';
import { parseExposition } from '../metrics/helpers.ts';

const skip = findHaproxy() === undefined ? 'haproxy is not installed (Debian/Ubuntu: apt-get install haproxy)' : false;

const CLI = join(projectRoot, 'src', 'entry', 'main.ts');
/** Bans end-of-generation (token 2 in the llama SPM vocabulary) so a request runs its full length. */
const NO_EOS = { '2': -100 };

interface Launcher {
  child: ChildProcess;
  front: string;
  lines: string[];
  /** Resolves with the first line (from `from` on) matching `re`; rejects after `timeoutMs` or on exit. */
  line(re: RegExp, from?: number, timeoutMs?: number): Promise<RegExpExecArray>;
  exited: Promise<number | null>;
}

function startLauncher(args: string[]): Launcher {
  const child = spawn(process.execPath, ['--import', 'tsx', CLI, 'replicas', ...args], {
    cwd: projectRoot,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: string[] = [];
  const waiters: Array<{ re: RegExp; from: number; resolve: (m: RegExpExecArray) => void }> = [];
  let buffered = '';
  const onData = (chunk: Buffer): void => {
    buffered += chunk.toString();
    const parts = buffered.split('\n');
    buffered = parts.pop() ?? '';
    for (const l of parts) {
      lines.push(l);
      for (const w of [...waiters]) {
        const m = w.re.exec(l);
        if (m && lines.length - 1 >= w.from) {
          waiters.splice(waiters.indexOf(w), 1);
          w.resolve(m);
        }
      }
    }
  };
  child.stdout?.on('data', onData);
  child.stderr?.on('data', onData);
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return {
    child,
    front: '',
    lines,
    exited,
    line(re, from = 0, timeoutMs = 90_000) {
      for (let i = from; i < lines.length; i++) {
        const m = re.exec(lines[i] ?? '');
        if (m) return Promise.resolve(m);
      }
      return new Promise((resolve, reject) => {
        const fail = (why: string) => reject(new Error(`${why} waiting for ${re}:\n${lines.join('\n')}`));
        // A line that never comes fails the test instead of hanging it.
        const timer = setTimeout(() => fail(`no such line within ${timeoutMs / 1000} s`), timeoutMs);
        waiters.push({
          re,
          from,
          resolve: (m) => {
            clearTimeout(timer);
            resolve(m);
          },
        });
        void exited.then((code) => {
          clearTimeout(timer);
          fail(`launcher exited (${code})`);
        });
      });
    },
  };
}

/** HAProxy's `show stat` over its stats socket, as rows keyed by column name. */
function haproxyStats(socket: string): Promise<Array<Record<string, string>>> {
  return new Promise((resolve, reject) => {
    const conn = connect(socket);
    let text = '';
    conn.on('data', (d: Buffer) => (text += d.toString()));
    conn.on('error', reject);
    conn.on('end', () => {
      const [header = '', ...rows] = text.trim().split('\n');
      const columns = header.replace(/^# /, '').split(',');
      resolve(rows.map((row) => Object.fromEntries(row.split(',').map((v, i) => [columns[i] ?? `${i}`, v]))));
    });
    conn.end('show stat\n');
  });
}

interface LogprobsAnswer {
  choices: Array<{
    logprobs?: {
      content: Array<{
        token: string;
        bytes: number[] | null;
        top_logprobs: Array<{ token: string; logprob: number; bytes: number[] | null }>;
      }> | null;
    } | null;
  }>;
}

/**
 * null when the answer's first tokens are `reference`'s (token bytes), or where they part, a numerical tie: the
 * reference's token one of the answer's best two there, within TIE_NATS of each other. Else what differs.
 */
function startsAsReference(answer: LogprobsAnswer, reference: readonly number[][]): string | null {
  const positions = answer.choices[0]?.logprobs?.content ?? [];
  const same = (a: readonly number[] | null | undefined, b: readonly number[]) =>
    a?.length === b.length && a.every((x, k) => x === b[k]);
  for (const [i, want] of reference.entries()) {
    const got = positions[i];
    if (got === undefined) return `only ${i} positions`;
    if (same(got.bytes, want)) continue;
    const [a, b] = got.top_logprobs;
    if (a && b && a.logprob - b.logprob < TIE_NATS && (same(a.bytes, want) || same(b.bytes, want))) return null;
    return `token ${i}: ${JSON.stringify(got.token)}, llama.cpp's loop ${JSON.stringify(Buffer.from(want).toString())}`;
  }
  return null;
}

/** Requests the replica finished at their token limit (llama_slots_requests_total{finish_reason="length"}). */
async function finishedRequests(url: string): Promise<number> {
  const families = parseExposition(await (await fetch(`${url}/metrics`)).text());
  const samples = [...families.values()].flatMap((f) => f.samples);
  const hit = samples.find((s) => s.name === 'llama_slots_requests_total' && s.labels.finish_reason === 'length');
  return hit?.value ?? 0;
}

/** Resolves once the replica's /slots shows at least one slot processing (throws after a minute). */
async function running(url: string): Promise<void> {
  for (const deadline = Date.now() + 60_000; Date.now() < deadline; ) {
    const slots = await fetch(`${url}/slots`)
      .then((r) => r.json() as Promise<{ is_processing: boolean }[]>)
      .catch(() => []);
    if (slots.some((s) => s.is_processing)) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`${url} ran no request within a minute`);
}

if (skip) t.test('replicas behind haproxy', { skip }, () => {});
else await suite();

async function suite(): Promise<void> {
  const model = await modelPath('tiny');
  const tiny = await Model.load(model);
  t.teardown(() => tiny.dispose());
  const templates = new ChatTemplates(tiny);
  t.teardown(() => templates.dispose());
  /**
   * The first `n` tokens (their bytes) of llama.cpp's own greedy loop over the prompt of `messages`, rendered here by
   * the engine's chat layer (the model's template), not by a replica.
   */
  async function referenceStart(messages: unknown[], n: number): Promise<number[][]> {
    const rendered = await templates.apply({ messages });
    // As the server tokenizes a prompt (src/server/generation/params.ts): special tokens added and parsed.
    const tokens = Array.from(tiny.tokenize(rendered.prompt, { addSpecial: true, parseSpecial: true }));
    if (tokens[0] === tiny.info.bos && tokens[1] === tiny.info.bos) tokens.shift();
    const out = await tiny.referenceGreedy(tokens, { nPredict: n });
    return out.map((id) => Array.from(tiny.tokenBytes(id)));
  }
  const port = await closedPort();
  const launcher = startLauncher([
    '--replicas',
    '2',
    '--model',
    model,
    '--port',
    String(port),
    '-t',
    '1',
    '-np',
    '2',
    '-c',
    '8192',
    '--shutdown-grace',
    '20',
    '--log-level',
    'warn',
    '--metrics',
  ]);
  t.teardown(() => {
    if (launcher.child.exitCode === null) launcher.child.kill('SIGKILL');
  });
  const serving = await launcher.line(/serving (http:\/\/\S+) with 2 replicas; HAProxy stats: .* (\S+haproxy\.sock)$/);
  const front = serving[1] ?? '';
  const socket = serving[2] ?? '';
  /** The replicas as the launcher reported them, latest start last. */
  function replica(name: string): { url: string; pid: number } {
    const re = new RegExp(`${name} ready at (http://\\S+) \\(pid (\\d+)`);
    const hits = launcher.lines.map((l) => re.exec(l)).filter((m) => m !== null);
    const m = hits.at(-1);
    if (!m?.[1] || !m[2]) throw new Error(`${name} not started`);
    return { url: m[1], pid: Number(m[2]) };
  }

  /** The OpenAI SDK through HAProxy, counting the retries it makes itself. */
  function client(): { sdk: OpenAI; retries: () => number } {
    let retries = 0;
    const sdk = new OpenAI({
      apiKey: 'none',
      baseURL: `${front}/v1`,
      maxRetries: 5,
      fetch: (url, init) => {
        if (Number(new Headers(init?.headers).get('x-stainless-retry-count') ?? 0) > 0) retries++;
        return fetch(url, init);
      },
    });
    return { sdk, retries: () => retries };
  }

  t.test('affinity: a session header, else the tenant header, keeps a conversation on one replica', async (t) => {
    const { sdk } = client();
    const servedBy = async (headers: Record<string, string>): Promise<string> => {
      const { response } = await sdk.chat.completions
        .create({ model: 'tiny', messages: [{ role: 'user', content: 'hi' }], max_tokens: 4 }, { headers })
        .withResponse();
      return response.headers.get('x-served-by') ?? '';
    };
    const seen = new Map<string, Set<string>>();
    for (let round = 0; round < 3; round++) {
      for (const session of ['s0', 's1', 's2', 's3']) {
        const server = await servedBy({ 'x-session-id': session });
        seen.set(session, (seen.get(session) ?? new Set()).add(server));
      }
      const tenant = await servedBy({ 'x-llm-d-inference-fairness-id': 'tenant-a' });
      seen.set('tenant-a', (seen.get('tenant-a') ?? new Set()).add(tenant));
    }
    for (const [key, servers] of seen) t.equal(servers.size, 1, `${key} always on ${[...servers].join(', ')}`);
    const used = new Set([...seen.values()].flatMap((s) => [...s]));
    t.same([...used].sort(), ['replica0', 'replica1'], 'new sessions are spread over both replicas');
  });

  t.test(
    'a replica killed mid-load: every request is answered once, by a live replica, with its greedy text',
    async (t) => {
      const { sdk, retries } = client();
      const before = await haproxyStats(socket);
      const victim = replica('replica1');
      const survivor = replica('replica0');
      const servedBefore = await finishedRequests(survivor.url);
      const from = launcher.lines.length;
      const body = (i: number) => ({
        model: 'tiny',
        messages: [{ role: 'user' as const, content: `request ${i}` }],
        max_tokens: 1200,
        temperature: 0,
        logit_bias: NO_EOS,
        logprobs: true,
        top_logprobs: 2,
      });
      // Each request carries its own id (the server answers it back in x-request-id); the SDK sends it again on a retry.
      const ids = Array.from({ length: 8 }, (_, i) => `kill-${i}-${process.pid}`);
      const requests = ids.map((id, i) =>
        sdk.chat.completions.create(body(i), { headers: { 'x-request-id': id } }).withResponse(),
      );
      await running(victim.url);
      process.kill(victim.pid, 'SIGKILL');
      const answers = await Promise.all(requests);
      const after = await haproxyStats(socket);
      const backend = (rows: Array<Record<string, string>>) =>
        rows.find((r) => r.pxname === 'replicas' && r.svname === 'BACKEND');
      const haproxyRetries = Number(backend(after)?.wretr ?? 0) - Number(backend(before)?.wretr ?? 0);
      const redispatches = Number(backend(after)?.wredis ?? 0) - Number(backend(before)?.wredis ?? 0);
      t.comment(`SDK retries: ${retries()}; HAProxy retries: ${haproxyRetries}, redispatches: ${redispatches}`);
      t.ok(retries() >= 1, 'the requests the killed replica held were retried by the SDK');
      t.ok(retries() <= 8 * 2, 'and not endlessly');
      await launcher.line(/replica1 killed by SIGKILL; restarting/, from);
      const back = await launcher.line(/replica1 ready at \S+ \(pid (\d+)/, from);
      t.not(Number(back[1]), victim.pid, 'the supervisor started a new process');

      // Identity: each answer is its own request's (its id came back), from the replica HAProxy names.
      t.same(
        answers.map((a) => a.response.headers.get('x-request-id')),
        ids,
        'each answer carries its own request id',
      );
      const servedBy = answers.map((a) => a.response.headers.get('x-served-by') ?? '');
      t.ok(
        servedBy.every((s) => s === 'replica0' || s === 'replica1'),
        `answered by: ${servedBy.join(', ')}`,
      );
      // Run once: the requests each live process finished are exactly the answers it is named on. A request run again
      // behind the client's back (a retry of one that had reached generation) would be a finished request too many.
      const byReplica = (name: string) => servedBy.filter((s) => s === name).length;
      t.equal(
        (await finishedRequests(survivor.url)) - servedBefore,
        byReplica('replica0'),
        'replica0 finished exactly the requests it answered',
      );
      t.equal(
        await finishedRequests(replica('replica1').url),
        byReplica('replica1'),
        "the new replica1 finished exactly the requests it answered (the killed one's work died with it)",
      );
      // Content: every answer is its own prompt's greedy run. It starts as llama.cpp's own single-sequence loop
      // writes that prompt's continuation (in this process, over the prompt the engine's chat layer renders), and all of it is
      // the same request's run sent alone to a replica afterwards (token for token, up to a numerical tie where the
      // runs may part: src/bench/greedy.ts).
      for (const [i, { data }] of answers.entries()) {
        t.same(
          [data.choices[0]?.finish_reason, data.usage?.completion_tokens],
          ['length', 1200],
          `request ${i}: its full length`,
        );
        const answer = data as unknown as LogprobsAnswer;
        t.equal(
          startsAsReference(answer, await referenceStart(body(i).messages, 16)),
          null,
          `request ${i}: llama.cpp's greedy continuation of its own prompt`,
        );
        const solo = await fetch(`${survivor.url}/v1/chat/completions`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify(body(i)),
        }).then((r) => r.json() as Promise<LogprobsAnswer>);
        const ours = chatPositions(answer);
        const comparison = compareGreedy(ours, chatPositions(solo));
        t.equal(ours.length, 1200, `request ${i}: 1200 positions`);
        t.equal(comparison.problem, null, `request ${i} (${servedBy[i]}): its greedy text (${comparison.equal} equal)`);
      }
    },
  );

  t.test('a replica drained mid-load under the load generator: no request fails', async (t) => {
    const dir = t.testdir({});
    const json = join(dir, 'bench.json');
    const victim = replica('replica0');
    const from = launcher.lines.length;
    const bench = spawn(
      process.execPath,
      [
        '--import',
        'tsx',
        CLI,
        'bench',
        '--url',
        front,
        '--ranks',
        '2',
        '--requests',
        '24',
        '--max-tokens',
        '200',
        '--json',
        json,
      ],
      { cwd: projectRoot, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let output = '';
    bench.stdout.on('data', (d: Buffer) => (output += d.toString()));
    bench.stderr.on('data', (d: Buffer) => (output += d.toString()));
    const code = new Promise<number | null>((resolve) => bench.on('close', resolve));
    await running(victim.url);
    const drainedAt = performance.timeOrigin + performance.now();
    process.kill(victim.pid, 'SIGTERM');
    const exit = await code;
    t.equal(exit, 0, exit === 0 ? 'the load generator ran' : output);
    const report = JSON.parse(readFileSync(json, 'utf8')) as {
      report: { ok: number; errors: number };
      requests: Array<{ ok: boolean; sendMs: number }>;
      run: { goMs: number };
    };
    t.equal(report.report.ok, 24, 'every request answered');
    t.equal(report.report.errors, 0);
    const sentAfter = report.requests.filter((r) => report.run.goMs + r.sendMs > drainedAt).length;
    t.ok(sentAfter >= 1, `${sentAfter} requests were sent after the drain began`);
    await launcher.line(/replica0 exited cleanly \(drained\); not restarted/, from);
    const rows = await haproxyStats(socket);
    t.match(rows.find((r) => r.svname === 'replica0')?.status, /DOWN/, 'HAProxy took it out');
    t.equal(rows.find((r) => r.svname === 'replica1')?.status, 'UP');
  });

  t.test('SIGTERM drains HAProxy and the replicas, and exits 0', async (t) => {
    const from = launcher.lines.length;
    const last = replica('replica1');
    launcher.child.kill('SIGTERM');
    t.equal(await launcher.exited, 0);
    t.ok(launcher.lines.slice(from).some((l) => /draining/.test(l)));
    t.ok(launcher.lines.slice(from).some((l) => /replicas: stopped$/.test(l)));
    t.throws(() => process.kill(last.pid, 0), 'the replica process is gone');
  });
}
