// Drives a BatchDecoder until the given slots finish, collecting each slot's tokens and text.
import type { BatchDecoder } from '../../src/engine/index.ts';
import type { EndReason } from '../../src/scheduler/decoder.ts';

export interface SlotOutput {
  tokens: number[];
  text: string;
  end: EndReason | null;
  error?: string;
}

export async function runToEnd(
  decoder: BatchDecoder,
  slots: number[],
  tokenBudget?: number,
): Promise<Map<number, SlotOutput>> {
  const out = new Map<number, SlotOutput>(slots.map((s) => [s, { tokens: [], text: '', end: null }]));
  const open = new Set(slots);
  for (let guard = 0; open.size > 0; guard++) {
    if (guard > 100_000) throw new Error('decoder made no progress');
    const r = await decoder.step(tokenBudget);
    if (r.batchTokens === 0 && r.events.length === 0)
      throw new Error(`slots ${[...open]} are open but the decoder is idle`);
    for (const e of r.events) {
      const o = out.get(e.slot);
      if (!o) continue;
      if (e.token !== null) o.tokens.push(e.token);
      o.text += e.text;
      if (e.end !== null) {
        o.end = e.end;
        if (e.error !== undefined) o.error = e.error;
        open.delete(e.slot);
      }
    }
  }
  return out;
}

/** A prompt of n ordinary token ids, deterministic for a seed (no control tokens). */
export function syntheticPrompt(n: number, seed: number, vocab = 32000): number[] {
  let x = seed * 2654435761 + 1;
  const out = [1];
  while (out.length < n) {
    x = (x * 1103515245 + 12345) >>> 0;
    out.push(300 + (x % (vocab - 300)));
  }
  return out;
}
