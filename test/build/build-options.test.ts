import t from 'tap';
import {
  cpuDefines,
  cudaArchitectures,
  minCudaArch,
  parseCpuFlags,
  parseNvccVersion,
} from '../../scripts/lib/build-options.mjs';

t.test('nvcc version parsing', async (t) => {
  t.same(parseNvccVersion('Cuda compilation tools, release 12.8, V12.8.93'), { major: 12, minor: 8 });
  t.same(
    parseNvccVersion('Build cuda_13.0.r13.0/compiler.36424714_0\nCuda compilation tools, release 13.0, V13.0.48'),
    {
      major: 13,
      minor: 0,
    },
  );
  t.equal(parseNvccVersion('garbage'), null);
  t.equal(parseNvccVersion(undefined), null);
});

t.test('oldest architecture per toolkit', async (t) => {
  t.equal(minCudaArch(13), 75);
  t.equal(minCudaArch(12), 50);
  t.equal(minCudaArch(11), 35);
});

t.test('CUDA architectures default to sm_50 where the toolkit can build it', async (t) => {
  t.equal(cudaArchitectures({ nvcc: { major: 12, minor: 8 } }), '50');
  t.equal(cudaArchitectures({ nvcc: { major: 11, minor: 8 } }), '50');
  t.equal(cudaArchitectures({ nvcc: { major: 12, minor: 4 }, detected: 90 }), '50;90', 'adds the GPU on this machine');
  t.equal(cudaArchitectures({ nvcc: { major: 12, minor: 4 }, detected: 50 }), '50', 'no duplicate');
});

t.test('CUDA 13 cannot build Maxwell: defaults move up, explicit requests fail clearly', async (t) => {
  t.equal(cudaArchitectures({ nvcc: { major: 13, minor: 0 } }), '75');
  t.equal(cudaArchitectures({ nvcc: { major: 13, minor: 0 }, detected: 90 }), '90');
  t.equal(
    cudaArchitectures({ nvcc: { major: 13, minor: 0 }, detected: 61 }),
    '75',
    'an unsupported local GPU is not picked',
  );
  t.throws(() => cudaArchitectures({ nvcc: { major: 13, minor: 0 }, requested: '50' }), {
    message: /CUDA 13\.0 cannot build for sm_50.*CUDA 12\.x.*LLAMA_CUDA_ARCH=75 or newer/s,
  });
  t.throws(() => cudaArchitectures({ nvcc: { major: 13, minor: 0 }, requested: '75;61' }), { message: /sm_61/ });
});

t.test('explicit architecture lists', async (t) => {
  t.equal(cudaArchitectures({ nvcc: { major: 12, minor: 8 }, requested: '50,61 86-real' }), '50;61;86-real');
  t.equal(cudaArchitectures({ nvcc: { major: 13, minor: 0 }, requested: 'native' }), 'native');
  t.throws(() => cudaArchitectures({ nvcc: { major: 12, minor: 8 }, requested: 'sm50' }), {
    message: /'sm50' is not a CUDA architecture/,
  });
});

t.test('missing nvcc names the fix', async (t) => {
  t.throws(() => cudaArchitectures({ nvcc: null }), { message: /nvcc was not found.*CUDACXX/s });
});

t.test('CPU options: explicit instruction sets, never native, never AMX', async (t) => {
  const flags = parseCpuFlags(
    'processor: 0\nflags\t\t: fpu sse4_2 avx avx2 fma f16c bmi2 avx512f avx512bw avx512dq avx512vl avx512cd amx_tile amx_int8\n',
  );
  const defs = cpuDefines({ arch: 'x64', cpuFlags: flags });
  t.equal(defs.GGML_NATIVE, 'OFF');
  t.equal(defs.GGML_AVX2, 'ON');
  t.equal(defs.GGML_FMA, 'ON');
  t.equal(defs.GGML_F16C, 'ON');
  t.equal(defs.GGML_AVX512, 'ON');
  t.equal(defs.GGML_AVX512_VNNI, 'OFF', 'not in the flags');
  t.equal(defs.GGML_AMX_TILE, 'OFF');
  t.equal(defs.GGML_AMX_INT8, 'OFF');
  t.equal(defs.GGML_AMX_BF16, 'OFF');
});

t.test('AVX512 needs all its parts', async (t) => {
  const defs = cpuDefines({ arch: 'x64', cpuFlags: new Set(['avx', 'avx2', 'avx512f']) });
  t.equal(defs.GGML_AVX512, 'OFF');
  t.equal(defs.GGML_AVX2, 'ON');
});

t.test('LLAMA_CPU_FEATURES overrides detection', async (t) => {
  const all = new Set(['avx', 'avx2', 'fma', 'f16c', 'avx512f', 'avx512bw', 'avx512dq', 'avx512vl', 'avx512cd']);
  const defs = cpuDefines({ arch: 'x64', cpuFlags: all, override: 'avx,avx2,fma,f16c' });
  t.equal(defs.GGML_AVX2, 'ON');
  t.equal(defs.GGML_AVX512, 'OFF');
  const none = cpuDefines({ arch: 'x64', cpuFlags: all, override: 'none' });
  t.equal(none.GGML_AVX, 'OFF');
  t.throws(() => cpuDefines({ arch: 'x64', cpuFlags: all, override: 'avx9' }), { message: /unknown feature 'avx9'/ });
});

t.test('non-x86 builds leave instruction sets to ggml', async (t) => {
  const defs = cpuDefines({ arch: 'arm64', cpuFlags: new Set() });
  t.same(defs, { GGML_NATIVE: 'OFF', GGML_AMX_TILE: 'OFF', GGML_AMX_INT8: 'OFF', GGML_AMX_BF16: 'OFF' });
});
