// The memory model's formulas against DESIGN.md's facts about Gemma-3-1B Q4_K_M (the generated model has the
// real model's shapes and llama.cpp's quantization), and llama.cpp's sizing rules on small cases.

import type { Test } from 'tap';
import t from 'tap';
import {
  CTX_PAD,
  computeBuffer,
  cudaTensorBytes,
  estimateDeviceMemory,
  kvBytes,
  kvBytesPerTokenLayer,
  kvCells,
  kvRowBytes,
  MIB,
  modelShapeFromGguf,
  outputBufferBytes,
  readModelShape,
} from '../../src/fit/memory-model.ts';
import { readGguf } from '../../src/gguf/reader.ts';
import type { GgufFile } from '../../src/gguf/types.ts';
import { GgmlType, GgufValue, GgufValueType } from '../../src/gguf/types.ts';
import { modelPath } from '../helpers/models.ts';

const near = (t: Test, actual: number, expected: number, tolerance: number, what: string): void => {
  t.ok(Math.abs(actual - expected) <= tolerance, `${what}: ${actual.toFixed(3)} within ${tolerance} of ${expected}`);
};

t.test('gemma3-1b Q4_K_M: the facts of DESIGN.md "Memory on a 1 GB card"', async (t) => {
  const m = await readModelShape(await modelPath('gemma3-1b', 'Q4_K_M'));
  t.equal(m.arch, 'gemma3');
  t.equal(m.nLayer, 26);
  t.equal(m.nVocab, 262_144);
  t.equal(m.nSwa, 512);

  const layerBytes = m.layers.reduce((a, l) => a + l.bytes, 0);
  near(t, layerBytes / MIB, 456.5, 1, 'weights of the layers (MiB)');
  near(t, m.layers.reduce((a, l) => a + l.cudaBytes, 0) / MIB, 456.5, 1, 'the layers as CUDA buffers hold them (MiB)');
  t.ok(m.outputTied, 'tied output: token_embd.weight is the output matrix');
  t.equal(m.output.name, 'token_embd.weight');
  near(t, m.output.bytes / MIB, 306, 1, 'output matrix (MiB)');
  t.equal(m.output.bytes, (1152 / 32) * 34 * 262_144, 'Q8_0: 34 bytes per 32 values');
  t.equal(
    m.totalBytes,
    layerBytes + m.output.bytes + m.outputNormBytes,
    'every tensor is a layer, the embedding/output matrix or the output norm',
  );

  for (const l of m.layers)
    t.equal(kvBytesPerTokenLayer(l, 'f16'), 1024, `layer ${l.index}: 1024 bytes per token in f16`);
  t.equal(kvBytesPerTokenLayer(m.layers[0]!, 'q8_0'), 544, 'q8_0: (256 + 256) / 32 * 34');
  const global = m.layers.filter((l) => !l.sliding).map((l) => l.index);
  t.same(global, [5, 11, 17, 23], 'every 6th layer is global');
  t.equal(m.layers.filter((l) => l.sliding).length, 22, '22 sliding layers');

  // Sliding layers hold at most 512 + n_ubatch cells per sequence (padded to 256 by llama.cpp), global ones the context.
  for (const ubatch of [8, 128, 256, 512]) {
    for (const ctx of [512, 1024, 4096]) {
      const cells = kvCells({ slots: 4, ctxPerSlot: ctx, ubatch }, m.nSwa);
      t.equal(cells.base, ctx, `global layers: ${ctx} cells per slot`);
      t.equal(
        cells.swa,
        Math.min(ctx, Math.ceil((512 + ubatch) / CTX_PAD) * CTX_PAD),
        `ctx ${ctx}, ubatch ${ubatch}: sliding cells`,
      );
      t.ok(cells.swa <= ctx && cells.swa < 512 + ubatch + CTX_PAD);
    }
  }
  const cells = kvCells({ slots: 1, ctxPerSlot: 4096, ubatch: 512 }, m.nSwa);
  const kv = kvBytes(m, cells, 'f16');
  t.equal(kv.global.bytes, 4 * 4096 * 1024, '4 global layers × 4096 cells × 1 KiB');
  t.equal(kv.sliding.bytes, 22 * 1024 * 1024, '22 sliding layers × (512 + 512) cells × 1 KiB');

  t.equal(outputBufferBytes(m, 1), MIB, 'logits: 262144 floats = 1 MiB per output row');
  t.equal(outputBufferBytes(m, 4), 4 * MIB);
  // At decode-sized batches the compute buffer is the logits: about 1 MiB per output row.
  for (const slots of [1, 4, 8]) {
    const c = computeBuffer(m, {
      cells: kvCells({ slots, ctxPerSlot: 1024, ubatch: 8 }, m.nSwa),
      slots,
      flashAttn: true,
      kvType: 'f16',
      cuda: true,
    });
    t.equal(c.peak, 'logits');
    near(t, c.bytes / MIB, slots, 0.15, `${slots} slots: compute buffer (MiB)`);
  }
});

t.test(
  'KV cells follow llama.cpp: n_ctx padded to 256, per-sequence padding, unified and swa-full caches',
  async (t) => {
    t.same(kvCells({ slots: 3, ctxPerSlot: 1000, ubatch: 100 }, 0), {
      nCtx: 3072,
      nCtxSeq: 1024,
      nUbatch: 100,
      streams: 3,
      base: 1024,
      swa: 0,
    });
    t.same(
      kvCells({ slots: 1, ctxPerSlot: 100, ubatch: 512 }, 0),
      { nCtx: 256, nCtxSeq: 256, nUbatch: 256, streams: 1, base: 256, swa: 0 },
      'n_batch is capped by n_ctx',
    );
    t.same(
      kvCells({ slots: 4, ctxPerSlot: 1024, ubatch: 512, unified: true }, 512),
      { nCtx: 4096, nCtxSeq: 4096, nUbatch: 512, streams: 1, base: 4096, swa: 2560 },
      'unified: n_swa × n_seq + n_ubatch',
    );
    t.equal(
      kvCells({ slots: 4, ctxPerSlot: 4096, ubatch: 8, swaFull: true }, 512).swa,
      4096,
      'swa-full: as many cells as the global layers',
    );
    t.equal(kvRowBytes('f16', 256), 512);
    t.equal(kvRowBytes('q8_0', 256), 272);
    t.equal(kvRowBytes('q8_0', 128), 136);
  },
);

t.test('tiny presets: untied output, no sliding window; tiny-gemma3 slides 5 of 6 layers', async (t) => {
  const tiny = await readModelShape(await modelPath('tiny', 'F16'));
  t.equal(tiny.outputTied, false);
  t.equal(tiny.output.name, 'output.weight');
  t.equal(tiny.nSwa, 0);
  t.ok(tiny.layers.every((l) => !l.sliding));
  t.equal(kvBytesPerTokenLayer(tiny.layers[0]!, 'f16'), 2 * 128 * 2, 'n_embd_k_gqa = 64 × 2 heads');
  t.equal(tiny.layers[0]!.nFf, 768);

  const g = await readModelShape(await modelPath('tiny-gemma3', 'F16'));
  t.equal(g.outputTied, true);
  t.equal(g.nSwa, 64);
  t.same(
    g.layers.map((l) => l.sliding),
    [true, true, true, true, true, false],
  );
});

t.test('CUDA buffers: 128-byte alignment, quantized rows padded to 512 values', async (t) => {
  t.equal(cudaTensorBytes({ type: GgmlType.F32, dims: [1152], nbytes: 4608 }), 4608);
  t.equal(cudaTensorBytes({ type: GgmlType.F32, dims: [100], nbytes: 400 }), 512);
  // 1152 % 512 = 128: one extra 384-value Q8_0 row tail (12 blocks × 34 bytes), then aligned.
  t.equal(
    cudaTensorBytes({ type: GgmlType.Q8_0, dims: [1152, 2], nbytes: 2 * 36 * 34 }),
    Math.ceil((2 * 36 * 34 + 12 * 34) / 128) * 128,
  );
});

t.test('sliding-window layout from the metadata: the period key, a per-layer array, or the arch default', async (t) => {
  const base = await readGguf(await modelPath('tiny-gemma3', 'F16'));
  const withKey = (key: string, value: GgufValue | undefined): GgufFile => {
    const metadata = new Map(base.metadata);
    if (value === undefined) metadata.delete(key);
    else metadata.set(key, value);
    return { ...base, metadata };
  };
  const pattern = 'gemma3.attention.sliding_window_pattern';
  t.same(
    modelShapeFromGguf(withKey(pattern, undefined)).layers.map((l) => l.sliding),
    [true, true, true, true, true, false],
    'gemma3 default period 6',
  );
  t.same(
    modelShapeFromGguf(withKey(pattern, GgufValue.uint32(2))).layers.map((l) => l.sliding),
    [true, false, true, false, true, false],
  );
  t.same(
    modelShapeFromGguf(
      withKey(pattern, GgufValue.array(GgufValueType.BOOL, [true, false, false, true, true, true])),
    ).layers.map((l) => l.sliding),
    [true, false, false, true, true, true],
  );
  const noWindow = modelShapeFromGguf(withKey('gemma3.attention.sliding_window', undefined));
  t.equal(noWindow.nSwa, 0);
  t.ok(noWindow.layers.every((l) => !l.sliding));
});

t.test('estimateDeviceMemory places layers like n_gpu_layers does', async (t) => {
  const m = await readModelShape(await modelPath('gemma3-1b', 'Q4_K_M'));
  const settings = { slots: 1, ctxPerSlot: 1024, ubatch: 8, kvType: 'f16' as const, flashAttn: true };
  const all = estimateDeviceMemory(m, { ...settings, gpuLayers: 27 });
  t.equal(all.gpuLayerCount, 26);
  t.ok(all.outputOnGpu);
  t.same(estimateDeviceMemory(m, { ...settings, gpuLayers: -1 }).vramBytes, all.vramBytes, '-1 means everything');
  const noOutput = estimateDeviceMemory(m, { ...settings, gpuLayers: 26 });
  t.notOk(noOutput.outputOnGpu);
  near(
    t,
    (all.vramBytes - noOutput.vramBytes) / MIB,
    306.5,
    0.5,
    'the output matrix (306 MiB) and the logits peak leave the GPU',
  );
  const four = estimateDeviceMemory(m, { ...settings, gpuLayers: 4 });
  t.equal(four.gpuLayerCount, 4);
  t.match(four.items.map((i) => i.name).join('\n'), /layers 22-25 \(4\/26\)/, 'the last layers go to the GPU');
  t.equal(
    four.items.find((i) => i.name.startsWith('KV cache: 1 global'))?.bytes,
    1024 * 1024,
    'only layer 23 of the global ones is on the GPU',
  );
  t.ok(four.items.some((i) => i.where === 'host' && i.name.startsWith('weights: layers 0-21')));
});
