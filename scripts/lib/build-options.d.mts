export function minCudaArch(cudaMajor: number): number;
export function parseNvccVersion(text: string | undefined): { major: number; minor: number } | null;
export function cudaArchitectures(o: {
  nvcc: { major: number; minor: number } | null;
  requested?: string | undefined;
  detected?: number | undefined;
}): string;
export function cpuDefines(o: {
  arch: string;
  cpuFlags: Set<string>;
  override?: string | undefined;
}): Record<string, 'ON' | 'OFF'>;
export function parseCpuFlags(cpuinfo: string | undefined): Set<string>;
