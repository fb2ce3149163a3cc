// Pure functions that turn the build environment into CMake definitions. No I/O here: tested directly.

/** Oldest GPU architecture each CUDA major version can target. */
export function minCudaArch(cudaMajor) {
  if (cudaMajor >= 13) return 75;
  if (cudaMajor >= 12) return 50;
  if (cudaMajor >= 11) return 35;
  return 30;
}

/** "Cuda compilation tools, release 12.8, V12.8.93" -> { major: 12, minor: 8 } */
export function parseNvccVersion(text) {
  const m = /release (\d+)\.(\d+)/.exec(text ?? '');
  return m ? { major: Number(m[1]), minor: Number(m[2]) } : null;
}

/**
 * CMAKE_CUDA_ARCHITECTURES for a toolkit and an optional request.
 * Default: 50 (the 1 GB Maxwell target) where the toolkit still supports it, plus the architecture of a
 * GPU found on this machine; on CUDA 13+, which dropped Maxwell/Pascal/Volta, the detected GPU or 75.
 * @param {{ nvcc: {major:number, minor:number} | null, requested?: string, detected?: number }} o
 * @returns {string}
 */
export function cudaArchitectures({ nvcc, requested, detected }) {
  if (!nvcc) {
    throw new Error(
      'LLAMA_CUDA=1 but nvcc was not found: install the CUDA toolkit (12.x to build for sm_50 Maxwell), ' +
        'put its bin/ on PATH or set CUDACXX=/path/to/nvcc, or build without LLAMA_CUDA for the CPU backend.',
    );
  }
  const min = minCudaArch(nvcc.major);
  const version = `${nvcc.major}.${nvcc.minor}`;
  if (requested !== undefined && requested.trim() !== '') {
    const entries = requested.split(/[;,\s]+/).filter(Boolean);
    for (const entry of entries) {
      if (['native', 'all', 'all-major'].includes(entry)) continue;
      const m = /^(\d+)(-real|-virtual)?$/.exec(entry);
      if (!m) {
        throw new Error(
          `LLAMA_CUDA_ARCH: '${entry}' is not a CUDA architecture (examples: 50, 61, 86, 90-real, native)`,
        );
      }
      const arch = Number(m[1]);
      if (arch < min) {
        throw new Error(
          `LLAMA_CUDA_ARCH=${requested}: CUDA ${version} cannot build for sm_${arch} (its oldest target is sm_${min}). ` +
            `Either use CUDA 12.x for sm_50-sm_70 cards (e.g. CUDACXX=/usr/local/cuda-12.8/bin/nvcc), ` +
            `or choose LLAMA_CUDA_ARCH=${min} or newer (75 Turing, 80/86 Ampere, 89 Ada, 90 Hopper, native).`,
        );
      }
    }
    return entries.join(';');
  }
  const archs = [];
  if (min <= 50) archs.push(50);
  if (detected !== undefined && detected >= min && !archs.includes(detected)) archs.push(detected);
  if (archs.length === 0) archs.push(min);
  return archs.join(';');
}

const X86_FEATURES = [
  // [ggml option, cpuinfo flags that must all be present]
  ['GGML_SSE42', ['sse4_2']],
  ['GGML_AVX', ['avx']],
  ['GGML_AVX2', ['avx2']],
  ['GGML_BMI2', ['bmi2']],
  ['GGML_FMA', ['fma']],
  ['GGML_F16C', ['f16c']],
  ['GGML_AVX_VNNI', ['avx_vnni']],
  ['GGML_AVX512', ['avx512f', 'avx512bw', 'avx512dq', 'avx512vl', 'avx512cd']],
  ['GGML_AVX512_VBMI', ['avx512vbmi']],
  ['GGML_AVX512_VNNI', ['avx512_vnni']],
  ['GGML_AVX512_BF16', ['avx512_bf16']],
];
const FEATURE_NAMES = {
  sse42: 'GGML_SSE42',
  avx: 'GGML_AVX',
  avx2: 'GGML_AVX2',
  bmi2: 'GGML_BMI2',
  fma: 'GGML_FMA',
  f16c: 'GGML_F16C',
  avx_vnni: 'GGML_AVX_VNNI',
  avx512: 'GGML_AVX512',
  avx512_vbmi: 'GGML_AVX512_VBMI',
  avx512_vnni: 'GGML_AVX512_VNNI',
  avx512_bf16: 'GGML_AVX512_BF16',
};

/**
 * ggml CPU options. Never GGML_NATIVE: -march=native also enables AMX, which some VMs advertise but
 * trap (SIGILL on quantized matmuls). Instead each instruction set is enabled explicitly, from the CPU's
 * flags or from LLAMA_CPU_FEATURES ("avx2,fma,f16c", "none"). AMX stays off.
 * @param {{ arch: string, cpuFlags: Set<string>, override?: string }} o
 * @returns {Record<string, 'ON'|'OFF'>}
 */
export function cpuDefines({ arch, cpuFlags, override }) {
  const defs = { GGML_NATIVE: 'OFF', GGML_AMX_TILE: 'OFF', GGML_AMX_INT8: 'OFF', GGML_AMX_BF16: 'OFF' };
  if (arch !== 'x64' && arch !== 'ia32') return defs;
  let enabled;
  if (override !== undefined && override.trim() !== '') {
    const names = override
      .split(/[,\s]+/)
      .filter(Boolean)
      .map((s) => s.toLowerCase());
    enabled = new Set();
    for (const name of names) {
      if (name === 'none') continue;
      const opt = FEATURE_NAMES[name];
      if (!opt) {
        throw new Error(
          `LLAMA_CPU_FEATURES: unknown feature '${name}' (known: ${Object.keys(FEATURE_NAMES).join(', ')}, none)`,
        );
      }
      enabled.add(opt);
    }
  } else {
    enabled = new Set(X86_FEATURES.filter(([, need]) => need.every((f) => cpuFlags.has(f))).map(([opt]) => opt));
  }
  for (const [opt] of X86_FEATURES) defs[opt] = enabled.has(opt) ? 'ON' : 'OFF';
  return defs;
}

/** The flags line of /proc/cpuinfo as a set. */
export function parseCpuFlags(cpuinfo) {
  const line = /^flags\s*:\s*(.*)$/m.exec(cpuinfo ?? '');
  return new Set(line ? line[1].trim().split(/\s+/) : []);
}
