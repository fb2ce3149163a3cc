import t from 'tap';
import { assignGpus, gpuIds } from '../../src/replicas/gpus.ts';

t.test('GPU ids: CUDA_VISIBLE_DEVICES when set, else one per GPU found', async (t) => {
  const never = () => {
    throw new Error('not asked when CUDA_VISIBLE_DEVICES is set');
  };
  t.same(gpuIds({ CUDA_VISIBLE_DEVICES: '2, 3' }, never), ['2', '3']);
  t.same(gpuIds({ CUDA_VISIBLE_DEVICES: 'GPU-5f1c,GPU-77aa' }, never), ['GPU-5f1c', 'GPU-77aa'], 'UUIDs too');
  t.same(gpuIds({ CUDA_VISIBLE_DEVICES: '' }, never), [], 'empty hides every GPU');
  t.same(gpuIds({ CUDA_VISIBLE_DEVICES: '-1' }, never), []);
  t.same(
    gpuIds({}, () => 3),
    ['0', '1', '2'],
  );
  t.same(
    gpuIds({}, () => 0),
    [],
  );
});

t.test('replicas go round-robin over the GPUs; none without GPUs', async (t) => {
  t.same(assignGpus(2, ['0', '1']), ['0', '1']);
  t.same(assignGpus(5, ['4', '7']), ['4', '7', '4', '7', '4']);
  t.same(assignGpus(3, []), [null, null, null]);
});
