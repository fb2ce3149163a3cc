// A draft model in the VRAM plan (-md): its weights and a context mirroring the target's cells with its own layer
// shapes and KV types, counted on the same card; the planner fits the target around it.
import { PassThrough } from 'node:stream';
import t from 'tap';
import { runFitCli } from '../../src/fit/cli.ts';
import type { DeviceSettings, DraftSettings, MemoryItem, ModelShape } from '../../src/fit/memory-model.ts';
import {
  draftItems,
  estimateDeviceMemory,
  GIB,
  kvBytes,
  kvCells,
  kvRowBytes,
  MIB,
  readModelShape,
} from '../../src/fit/memory-model.ts';
import { planFit, planForServer } from '../../src/fit/planner.ts';
import { formatPlan } from '../../src/fit/report.ts';
import { modelPath } from '../helpers/models.ts';

let gemma: ModelShape;
let draftShape: ModelShape;
let gemmaPath: string;
let draftPath: string;
t.before(async () => {
  gemmaPath = await modelPath('gemma3-1b', 'Q4_K_M');
  draftPath = await modelPath('gemma3-draft', 'Q4_K_M');
  gemma = await readModelShape(gemmaPath);
  draftShape = await readModelShape(draftPath);
});

const settings: DeviceSettings = {
  gpuLayers: 27,
  slots: 4,
  ctxPerSlot: 2048,
  ubatch: 512,
  kvType: 'f16',
  flashAttn: true,
};
const vramSum = (items: readonly MemoryItem[]): number =>
  items.filter((i) => i.where === 'vram').reduce((a, i) => a + i.bytes, 0);
const draftOf = (over: Partial<DraftSettings> = {}): DraftSettings => ({
  model: draftShape,
  gpuLayers: -1,
  kvTypeK: 'f16',
  kvTypeV: 'f16',
  ...over,
});

t.test("the draft's share is what the draft model would take as a target of the same context", async (t) => {
  const draft = draftItems(draftOf(), settings);
  const alone = estimateDeviceMemory(draftShape, settings, { cudaOverheadBytes: 0 });
  const weights = (items: readonly MemoryItem[]) => vramSum(items.filter((i) => /^(draft )?weights/.test(i.name)));
  t.equal(weights(draft), weights(alone.items), 'every layer and the output matrix');
  const kv = draft.find((i) => i.name.startsWith('draft KV cache'));
  t.equal(kv?.bytes, alone.kv.bytes, 'the same cells over its own layers');
  // Its own shapes: 1 global and 5 sliding layers of 1 KV head × 128, the target's 4 streams of 2048 and 512 + ub.
  const cells = kvCells({ ...settings, unified: false }, draftShape.nSwa);
  t.equal(kv?.bytes, kvBytes(draftShape, cells, 'f16').bytes);
  t.equal(kv?.bytes, 4 * (2048 * 512 + 5 * 1024 * 512));
  t.equal(draft.find((i) => i.name.startsWith('draft compute buffer'))?.bytes, alone.compute.bytes);
  t.match(
    draft.filter((i) => i.where === 'host').map((i) => i.name),
    [/^draft input embeddings/, /^draft logits buffer/],
  );

  // Beside the target: the target's items unchanged, the draft's added.
  const without = estimateDeviceMemory(gemma, settings);
  const withDraft = estimateDeviceMemory(gemma, settings, { draft: draftOf() });
  t.same(
    withDraft.items.filter((i) => !i.name.startsWith('draft ')),
    without.items,
  );
  t.equal(withDraft.vramBytes, without.vramBytes + vramSum(draft));
});

t.test('-ngld and -ctkd/-ctvd: where its weights and KV go, and how big the KV is', async (t) => {
  const cpu = draftItems(draftOf({ gpuLayers: 0 }), settings);
  t.equal(vramSum(cpu), 0, 'no layer on the GPU: nothing of it in VRAM');
  t.ok(cpu.some((i) => i.where === 'host' && i.name.startsWith('draft weights and KV of layers 0-5')));
  const three = draftItems(draftOf({ gpuLayers: 3 }), settings);
  t.match(three.find((i) => i.name.startsWith('draft weights'))?.name, /3\/6 layers$/);

  const kvOf = (d: DraftSettings) => draftItems(d, settings).find((i) => i.name.startsWith('draft KV cache'))?.bytes;
  // K in q8_0 (34 bytes per 32 values), V in f16: per cell and layer 128 values of each.
  const cellsPerStream = 2048 + 5 * 1024;
  t.equal(kvOf(draftOf({ kvTypeK: 'q8_0' })), 4 * cellsPerStream * (kvRowBytes('q8_0', 128) + kvRowBytes('f16', 128)));
  t.equal(kvOf(draftOf({ kvTypeK: 'q8_0', kvTypeV: 'q8_0' })), 4 * cellsPerStream * 2 * kvRowBytes('q8_0', 128));
  t.match(
    draftItems(draftOf({ kvTypeK: 'q8_0' }), settings).find((i) => i.name.startsWith('draft KV'))?.formula,
    /K\+V q8_0\/f16/,
  );
});

t.test('the planner fits the target around the draft, and says what the draft takes', async (t) => {
  const alone = planFit({ model: gemma, vramBytes: GIB, computeCapability: '5.0' });
  const planned = planFit({ model: gemma, vramBytes: GIB, computeCapability: '5.0', draft: draftOf() });
  if (!alone.fits || !planned.fits) throw new Error('expected both to fit');
  t.ok(planned.vramTotal <= GIB);
  t.equal(vramSum(planned.table), planned.vramTotal, 'the table adds up');
  t.ok(planned.table.some((i) => i.name.startsWith('draft weights: gemma3-draft-random, 6/6 layers + output matrix')));
  t.ok(
    planned.settings.ctxPerSlot < alone.settings.ctxPerSlot || planned.settings.slots < alone.settings.slots,
    `less room for the target: ${planned.settings.slots} × ${planned.settings.ctxPerSlot} against ${alone.settings.slots} × ${alone.settings.ctxPerSlot}`,
  );
  t.same(planned.draft, {
    name: 'gemma3-draft-random',
    arch: 'gemma3',
    path: draftPath,
    nLayer: 6,
    fileBytes: draftShape.totalBytes,
  });
  t.match(
    planned.notes.join('\n'),
    /The draft model takes \d+\.\d\d MiB .*its KV mirrors the target's \d+ × \d+ cells/,
  );
  t.match(formatPlan(planned), /with the draft model gemma3-draft-random \(gemma3, 6 layers/);

  // A budget the target alone fits exactly (every layer, 1 slot at the floor), no longer with its draft.
  const floor = planFit({ model: gemma, vramBytes: 64 * MIB, computeCapability: '5.0', gpuLayers: -1 });
  if (floor.fits) throw new Error('64 MiB cannot fit');
  const refusal = planFit({
    model: gemma,
    vramBytes: floor.minimumBytes,
    computeCapability: '5.0',
    gpuLayers: -1,
    draft: draftOf(),
  });
  if (refusal.fits) throw new Error('the draft should not fit on top');
  t.match(refusal.message, /draft model \d+\.\d\d/);
  t.ok(refusal.minimumBytes > floor.minimumBytes);

  t.throws(
    () => planFit({ model: gemma, vramBytes: GIB, flashAttn: false, draft: draftOf({ kvTypeV: 'q8_0' }) }),
    /flash attention \(the draft model's V\)/,
  );
  const server = await planForServer(gemmaPath, GIB, { computeCapability: '5.0', draft: draftOf() });
  t.ok(server.plan.table.some((i) => i.name.startsWith('draft KV cache')));
});

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

t.test('npm run fit --model-draft: the draft rows, in text and JSON; its flags need it', async (t) => {
  const r = await run(['--model', gemmaPath, '--vram', '1GiB', '--cc', '5.0', '--model-draft', draftPath]);
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, /draft weights: gemma3-draft-random, 6\/6 layers \+ output matrix\s+\d+\.\d\d\s+-ngld all/);
  t.match(
    r.stdout,
    /draft KV cache: the target context mirrored\s+\d+\.\d\d\s+1 global × \d+ \+ 5 sliding × \d+ cells/,
  );
  const j = await run([
    ...['--model', gemmaPath, '--vram', '1GiB', '--model-draft', draftPath, '--ngl-draft', '2'],
    ...['--kv-draft-k', 'q8_0', '--json'],
  ]);
  t.equal(j.code, 0, j.stderr);
  const json = JSON.parse(j.stdout) as { draft: { name: string }; table: MemoryItem[] };
  t.equal(json.draft.name, 'gemma3-draft-random');
  t.ok(json.table.some((i) => i.name === 'draft weights: gemma3-draft-random, 2/6 layers'));
  t.ok(json.table.some((i) => i.name.startsWith('draft KV') && /q8_0\/f16/.test(i.formula)));
  for (const [argv, message] of [
    [['--ngl-draft', '2'], /--ngl-draft needs --model-draft/],
    [['--kv-draft-v', 'q8_0'], /--kv-draft-v needs --model-draft/],
    [
      ['--model-draft', draftPath, '--kv-draft-v', 'q8_0', '--no-flash-attn'],
      /--kv-draft-v: q8_0 needs flash attention/,
    ],
    [['--model-draft', '/nonexistent/draft.gguf'], /--model-draft: .*no such file/],
  ] as const) {
    const bad = await run(['--model', gemmaPath, '--vram', '1G', ...argv]);
    t.equal(bad.code, 2, argv.join(' '));
    t.match(bad.stderr, message);
  }
});
