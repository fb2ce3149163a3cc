// The compute devices llama.cpp sees, with the CUDA compute capability read from its init report.
import { systemInfo } from './system.ts';

export interface Device {
  name: string;
  description: string;
  type: 'cpu' | 'gpu' | 'igpu' | 'accel';
  memoryFreeBytes: number;
  memoryTotalBytes: number;
  /** e.g. "5.0" for a GeForce 940M; undefined when the backend did not report one. */
  computeCapability?: string;
}

/** "  Device 0: NVIDIA GeForce 940M, compute capability 5.0, VMM: yes, VRAM: 1024 MiB" -> { 0: '5.0' } */
export function parseComputeCapabilities(log: string): Map<number, string> {
  const out = new Map<number, string>();
  for (const m of log.matchAll(/Device (\d+): .*?, compute capability (\d+\.\d+)/g)) out.set(Number(m[1]), m[2] ?? '');
  return out;
}

export function listDevices(): Device[] {
  const info = systemInfo();
  const cc = parseComputeCapabilities(info.backendLog);
  let gpuIndex = 0;
  return info.devices.map((d) => {
    const device: Device = { ...d };
    if (d.type === 'gpu') {
      const c = cc.get(gpuIndex++);
      if (c !== undefined) device.computeCapability = c;
    }
    return device;
  });
}
