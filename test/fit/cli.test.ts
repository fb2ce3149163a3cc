import { PassThrough } from 'node:stream';
import t from 'tap';
import { parseFitArgs, runFitCli } from '../../src/fit/cli.ts';
import { modelPath } from '../helpers/models.ts';

async function run(argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = new PassThrough();
  const err = new PassThrough();
  const chunks = { stdout: '', stderr: '' };
  out.on('data', (d: Buffer) => (chunks.stdout += d.toString()));
  err.on('data', (d: Buffer) => (chunks.stderr += d.toString()));
  const code = await runFitCli(argv, { stdout: out, stderr: err });
  await new Promise((resolve) => setImmediate(resolve));
  return { code, ...chunks };
}

let gemma: string;
t.before(async () => {
  gemma = await modelPath('gemma3-1b', 'Q4_K_M');
});

t.test('exit 0 when it fits: the table and llama-server flags', async (t) => {
  const r = await run(['--model', gemma, '--vram', '1GiB', '--cc', '5.0']);
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, /VRAM item\s+MiB\s+formula/);
  t.match(r.stdout, /weights: layers 0-25 \(26\/26\)\s+456\.5\d\s+Σ blk\.N\.\* tensor bytes/);
  t.match(r.stdout, /KV cache: 4 global layers\s+\d+\.\d\d\s+4 layers × \d+ cells × 4 streams × 1024 B \(K\+V f16\)/);
  t.match(r.stdout, /headroom\s+\d+\.\d\d/);
  t.match(r.stdout, /flags: -ngl 27 -c \d+ -np 4 -ub 8 -ctk f16 -ctv f16 -fa on/);
  t.equal(r.stderr, '');
});

t.test('--json', async (t) => {
  const r = await run([
    '--model',
    gemma,
    '--vram=1024MiB',
    '--cc',
    '5.0',
    '--slots',
    '2',
    '--ctx',
    '2048',
    '--kv',
    'q8_0',
    '--json',
  ]);
  t.equal(r.code, 0, r.stderr);
  const j = JSON.parse(r.stdout) as {
    fits: boolean;
    settings: Record<string, unknown>;
    flags: string[];
    table: Array<{ name: string; bytes: number; mib: number }>;
    computeCapability: string;
  };
  t.equal(j.fits, true);
  t.equal(j.computeCapability, '5.0');
  t.match(j.settings, { slots: 2, ctxPerSlot: 2048, kvType: 'q8_0', gpuLayers: 27 });
  t.same(j.flags.slice(0, 6), ['-ngl', '27', '-c', '4096', '-np', '2']);
  t.ok(j.table.some((i) => i.name.startsWith('weights: output matrix') && Math.abs(i.mib - 306) < 0.01));
});

t.test('exit 1 when it does not fit, with the smallest budget', async (t) => {
  const r = await run(['--model', gemma, '--vram', '100M']);
  t.equal(r.code, 1);
  t.match(r.stdout, /DOES NOT FIT/);
  t.match(r.stderr, /does not fit in 100\.00 MiB of VRAM.*Smallest budget that fits: \d+\.\d\d MiB/);
  const j = await run(['--model', gemma, '--vram', '100M', '--json']);
  t.equal(j.code, 1);
  t.match(JSON.parse(j.stdout), { fits: false, minimumBytes: Number });
});

t.test('exit 2 for bad arguments, naming the flag', async (t) => {
  const cases: Array<[string[], RegExp]> = [
    [['--vram', '1G'], /--model is required/],
    [['--model', gemma], /--vram is required/],
    [['--model', gemma, '--vram', 'lots'], /--vram: 'lots' is not a size/],
    [['--model', gemma, '--vram', '1G', '--slots', '0'], /--slots must be at least 1, got 0/],
    [['--model', gemma, '--vram', '1G', '--slots', 'two'], /--slots must be an integer, got 'two'/],
    [['--model', gemma, '--vram', '1G', '--ctx'], /--ctx needs a value/],
    [['--model', gemma, '--vram', '1G', '--kv', 'q4_0'], /--kv must be one of f16, q8_0, got 'q4_0'/],
    [['--model', gemma, '--vram', '1G', '--cc', 'maxwell'], /--cc: compute capability 'maxwell'/],
    [['--model', gemma, '--vram', '1G', '--frobnicate'], /unknown option '--frobnicate'/],
    [['--model', gemma, '--vram', '1G', '--vram', '2G'], /--vram is given twice/],
    [['--model', gemma, '--vram', '1G', '--kv', 'q8_0', '--no-flash-attn'], /--kv: q8_0 needs flash attention/],
    [['--model', '/nonexistent/model.gguf', '--vram', '1G'], /--model: .*no such file/],
  ];
  for (const [argv, message] of cases) {
    const r = await run(argv);
    t.equal(r.code, 2, argv.join(' '));
    t.match(r.stderr, message);
  }
  const help = await run(['--help']);
  t.equal(help.code, 0);
  t.match(help.stdout, /Usage: npm run fit/);
});

t.test('parseFitArgs', async (t) => {
  t.same(parseFitArgs(['--model', 'm.gguf', '--vram', '900M', '--ngl', '-1', '--ubatch', '8', '--overhead', '96MiB']), {
    model: 'm.gguf',
    vramBytes: 900 * 2 ** 20,
    gpuLayers: -1,
    ubatch: 8,
    cudaOverheadBytes: 96 * 2 ** 20,
    flashAttn: true,
    json: false,
  });
  t.equal(parseFitArgs(['--model', 'm', '--vram', '1G', '--overhead', '0']).cudaOverheadBytes, 0);
});
