import t from 'tap';
import { listDevices, parseComputeCapabilities } from '../../src/engine/index.ts';
import { loadModel } from '../helpers/models.ts';

t.test('compute capabilities from the CUDA backend report', async (t) => {
  const log = [
    'ggml_cuda_init: found 2 CUDA devices:',
    '  Device 0: NVIDIA GeForce 940M, compute capability 5.0, VMM: yes, VRAM: 1024 MiB',
    '  Device 1: NVIDIA H100 80GB HBM3, compute capability 9.0, VMM: yes, VRAM: 81089 MiB',
  ].join('\n');
  t.same(
    [...parseComputeCapabilities(log)],
    [
      [0, '5.0'],
      [1, '9.0'],
    ],
  );
  t.same([...parseComputeCapabilities('')], []);
});

t.test('devices of this machine: the CPU, with its memory', async (t) => {
  const devices = listDevices();
  const cpu = devices.find((d) => d.type === 'cpu');
  t.ok(cpu, 'a CPU device');
  t.ok((cpu?.memoryTotalBytes ?? 0) > 0);
});

t.test('a CPU load reports no offloaded layers', async (t) => {
  const model = await loadModel('tiny');
  t.teardown(() => model.dispose());
  t.ok(model.info.offloadedLayers <= 0, `offloaded ${model.info.offloadedLayers}`);
});
