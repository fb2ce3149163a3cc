// Which GPU each replica gets: one per GPU, round-robin when there are more replicas than GPUs, through
// CUDA_VISIBLE_DEVICES (each replica then sees its GPU as device 0). The ids are the machine's own: those
// CUDA_VISIBLE_DEVICES already lists when it is set, else 0..n-1 for the n GPUs llama.cpp finds.
import { listDevices } from '../engine/index.ts';

/** GPU ids to spread replicas over. `countGpus` is asked only when CUDA_VISIBLE_DEVICES is unset. */
export function gpuIds(
  env: Readonly<Record<string, string | undefined>>,
  countGpus: () => number = () => listDevices().filter((d) => d.type === 'gpu').length,
): string[] {
  const visible = env.CUDA_VISIBLE_DEVICES;
  if (visible !== undefined) {
    // "" and "-1" hide every GPU (CUDA's own reading).
    return visible
      .split(',')
      .map((s) => s.trim())
      .filter((s) => s !== '' && s !== '-1');
  }
  return Array.from({ length: countGpus() }, (_, i) => String(i));
}

/** CUDA_VISIBLE_DEVICES for each of `replicas`, or null for all when there is no GPU. */
export function assignGpus(replicas: number, ids: readonly string[]): Array<string | null> {
  return Array.from({ length: replicas }, (_, i) => (ids.length === 0 ? null : (ids[i % ids.length] ?? null)));
}
