// Bytes and time of a slot's KV saved to host memory and restored (BatchDecoder.saveState/restoreState), per
// prompt length, on a generated model: `npx tsx scripts/bench-slot-state.ts [preset]` (default tiny).
import { BatchDecoder, Model } from '../src/engine/index.ts';
import { isPresetName } from '../src/gguf/presets.ts';
import { ensureModel } from '../src/tools/model-cache.ts';

const preset = process.argv[2] ?? 'tiny';
if (!isPresetName(preset)) throw new Error(`unknown preset ${preset}`);
const model = await Model.load(await ensureModel({ preset, quant: 'F16', seed: 1 }));
const median = (a: number[]) => [...a].sort((x, y) => x - y)[a.length >> 1] ?? 0;
for (const n of [100, 1000, 3000]) {
  const d = new BatchDecoder(model, { slots: 2, ctxPerSlot: 4096 });
  d.start(
    0,
    Array.from({ length: n }, (_, i) => 300 + ((i * 7919) % 20000)),
    { maxTokens: 1 },
  );
  while ((await d.step()).events.every((e) => e.end === null));
  const save: number[] = [];
  const restore: number[] = [];
  let bytes = 0;
  let tokens = 0;
  for (let k = 0; k < 10; k++) {
    let t0 = performance.now();
    const saved = await d.saveState(0);
    save.push(performance.now() - t0);
    bytes = saved.state.byteLength;
    tokens = saved.tokens.length;
    t0 = performance.now();
    await d.restoreState(1, saved);
    restore.push(performance.now() - t0);
  }
  console.log(
    `${preset} ${tokens} tokens: ${bytes} bytes (${Math.round(bytes / tokens)} B/token), ` +
      `save ${median(save).toFixed(2)} ms, restore ${median(restore).toFixed(2)} ms (median of 10)`,
  );
  d.dispose();
}
model.dispose();
