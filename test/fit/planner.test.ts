import type { Test } from 'tap';
import t from 'tap';
import type { ModelShape } from '../../src/fit/memory-model.ts';
import { estimateDeviceMemory, GIB, MIB, mib, readModelShape } from '../../src/fit/memory-model.ts';
import type { FitPlan, FitRefusal, FitResult } from '../../src/fit/planner.ts';
import { FitError, parseComputeCapability, planFit, planForServer } from '../../src/fit/planner.ts';
import { formatPlan } from '../../src/fit/report.ts';
import { modelPath } from '../helpers/models.ts';

function fitted(t: Test, r: FitResult): FitPlan {
  if (!r.fits) {
    t.fail(`expected a plan, got: ${r.message}`);
    throw new Error(r.message);
  }
  t.ok(r.vramTotal <= r.vramBudget, 'within the budget');
  t.equal(r.headroom, r.vramBudget - r.vramTotal);
  t.equal(
    r.table.filter((i) => i.where === 'vram').reduce((a, i) => a + i.bytes, 0),
    r.vramTotal,
    'the table adds up',
  );
  return r;
}

function refused(t: Test, r: FitResult): FitRefusal {
  if (r.fits) {
    t.fail(`expected a refusal, got ${r.flags.join(' ')}`);
    throw new Error('fits');
  }
  return r;
}

let gemma: ModelShape;
t.before(async () => {
  gemma = await readModelShape(await modelPath('gemma3-1b', 'Q4_K_M'));
});

t.test('gemma3-1b Q4_K_M in 1 GiB on CC 5.0: every layer, a modest context, at most 8 rows per batch', async (t) => {
  const r = fitted(t, planFit({ model: gemma, vramBytes: GIB, computeCapability: '5.0' }));
  const s = r.settings;
  t.equal(s.gpuLayers, 27, 'all 26 layers and the output layer');
  t.ok(s.outputOnGpu);
  t.ok(s.slots <= 8 && s.slots === 4, 'the default 4 slots, at most 8');
  t.ok(s.ubatch <= 8, 'ubatch at most 8: MMVQ, no cuBLAS fallback');
  t.ok(s.ctxPerSlot >= 512 && s.ctxPerSlot <= 4096 && s.ctxPerSlot % 256 === 0, `ctx ${s.ctxPerSlot}`);
  t.equal(s.kvType, 'f16');
  t.equal(s.ctxTotal, s.ctxPerSlot * s.slots);
  t.same(r.flags.slice(0, 8), ['-ngl', '27', '-c', String(s.ctxTotal), '-np', '4', '-ub', String(s.ubatch)]);
  t.notOk(
    r.table.some((i) => i.name.startsWith('cuBLAS')),
    'no dequantized copies',
  );
  t.match(r.notes.join('\n'), /CC 5\.0 has no MMQ.*cuBLAS SGEMM.*1152\.00 MiB for the output matrix/);
  const text = formatPlan(r);
  t.match(text, /weights: layers 0-25 \(26\/26\)\s+456\.5\d/);
  t.match(text, /weights: output matrix \(token_embd\.weight\)\s+306\.00/);
  t.match(text, /flags: -ngl 27 -c \d+ -np 4 -ub 8 -ctk f16 -ctv f16 -fa on/);
});

t.test('without a compute capability (a card with MMQ) ubatch stays large', async (t) => {
  const r = fitted(t, planFit({ model: gemma, vramBytes: GIB }));
  t.equal(r.settings.gpuLayers, 27);
  t.ok(r.settings.ubatch >= 128, `ubatch ${r.settings.ubatch}`);
  t.ok(r.table.some((i) => i.name.startsWith('CUDA pool: q8_1')));
});

t.test('preference: context shrinks first, then q8_0, then slots, then the output matrix, then layers', async (t) => {
  const cc = 500;
  const est = (gpuLayers: number, slots: number, kvType: 'f16' | 'q8_0', ctxPerSlot: number): number =>
    estimateDeviceMemory(gemma, { gpuLayers, slots, ctxPerSlot, ubatch: 8, kvType, flashAttn: true }, { cc }).vramBytes;

  // Enough for 4 slots × 1024 in f16: the context shrinks, the KV stays f16.
  let r = fitted(t, planFit({ model: gemma, vramBytes: est(27, 4, 'f16', 1024), computeCapability: cc }));
  t.same([r.settings.gpuLayers, r.settings.slots, r.settings.kvType, r.settings.ctxPerSlot], [27, 4, 'f16', 1024]);

  // Not enough for 4 × 512 in f16, enough in q8_0: q8_0 before fewer slots.
  const f16Floor = est(27, 4, 'f16', 512);
  const q8Floor = est(27, 4, 'q8_0', 512);
  t.ok(q8Floor < f16Floor);
  r = fitted(t, planFit({ model: gemma, vramBytes: f16Floor - 1, computeCapability: cc }));
  t.same([r.settings.gpuLayers, r.settings.slots, r.settings.kvType], [27, 4, 'q8_0']);
  t.match(r.notes.join('\n'), /q8_0 KV cache needs flash attention/);

  // Below that: fewer slots, still every layer.
  r = fitted(t, planFit({ model: gemma, vramBytes: q8Floor - 1, computeCapability: cc }));
  t.equal(r.settings.gpuLayers, 27);
  t.ok(r.settings.slots < 4);
  t.match(r.notes.join('\n'), /Slots reduced from 4/);

  // The smallest all-layer plan, and one byte less: the output matrix leaves the GPU first.
  const tiny = refused(t, planFit({ model: gemma, vramBytes: 64 * MIB, computeCapability: cc }));
  r = fitted(t, planFit({ model: gemma, vramBytes: tiny.minimumAllLayersBytes, computeCapability: cc }));
  t.same([r.settings.gpuLayers, r.settings.slots, r.settings.ctxPerSlot], [27, 1, 512]);
  r = fitted(t, planFit({ model: gemma, vramBytes: tiny.minimumAllLayersBytes - 1, computeCapability: cc }));
  t.equal(r.settings.gpuLayers, 26, 'every layer, the output matrix on the CPU');
  t.notOk(r.settings.outputOnGpu);
  t.equal(r.settings.slots, 4, 'with the output matrix gone, the default slots come back');
  t.match(r.notes.join('\n'), /output matrix \(306\.00 MiB\) stays on the CPU/);

  r = fitted(t, planFit({ model: gemma, vramBytes: 300 * MIB, computeCapability: cc }));
  t.ok(r.settings.gpuLayers > 1 && r.settings.gpuLayers < 26, `${r.settings.gpuLayers} layers`);
});

t.test('a budget too small: a refusal that names what does not fit and the smallest budget that would', async (t) => {
  const r = refused(t, planFit({ model: gemma, vramBytes: 100 * MIB, computeCapability: '5.0' }));
  t.ok(r.minimumBytes > 100 * MIB);
  t.ok(r.minimumAllLayersBytes > 762 * MIB + 128 * MIB, 'all layers need the weights and the CUDA allowance');
  t.match(r.message, /does not fit in 100\.00 MiB/);
  t.match(r.message, new RegExp(`Smallest budget that fits: ${mib(r.minimumBytes)} MiB`));
  t.match(r.message, new RegExp(`every layer and the output matrix on the GPU: ${mib(r.minimumAllLayersBytes)} MiB`));
  t.match(r.message, /CUDA overhead 128\.00/);
  t.match(formatPlan(r), /SHORT BY/);
  // The minimum is exact: it fits, one byte less does not.
  fitted(t, planFit({ model: gemma, vramBytes: r.minimumBytes, computeCapability: '5.0' }));
  refused(t, planFit({ model: gemma, vramBytes: r.minimumBytes - 1, computeCapability: '5.0' }));

  const fixed = refused(
    t,
    planFit({ model: gemma, vramBytes: GIB, computeCapability: '5.0', gpuLayers: -1, ctxPerSlot: 32768, slots: 8 }),
  );
  t.match(fixed.message, /with 8 slots, ctx 32768, -ngl 27 fixed/);
  t.equal(fixed.smallest.settings.ctxPerSlot, 32768);
});

t.test('fixed values are kept', async (t) => {
  const r = fitted(
    t,
    planFit({
      model: gemma,
      vramBytes: GIB,
      computeCapability: '5.0',
      slots: 2,
      ctxPerSlot: 1000,
      kvType: 'q8_0',
      ubatch: 4,
    }),
  );
  t.same([r.settings.slots, r.settings.ctxPerSlot, r.settings.kvType, r.settings.ubatch], [2, 1000, 'q8_0', 4]);
  t.equal(r.estimate.cells.base, 1024, 'llama.cpp pads the slot to 1024 cells');

  const n = fitted(t, planFit({ model: gemma, vramBytes: GIB, gpuLayers: 10 }));
  t.equal(n.settings.gpuLayers, 10);

  // 16 rows per batch on CC 5.0: the table counts the F32 copy of the output matrix, which no 1 GiB card holds.
  const big = refused(
    t,
    planFit({ model: gemma, vramBytes: GIB, computeCapability: '5.0', slots: 16, ubatch: 16, gpuLayers: -1 }),
  );
  const item = big.smallest.estimate.items.find((i) => i.name.startsWith('cuBLAS fallback: output matrix'));
  t.equal(item?.bytes, 1152 * 262_144 * 4, '1.125 GiB');
  t.match(big.notes.join('\n'), /with ubatch 16 it happens/);
  // Without the output matrix on the GPU only the layer matrices are dequantized (30 MiB at most): that fits.
  const partial = fitted(t, planFit({ model: gemma, vramBytes: GIB, computeCapability: '5.0', slots: 16, ubatch: 16 }));
  t.equal(partial.settings.gpuLayers, 26);
  t.equal(
    partial.table.find((i) => i.name.startsWith('cuBLAS fallback: largest layer matrix'))?.bytes,
    1152 * 6912 * 4,
  );
  const roomy = fitted(
    t,
    planFit({ model: gemma, vramBytes: 4 * GIB, computeCapability: '5.0', slots: 16, ubatch: 16 }),
  );
  t.equal(roomy.settings.gpuLayers, 27);
  t.ok(roomy.table.some((i) => i.name.startsWith('cuBLAS fallback: output matrix')));
  // More than 8 slots with ubatch 8: no fallback, several ubatches per step.
  const many = fitted(t, planFit({ model: gemma, vramBytes: 2 * GIB, computeCapability: '5.0', slots: 12 }));
  t.equal(many.settings.ubatch, 8);
  t.notOk(many.table.some((i) => i.name.startsWith('cuBLAS')));
  t.match(many.notes.join('\n'), /12 slots > 8: a decode step over all slots runs as 2 ubatches/);

  const noFa = fitted(t, planFit({ model: gemma, vramBytes: 900 * MIB, computeCapability: '5.0', flashAttn: false }));
  t.equal(noFa.settings.kvType, 'f16', 'no q8_0 without flash attention');
  t.throws(() => planFit({ model: gemma, vramBytes: GIB, kvType: 'q8_0', flashAttn: false }), RangeError);
  t.throws(() => planFit({ model: gemma, vramBytes: GIB, slots: 0 }), RangeError);
});

t.test('tiny presets fit small budgets whole', async (t) => {
  const tiny = await readModelShape(await modelPath('tiny', 'F16'));
  let r = fitted(t, planFit({ model: tiny, vramBytes: 256 * MIB }));
  t.same(
    [r.settings.gpuLayers, r.settings.slots, r.settings.ctxPerSlot, r.settings.ubatch, r.settings.kvType],
    [3, 4, 2048, 512, 'f16'],
    'context capped at n_ctx_train 2048',
  );
  r = fitted(t, planFit({ model: tiny, vramBytes: 256 * MIB, computeCapability: 5 }));
  t.equal(r.settings.ubatch, 8);
  refused(t, planFit({ model: tiny, vramBytes: 100 * MIB }));
  r = fitted(t, planFit({ model: tiny, vramBytes: 64 * MIB, cudaOverheadBytes: 0 }));
  t.equal(r.settings.gpuLayers, 3);

  const g = await readModelShape(await modelPath('tiny-gemma3', 'F16'));
  r = fitted(t, planFit({ model: g, vramBytes: 256 * MIB }));
  t.same([r.settings.gpuLayers, r.settings.slots, r.settings.ctxPerSlot], [7, 4, 4096]);
  t.match(r.notes.join('\n'), /5 of 6 layers use a 64-token sliding window/);
});

t.test('planForServer: the settings the server needs, or a FitError', async (t) => {
  const path = await modelPath('gemma3-1b', 'Q4_K_M');
  const p = await planForServer(path, GIB, { computeCapability: '5.0', slots: 2 });
  t.equal(p.gpuLayers, 27);
  t.equal(p.slots, 2);
  t.equal(p.ubatch, 8);
  t.equal(p.kvType, 'f16');
  t.equal(p.flashAttn, 'on');
  t.ok(p.ctxPerSlot >= 4096 || p.plan.notes.some((n) => n.includes('Context per slot reduced')));
  t.match(formatPlan(p.plan), /VRAM item\s+MiB\s+formula/);
  const err = await planForServer(path, 200 * MIB, { gpuLayers: -1 }).catch((e: unknown) => e);
  t.type(err, FitError);
  t.equal((err as FitError).code, 'VRAM_BUDGET_TOO_SMALL');
  t.ok((err as FitError).minimumBytes > 200 * MIB);
  t.match((err as FitError).message, /Smallest budget that fits/);
});

t.test('compute capability spellings', async (t) => {
  for (const [value, cc] of [
    [5, 500],
    [5.0, 500],
    ['5.0', 500],
    ['6.1', 610],
    [6.1, 610],
    [86, 860],
    ['75', 750],
    [610, 610],
  ] as const) {
    t.equal(parseComputeCapability(value), cc, String(value));
  }
  t.throws(() => parseComputeCapability('five'), RangeError);
});
