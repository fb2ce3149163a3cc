// The VRAM planner: picks n_gpu_layers, slots, context per slot, KV cache type and ubatch so that the
// model fits a VRAM budget, and explains its arithmetic item by item (memory-model.ts has the formulas).
//
// Preference, from most to least important: every layer and the output matrix on the GPU; the requested
// (or default) number of slots; the context (ubatch shrinks to 128 first, then the context down to a floor;
// on CC < 6.1 ubatch is 8, MMVQ's limit, so that no batch falls back to cuBLAS with dequantized weights);
// an f16 KV cache (q8_0 next, which needs flash attention); then fewer slots; then fewer layers on the GPU
// (the output matrix goes first, then layers from the front). Any value the caller fixes is kept as is.

import type {
  DeviceSettings,
  DraftSettings,
  MemoryEstimate,
  MemoryItem,
  ModelShape,
  PlannedKvType,
} from './memory-model.ts';
import {
  CC_DP4A,
  CTX_PAD,
  cublasFallback,
  DEFAULT_CUDA_OVERHEAD_BYTES,
  estimateDeviceMemory,
  MMVQ_MAX_BATCH,
  mib,
  readModelShape,
} from './memory-model.ts';
import { ccText, describe } from './words.ts';

export const DEFAULT_SLOTS = 4;
export const DEFAULT_CTX_PER_SLOT = 4096;
export const DEFAULT_CTX_FLOOR = 512;
export const DEFAULT_UBATCH = 512;
/** Ubatch does not go below this before the context has reached its floor. */
export const COMFORTABLE_UBATCH = 128;
const UBATCH_STEPS = [512, 256, 128, 64, 32, 16, 8];

export interface PlanFitOptions {
  model: ModelShape;
  /** The VRAM the plan may use, in bytes (the card's memory, or what is free on it). */
  vramBytes: number;
  /** Fixed values: the planner keeps them and plans the rest. */
  slots?: number;
  ctxPerSlot?: number;
  kvType?: PlannedKvType;
  ubatch?: number;
  /** llama.cpp n_gpu_layers; -1 or n_layer + 1 means everything, the output matrix included. */
  gpuLayers?: number;
  /** e.g. 5.0, '5.0', 61 or 610; unknown means a card with MMQ (CC >= 6.1). */
  computeCapability?: number | string;
  /** Default true (llama.cpp's auto enables it where supported); q8_0 KV needs it. */
  flashAttn?: boolean;
  unified?: boolean;
  swaFull?: boolean;
  /** llama.cpp n_batch (default 512); ubatch never exceeds it. */
  batch?: number;
  cudaOverheadBytes?: number;
  defaultSlots?: number;
  defaultCtxPerSlot?: number;
  ctxFloor?: number;
  /** A plan with fewer layers on the GPU is a refusal (default 1). */
  minGpuLayers?: number;
  /** A draft model for speculative decoding: its weights and its context count on the same card, as fixed costs. */
  draft?: DraftSettings;
}

export interface FitSettings {
  /** n_gpu_layers to pass: n_layer + 1 when the output matrix is on the GPU too. */
  gpuLayers: number;
  outputOnGpu: boolean;
  slots: number;
  ctxPerSlot: number;
  /** Total context (llama-server's -c): ctxPerSlot * slots. */
  ctxTotal: number;
  kvType: PlannedKvType;
  ubatch: number;
  flashAttn: boolean;
}

interface PlannedModel {
  name: string;
  arch: string;
  path: string;
  nLayer: number;
  fileBytes: number;
}

interface PlanCommon {
  model: PlannedModel;
  /** The draft model counted beside it (-md). */
  draft?: PlannedModel;
  vramBudget: number;
  computeCapability?: number;
  notes: string[];
}

export interface FitPlan extends PlanCommon {
  fits: true;
  settings: FitSettings;
  estimate: MemoryEstimate;
  table: MemoryItem[];
  vramTotal: number;
  headroom: number;
  /** llama-server style flags for the settings. */
  flags: string[];
}

export interface FitRefusal extends PlanCommon {
  fits: false;
  message: string;
  /** The smallest budget with which some plan fits (at least minGpuLayers layers on the GPU). */
  minimumBytes: number;
  /** The smallest budget that keeps every layer and the output matrix on the GPU. */
  minimumAllLayersBytes: number;
  /** The smallest plan, itemized, to show what does not fit. */
  smallest: { settings: FitSettings; estimate: MemoryEstimate };
}

export type FitResult = FitPlan | FitRefusal;

/** The planner could not fit the model; `result` has the itemized smallest plan. */
export class FitError extends Error {
  readonly code = 'VRAM_BUDGET_TOO_SMALL';
  readonly minimumBytes: number;
  readonly result: FitRefusal;
  constructor(result: FitRefusal) {
    super(result.message);
    this.name = 'FitError';
    this.minimumBytes = result.minimumBytes;
    this.result = result;
  }
}

/** 5.0, '5.0', '5', 50 and 500 all mean CC 5.0; returns major * 100 + minor * 10. */
export function parseComputeCapability(value: number | string): number {
  const text = String(value).trim();
  const m = /^(\d+)(?:\.(\d))?$/.exec(text);
  if (!m) throw new RangeError(`compute capability '${text}' is not like 5.0 or 8.6`);
  const major = Number(m[1]);
  if (m[2] !== undefined) return major * 100 + Number(m[2]) * 10;
  if (major < 10) return major * 100;
  if (major < 100) return major * 10;
  return major;
}

function positiveInt(name: string, v: number | undefined): void {
  if (v !== undefined && (!Number.isInteger(v) || v < 1))
    throw new RangeError(`${name} must be an integer >= 1 (got ${v})`);
}

export function planFit(o: PlanFitOptions): FitResult {
  const { model } = o;
  const n = model.nLayer;
  positiveInt('slots', o.slots);
  positiveInt('ctxPerSlot', o.ctxPerSlot);
  positiveInt('ubatch', o.ubatch);
  if (!Number.isFinite(o.vramBytes) || o.vramBytes <= 0) throw new RangeError('vramBytes must be > 0');
  const flashAttn = o.flashAttn ?? true;
  if (o.kvType === 'q8_0' && !flashAttn) throw new RangeError('a q8_0 KV cache needs flash attention');
  if (o.draft?.kvTypeV === 'q8_0' && !flashAttn)
    throw new RangeError("a q8_0 KV cache needs flash attention (the draft model's V)");
  const cc = o.computeCapability !== undefined ? parseComputeCapability(o.computeCapability) : undefined;
  const noMmq = cublasFallback(cc);
  const batch = o.batch ?? Math.max(DEFAULT_UBATCH, o.ubatch ?? 0);
  const overhead = o.cudaOverheadBytes ?? DEFAULT_CUDA_OVERHEAD_BYTES;

  const all = n + 1;
  const fixedLayers =
    o.gpuLayers !== undefined ? (o.gpuLayers < 0 || o.gpuLayers > all ? all : o.gpuLayers) : undefined;
  const minLayers = Math.min(o.minGpuLayers ?? 1, n);
  const layerCandidates = fixedLayers !== undefined ? [fixedLayers] : range(all, minLayers);

  const defaultSlots = Math.min(o.defaultSlots ?? DEFAULT_SLOTS, noMmq ? MMVQ_MAX_BATCH : Infinity);
  const slotCandidates = o.slots !== undefined ? [o.slots] : range(defaultSlots, 1);
  const kvCandidates: PlannedKvType[] = o.kvType !== undefined ? [o.kvType] : flashAttn ? ['f16', 'q8_0'] : ['f16'];

  const target = o.ctxPerSlot ?? Math.min(o.defaultCtxPerSlot ?? DEFAULT_CTX_PER_SLOT, model.nCtxTrain);
  const floor = Math.min(o.ctxFloor ?? DEFAULT_CTX_FLOOR, target);
  const ctxSteps = ctxCandidates(floor, target);

  // On cards without MMQ every matmul over 8 rows goes through cuBLAS: keep ubatch at 8 (MMVQ's limit).
  const ubatchesFor = (slots: number): number[] => {
    if (o.ubatch !== undefined) return [o.ubatch];
    const top = noMmq ? MMVQ_MAX_BATCH : Math.min(DEFAULT_UBATCH, batch);
    const steps = UBATCH_STEPS.filter((u) => u <= top && u >= Math.min(slots, top));
    return steps.length > 0 ? steps : [top];
  };

  const settingsFor = (
    gpuLayers: number,
    slots: number,
    kvType: PlannedKvType,
    ctxPerSlot: number,
    ubatch: number,
  ): DeviceSettings => ({
    gpuLayers,
    slots,
    ctxPerSlot,
    ubatch,
    batch: Math.max(batch, ubatch),
    kvType,
    flashAttn,
    unified: o.unified ?? false,
    swaFull: o.swaFull ?? false,
  });
  const estimate = (s: DeviceSettings): MemoryEstimate =>
    estimateDeviceMemory(model, s, {
      ...(cc !== undefined ? { cc } : {}),
      cudaOverheadBytes: overhead,
      ...(o.draft !== undefined ? { draft: o.draft } : {}),
    });
  const fits = (s: DeviceSettings): MemoryEstimate | undefined => {
    const e = estimate(s);
    return e.vramBytes <= o.vramBytes ? e : undefined;
  };

  const planned = (m: ModelShape): PlannedModel => ({
    name: m.name,
    arch: m.arch,
    path: m.path,
    nLayer: m.nLayer,
    fileBytes: m.totalBytes,
  });
  const common = (notes: string[]): PlanCommon => ({
    model: planned(model),
    ...(o.draft !== undefined ? { draft: planned(o.draft.model) } : {}),
    vramBudget: o.vramBytes,
    ...(cc !== undefined ? { computeCapability: cc } : {}),
    notes,
  });

  for (const gpuLayers of layerCandidates) {
    for (const slots of slotCandidates) {
      for (const kvType of kvCandidates) {
        const found = bestCtxAndUbatch(ubatchesFor(slots), ctxSteps, o.ctxPerSlot !== undefined, (ctx, u) =>
          fits(settingsFor(gpuLayers, slots, kvType, ctx, u)),
        );
        if (found === undefined) continue;
        const { ctx, ubatch, estimate: e } = found;
        const settings: FitSettings = {
          gpuLayers: Math.min(gpuLayers, all),
          outputOnGpu: e.outputOnGpu,
          slots,
          ctxPerSlot: ctx,
          ctxTotal: ctx * slots,
          kvType,
          ubatch,
          flashAttn,
        };
        return {
          fits: true,
          ...common(planNotes(model, settings, e, cc, { target, floor, requestedSlots: o.slots ?? defaultSlots })),
          settings,
          estimate: e,
          table: e.items,
          vramTotal: e.vramBytes,
          headroom: o.vramBytes - e.vramBytes,
          flags: flagsFor(settings, batch),
        };
      }
    }
  }

  // Nothing fits: find the smallest plans to say how much would be needed.
  const smallestWith = (gpuLayers: number): { settings: DeviceSettings; estimate: MemoryEstimate } => {
    let best: { settings: DeviceSettings; estimate: MemoryEstimate } | undefined;
    const slots = o.slots ?? 1;
    for (const kvType of kvCandidates) {
      for (const u of ubatchesFor(slots)) {
        const s = settingsFor(gpuLayers, slots, kvType, o.ctxPerSlot ?? floor, u);
        const e = estimate(s);
        if (best === undefined || e.vramBytes < best.estimate.vramBytes) best = { settings: s, estimate: e };
      }
    }
    if (best === undefined) throw new Error('unreachable: no candidates');
    return best;
  };
  const smallest = smallestWith(fixedLayers ?? minLayers);
  const smallestAll = smallestWith(fixedLayers ?? all);
  const s = smallest.settings;
  const settings: FitSettings = {
    gpuLayers: s.gpuLayers,
    outputOnGpu: smallest.estimate.outputOnGpu,
    slots: s.slots,
    ctxPerSlot: s.ctxPerSlot,
    ctxTotal: s.ctxPerSlot * s.slots,
    kvType: s.kvType,
    ubatch: s.ubatch,
    flashAttn,
  };
  const fixed = [
    o.slots !== undefined ? `${o.slots} slots` : '',
    o.ctxPerSlot !== undefined ? `ctx ${o.ctxPerSlot}` : '',
    o.kvType !== undefined ? `KV ${o.kvType}` : '',
    o.ubatch !== undefined ? `ubatch ${o.ubatch}` : '',
    fixedLayers !== undefined ? `-ngl ${fixedLayers}` : '',
  ].filter(Boolean);
  const parts = summarize(smallest.estimate);
  const message =
    `${model.name} does not fit in ${mib(o.vramBytes)} MiB of VRAM${fixed.length > 0 ? ` with ${fixed.join(', ')} fixed` : ''}: ` +
    `the smallest plan (${describe(settings, n)}) needs ${mib(smallest.estimate.vramBytes)} MiB (${parts}). ` +
    `Smallest budget that fits: ${mib(smallest.estimate.vramBytes)} MiB` +
    (smallestAll.estimate.vramBytes !== smallest.estimate.vramBytes
      ? `; with every layer and the output matrix on the GPU: ${mib(smallestAll.estimate.vramBytes)} MiB.`
      : '.');
  return {
    fits: false,
    ...common(
      planNotes(model, settings, smallest.estimate, cc, { target, floor, requestedSlots: o.slots ?? defaultSlots }),
    ),
    message,
    minimumBytes: smallest.estimate.vramBytes,
    minimumAllLayersBytes: smallestAll.estimate.vramBytes,
    smallest: { settings, estimate: smallest.estimate },
  };
}

function range(from: number, to: number): number[] {
  const out: number[] = [];
  for (let i = from; i >= to; i--) out.push(i);
  return out;
}

/** Context sizes from the target down to the floor, in llama.cpp's 256-cell steps (descending). */
function ctxCandidates(floor: number, target: number): number[] {
  const values = new Set<number>([target]);
  for (let c = Math.floor(target / CTX_PAD) * CTX_PAD; c >= floor; c -= CTX_PAD) if (c > 0) values.add(c);
  values.add(floor);
  return [...values].filter((c) => c >= floor && c <= target).sort((a, b) => b - a);
}

/**
 * The ubatch/context pair for one (layers, slots, KV type): the target context at the largest ubatch down
 * to 128; else the largest context at ubatch 128 (or the smallest comfortable one); only when even the
 * floor does not fit there, smaller ubatches. Memory grows with both, so each search is monotonic.
 */
function bestCtxAndUbatch(
  ubatches: readonly number[],
  ctxSteps: readonly number[],
  ctxFixed: boolean,
  fits: (ctx: number, ubatch: number) => MemoryEstimate | undefined,
): { ctx: number; ubatch: number; estimate: MemoryEstimate } | undefined {
  const target = ctxSteps[0];
  if (target === undefined) return undefined;
  const comfortable = ubatches.filter((u) => u >= COMFORTABLE_UBATCH);
  const tier1 = comfortable.length > 0 ? comfortable : ubatches.slice(0, 1);
  for (const u of tier1) {
    const e = fits(target, u);
    if (e) return { ctx: target, ubatch: u, estimate: e };
  }
  if (ctxFixed) {
    for (const u of ubatches.filter((u) => !tier1.includes(u))) {
      const e = fits(target, u);
      if (e) return { ctx: target, ubatch: u, estimate: e };
    }
    return undefined;
  }
  const smallestComfortable = tier1[tier1.length - 1];
  const rest = ubatches.filter((u) => !tier1.includes(u));
  for (const u of smallestComfortable !== undefined ? [smallestComfortable, ...rest] : rest) {
    const found = largestFitting(ctxSteps, (ctx) => fits(ctx, u));
    if (found) return { ctx: found.value, ubatch: u, estimate: found.estimate };
  }
  return undefined;
}

/** Binary search over descending candidates for the first (largest) that fits. */
function largestFitting(
  desc: readonly number[],
  fits: (v: number) => MemoryEstimate | undefined,
): { value: number; estimate: MemoryEstimate } | undefined {
  let lo = 0;
  let hi = desc.length - 1;
  let best: { value: number; estimate: MemoryEstimate } | undefined;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    const v = desc[mid];
    if (v === undefined) break;
    const e = fits(v);
    if (e) {
      best = { value: v, estimate: e };
      hi = mid - 1;
    } else {
      lo = mid + 1;
    }
  }
  return best;
}

function summarize(e: MemoryEstimate): string {
  const vram = e.items.filter((i) => i.where === 'vram');
  const sum = (re: RegExp): number => vram.filter((i) => re.test(i.name)).reduce((a, i) => a + i.bytes, 0);
  const parts: Array<[string, number]> = [
    ['weights', sum(/^weights/)],
    ['CUDA overhead', sum(/^CUDA context/)],
    ['KV', sum(/^KV cache/)],
    ['compute', sum(/^compute buffer/)],
    ['cuBLAS/pool/offload', sum(/^(cuBLAS|CUDA pool|op offload)/)],
    ['draft model', sum(/^draft /)],
  ];
  return parts
    .filter(([, b]) => b > 0)
    .map(([name, b]) => `${name} ${mib(b)}`)
    .join(' + ');
}

function flagsFor(s: FitSettings, batch: number): string[] {
  const flags = [
    '-ngl',
    String(s.gpuLayers),
    '-c',
    String(s.ctxTotal),
    '-np',
    String(s.slots),
    '-ub',
    String(s.ubatch),
  ];
  if (s.ubatch > batch) flags.push('-b', String(s.ubatch));
  flags.push('-ctk', s.kvType, '-ctv', s.kvType, '-fa', s.flashAttn ? 'on' : 'off');
  return flags;
}

function planNotes(
  model: ModelShape,
  s: FitSettings,
  e: MemoryEstimate,
  cc: number | undefined,
  ctx: { target: number; floor: number; requestedSlots: number },
): string[] {
  const notes: string[] = [];
  if (cc !== undefined && cublasFallback(cc)) {
    const outputF32 = model.output.dims.reduce((a, b) => a * b, 1) * 4;
    const base =
      `CC ${ccText(cc)} has no MMQ (it needs dp4a, CC ${ccText(CC_DP4A)}): a matmul over more than ${MMVQ_MAX_BATCH} rows falls back to ` +
      `cuBLAS SGEMM after dequantizing the whole weight matrix to F32 (${mib(outputF32)} MiB for the output matrix)`;
    if (s.ubatch <= MMVQ_MAX_BATCH) {
      notes.push(
        `${base}; ubatch ${s.ubatch} keeps every matmul at ${MMVQ_MAX_BATCH} rows or fewer (MMVQ), so it never happens.`,
      );
      if (s.slots > MMVQ_MAX_BATCH) {
        notes.push(
          `${s.slots} slots > ${MMVQ_MAX_BATCH}: a decode step over all slots runs as ${Math.ceil(s.slots / s.ubatch)} ubatches, each reading every weight once.`,
        );
      }
    } else {
      notes.push(`${base}; with ubatch ${s.ubatch} it happens, and the table counts the dequantized copies.`);
    }
  }
  if (!s.outputOnGpu)
    notes.push(
      `The output matrix (${mib(model.output.bytes)} MiB) stays on the CPU: the CPU computes the logits every step.`,
    );
  if (s.gpuLayers < model.nLayer)
    notes.push(`Only ${s.gpuLayers} of ${model.nLayer} layers are on the GPU; the rest (and their KV) run on the CPU.`);
  if (s.kvType === 'q8_0')
    notes.push('A q8_0 KV cache needs flash attention (-fa on); it takes 34 bytes per 32 values instead of 64.');
  if (s.slots < ctx.requestedSlots) notes.push(`Slots reduced from ${ctx.requestedSlots} to ${s.slots} to fit.`);
  if (s.ctxPerSlot < ctx.target)
    notes.push(`Context per slot reduced from ${ctx.target} to ${s.ctxPerSlot} to fit (floor ${ctx.floor}).`);
  if (model.nSwa > 0) {
    const sliding = model.layers.filter((l) => l.sliding).length;
    notes.push(
      `${sliding} of ${model.nLayer} layers use a ${model.nSwa}-token sliding window: their KV holds ${e.cells.swa} cells per slot ` +
        `(min(ctx, ${model.nSwa} + ubatch) padded to 256), only the ${model.nLayer - sliding} global layers hold the full context.`,
    );
  }
  notes.push(
    `The logits buffer (${mib(model.nVocab * s.slots * 4)} MiB, one ${mib(model.nVocab * 4)} MiB row per slot) is in pinned host memory, not VRAM.`,
  );
  const draft = e.items.filter((i) => i.where === 'vram' && i.name.startsWith('draft '));
  if (draft.length > 0)
    notes.push(
      `The draft model takes ${mib(draft.reduce((a, i) => a + i.bytes, 0))} MiB (its layers and KV types, -ngld -ctkd -ctvd, are kept as given); its KV mirrors the target's ${s.slots} × ${s.ctxPerSlot} cells, so a longer context costs it too.`,
    );
  return notes;
}

/** What the server may fix for its plan: the planner's options without the model and the budget. */
export type ServerRequest = Omit<PlanFitOptions, 'model' | 'vramBytes'>;

export interface ServerPlan {
  /** n_gpu_layers (n_layer + 1 = everything, the output matrix included). */
  gpuLayers: number;
  ctxPerSlot: number;
  slots: number;
  kvType: PlannedKvType;
  ubatch: number;
  flashAttn: 'on' | 'off';
  plan: FitPlan;
}

/**
 * For the server's --vram-budget: reads the GGUF header and plans, keeping whatever the user set.
 * Throws FitError (message names the smallest budget) when nothing fits; ModelFileError for a bad file.
 */
export async function planForServer(
  path: string,
  budgetBytes: number,
  requested: ServerRequest = {},
): Promise<ServerPlan> {
  const model = await readModelShape(path);
  const result = planFit({ model, vramBytes: budgetBytes, ...requested });
  if (!result.fits) throw new FitError(result);
  const s = result.settings;
  return {
    gpuLayers: s.gpuLayers,
    ctxPerSlot: s.ctxPerSlot,
    slots: s.slots,
    kvType: s.kvType,
    ubatch: s.ubatch,
    flashAttn: s.flashAttn ? 'on' : 'off',
    plan: result,
  };
}
