// The plan's arithmetic as text: the table `npm run fit` prints and the server logs under --vram-budget.
import { mib } from './memory-model.ts';
import type { FitResult } from './planner.ts';
import { ccText, describe } from './words.ts';

/** The plan's arithmetic as an aligned text table (item, MiB, formula), then the settings as flags. */
export function formatPlan(result: FitResult): string {
  const e = result.fits ? result.estimate : result.smallest.estimate;
  const lines: string[] = [];
  const cc = result.computeCapability !== undefined ? `, CC ${ccText(result.computeCapability)}` : '';
  lines.push(
    `${result.model.name} (${result.model.arch}, ${result.model.nLayer} layers, ${mib(result.model.fileBytes)} MiB of tensors) in ${mib(result.vramBudget)} MiB of VRAM${cc}`,
  );
  if (result.draft !== undefined)
    lines.push(
      `with the draft model ${result.draft.name} (${result.draft.arch}, ${result.draft.nLayer} layers, ${mib(result.draft.fileBytes)} MiB of tensors)`,
    );
  if (!result.fits)
    lines.push(`DOES NOT FIT. Smallest plan: ${describe(result.smallest.settings, result.model.nLayer)}`);
  lines.push('');
  const vram = e.items.filter((i) => i.where === 'vram');
  const hostItems = e.items.filter((i) => i.where === 'host');
  const width = Math.max(...e.items.map((i) => i.name.length), 28);
  const row = (name: string, bytes: number | string, formula: string): string =>
    `${name.padEnd(width)}  ${(typeof bytes === 'number' ? mib(bytes) : bytes).padStart(9)}  ${formula}`.trimEnd();
  lines.push(row('VRAM item', 'MiB', 'formula'));
  for (const i of vram) lines.push(row(i.name, i.bytes, i.formula));
  lines.push(row('total', e.vramBytes, ''));
  lines.push(row('budget', result.vramBudget, ''));
  lines.push(
    row(result.vramBudget >= e.vramBytes ? 'headroom' : 'SHORT BY', Math.abs(result.vramBudget - e.vramBytes), ''),
  );
  lines.push('');
  lines.push(row('host memory (not VRAM)', 'MiB', ''));
  for (const i of hostItems) lines.push(row(i.name, i.bytes, i.formula));
  lines.push('');
  if (result.fits) {
    const s = result.settings;
    lines.push(`settings: ${describe(s, result.model.nLayer)}, flash attention ${s.flashAttn ? 'on' : 'off'}`);
    lines.push(`flags: ${result.flags.join(' ')}`);
  } else {
    lines.push(result.message);
  }
  if (result.notes.length > 0) {
    lines.push('');
    for (const note of result.notes) lines.push(`- ${note}`);
  }
  return `${lines.join('\n')}\n`;
}
