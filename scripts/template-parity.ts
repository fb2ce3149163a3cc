// Renders the same conversations through this server and llama-server, for every chat template in llama.cpp's
// corpus (vendor/llama.cpp/models/templates), and prints where the prompts differ. Both servers run with their
// defaults (llama-server with --jinja) on a tiny generated model carrying the template.
//   npx tsx scripts/template-parity.ts [path/to/llama-server] [TEMPLATE-NAME-FILTER]
// llama-server: build-tools/bin/llama-server by default (npm run bench:compare builds it).
import { type ChildProcess, spawn } from 'node:child_process';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { llamaCppDir, projectRoot } from '../src/paths.ts';
import { ensureModel } from '../src/tools/model-cache.ts';

const llamaServer = process.argv[2] ?? join(projectRoot, 'build-tools', 'bin', 'llama-server');
const filter = process.argv[3] ?? '';

const tool = {
  type: 'function',
  function: {
    name: 'get_weather',
    description: 'The weather in a city',
    parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
  },
};
const CONVERSATIONS: Record<string, unknown> = {
  plain: { messages: [{ role: 'user', content: 'Hello' }] },
  'system and an earlier turn': {
    messages: [
      { role: 'system', content: 'Be brief.' },
      { role: 'user', content: 'Hi' },
      { role: 'assistant', content: 'Hello there.' },
      { role: 'user', content: 'How are you?' },
    ],
  },
  'earlier reasoning': {
    messages: [
      { role: 'user', content: 'Hi' },
      { role: 'assistant', content: 'Hello there.', reasoning_content: 'A greeting.' },
      { role: 'user', content: 'How are you?' },
    ],
  },
  'a tool round trip': {
    tools: [tool],
    messages: [
      { role: 'user', content: 'Weather in Paris?' },
      {
        role: 'assistant',
        content: null,
        tool_calls: [
          { id: 'call_1', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris"}' } },
        ],
      },
      { role: 'tool', tool_call_id: 'call_1', content: '18 C, sunny' },
    ],
  },
};

async function start(command: string, args: string[], port: number): Promise<ChildProcess> {
  const child = spawn(command, args, { stdio: 'ignore' });
  for (let k = 0; k < 200; k++) {
    const ok = await fetch(`http://127.0.0.1:${port}/health`)
      .then((r) => r.status === 200)
      .catch(() => false);
    if (ok) return child;
    if (child.exitCode !== null) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  child.kill();
  throw new Error(`${command} did not start on port ${port}`);
}

async function render(port: number, body: unknown): Promise<string> {
  const res = await fetch(`http://127.0.0.1:${port}/apply-template`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  const text = await res.text();
  if (res.status !== 200) return `(${res.status}) ${text.slice(0, 200)}`;
  return (JSON.parse(text) as { prompt: string }).prompt;
}

const dir = join(llamaCppDir(), 'models', 'templates');
const names = (await readdir(dir)).filter((f) => f.endsWith('.jinja') && f.includes(filter)).sort();
let same = 0;
let differ = 0;
let bothRefuse = 0;
for (const file of names) {
  const { readFile } = await import('node:fs/promises');
  const chatTemplate = await readFile(join(dir, file), 'utf8');
  const model = await ensureModel({ preset: 'tiny', quant: 'F16', seed: 1, chatTemplate });
  const ours = await start(
    process.execPath,
    [
      '--import',
      'tsx',
      join(projectRoot, 'src', 'entry', 'main.ts'),
      'serve',
      '-m',
      model,
      '--port',
      '8141',
      '-c',
      '256',
      '-np',
      '1',
      '-t',
      '1',
    ],
    8141,
  );
  const theirs = await start(
    llamaServer,
    ['-m', model, '--jinja', '--port', '8142', '-c', '256', '-np', '1', '-t', '1'],
    8142,
  );
  try {
    for (const [what, body] of Object.entries(CONVERSATIONS)) {
      const [a, b] = await Promise.all([render(8141, body), render(8142, body)]);
      if (a.startsWith('(') && b.startsWith('(')) bothRefuse++;
      else if (a === b) same++;
      else {
        differ++;
        console.log(
          `${file} / ${what}:\n  ours:        ${JSON.stringify(a).slice(0, 600)}\n  llama-server: ${JSON.stringify(b).slice(0, 600)}`,
        );
      }
    }
  } finally {
    ours.kill();
    theirs.kill();
  }
}
console.log(
  `${names.length} templates, ${same + differ + bothRefuse} renderings: ${same} identical, ${differ} differ, ${bothRefuse} refused by both`,
);
