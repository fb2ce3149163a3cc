// Plan settings in words, for the planner's messages and the printed report.

/** The settings a description names (FitSettings has them). */
export interface DescribedSettings {
  gpuLayers: number;
  slots: number;
  ctxPerSlot: number;
  kvType: string;
  ubatch: number;
}

export function describe(s: DescribedSettings, nLayer: number): string {
  const layers = s.gpuLayers > nLayer ? `all ${nLayer} layers + output` : `${s.gpuLayers}/${nLayer} layers`;
  return `${layers}, ${s.slots} slot${s.slots === 1 ? '' : 's'} × ctx ${s.ctxPerSlot}, KV ${s.kvType}, ubatch ${s.ubatch}`;
}

export function ccText(cc: number): string {
  return `${Math.floor(cc / 100)}.${Math.floor((cc % 100) / 10)}`;
}
