// `serve` with a draft model: the real server process loads it beside the target, greedy text is the target's own,
// and what llama.cpp or the flags refuse ends the start with exit 2 and a message naming the flags.
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import t from 'tap';
import { projectRoot } from '../../src/paths.ts';
import { modelPath } from '../helpers/models.ts';
import { startServer } from '../helpers/server-process.ts';

const tiny = await modelPath('tiny');

/** Runs `serve` with these flags to its exit (for starts that fail). */
function runServe(args: string[]): Promise<{ code: number | null; output: string }> {
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', join(projectRoot, 'src', 'entry', 'main.ts'), 'serve', ...args],
    {
      cwd: projectRoot,
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let output = '';
  child.stdout.on('data', (c: Buffer) => {
    output += c.toString();
  });
  child.stderr.on('data', (c: Buffer) => {
    output += c.toString();
  });
  return new Promise((resolve) => child.on('exit', (code) => resolve({ code, output })));
}

interface Completion {
  content: string;
  tokens_predicted: number;
  timings: { draft_n?: number; draft_n_accepted?: number };
}

async function complete(url: string): Promise<Completion> {
  const res = await fetch(`${url}/completion`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ prompt: 'Once upon a time, in a land far away,', n_predict: 48, temperature: 0 }),
  });
  return (await res.json()) as Completion;
}

t.test('-md with draft-simple: the same greedy text as without it, from verified drafts', async (t) => {
  const common = ['-m', tiny, '-np', '1', '-c', '1024', '--no-webui'];
  const plain = await startServer(common);
  const expected = await complete(plain.url);
  t.equal(await plain.stop(), 0);
  t.equal(expected.tokens_predicted, 48);
  t.equal(expected.timings.draft_n, undefined, 'no drafts without the flags');

  const spec = await startServer([...common, '-md', tiny, '--spec-type', 'draft-simple', '--spec-draft-n-max', '4']);
  t.teardown(() => spec.stop());
  const got = await complete(spec.url);
  t.equal(got.content, expected.content, 'token for token the target greedy text');
  t.equal(got.tokens_predicted, 48);
  // The draft is the target itself: every drafted token is the target's choice.
  t.ok((got.timings.draft_n ?? 0) > 0, `drafted ${got.timings.draft_n}`);
  t.equal(got.timings.draft_n_accepted, got.timings.draft_n);
  t.match(
    spec.output(),
    /"speculative":\{"types":"draft-simple","draftModel":"tiny-F16-s1-g1\.gguf \([\d.]+ MiB\)","nMax":4,"policy":"adaptive"\}/,
  );
  t.equal(await spec.stop('SIGTERM'), 0, 'the draft model is freed with the rest at shutdown');
});

t.test('what the flags or llama.cpp refuse ends the start with exit 2, naming the flag', async (t) => {
  const mtp = await runServe(['--spec-type', 'draft-mtp']);
  t.equal(mtp.code, 2);
  t.match(mtp.output, /error: --spec-type draft-mtp needs the model's MTP layers, which this server does not load/);
  const threads = await runServe(['-md', tiny, '-td', '2']);
  t.equal(threads.code, 2);
  t.match(threads.output, /error: -td is not supported by this server: /);
  const cache = await runServe(['--spec-type', 'ngram-cache']);
  t.equal(cache.code, 2);
  t.match(cache.output, /error: --spec-type ngram-cache needs a static lookup cache/);
  // A draft of another vocabulary: llama.cpp's refusal, once both models are loaded.
  const qwen = await runServe(['-m', tiny, '-md', await modelPath('tiny-qwen'), '--port', '0', '--no-webui']);
  t.equal(qwen.code, 2);
  t.match(qwen.output, /cannot serve .*: --spec-type draft-simple -md \S+tiny-qwen\S*: .*vocab/);
  // --vram-budget counts the draft: the refusal's smallest plan names its share (no model is loaded for that).
  const budget = await runServe(['-m', tiny, '-md', tiny, '--vram-budget', '1MiB']);
  t.equal(budget.code, 1);
  t.match(budget.output, /error: --vram-budget: .* needs [\d.]+ MiB \(.*draft model [\d.]+\)/);
  const missing = await runServe(['-m', tiny, '-md', '/nonexistent/draft.gguf', '--port', '0']);
  t.equal(missing.code, 1, 'a missing file, as for -m');
  t.match(missing.output, /error: -md\/--spec-draft-model: .*draft\.gguf/);
});
