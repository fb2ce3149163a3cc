// Builds llama.cpp's own tools (llama-batched-bench, llama-server) from the same vendored tree with
// the same CPU flags as our addon, into build-tools/, so side-by-side figures compare like with like.
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { cpuDefines, parseCpuFlags } from '../../scripts/lib/build-options.mjs';
import { llamaCppDir, projectRoot } from '../paths.ts';

export type LlamaTool = 'llama-batched-bench' | 'llama-server';

export const toolsBuildDir = join(projectRoot, 'build-tools');

/** LLAMA_TOOLS_BIN_DIR points at prebuilt tools (scripts/gpu-check.sh builds them beside the addon). */
export function toolPath(tool: LlamaTool): string {
  return join(process.env.LLAMA_TOOLS_BIN_DIR ?? join(toolsBuildDir, 'bin'), tool);
}

function run(cmd: string, args: string[], log: (line: string) => void): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, CCACHE_BASEDIR: projectRoot, CCACHE_NOHASHDIR: 'true' },
    });
    let tail = '';
    const onData = (chunk: Buffer): void => {
      tail = (tail + chunk.toString()).slice(-8000);
      for (const line of chunk.toString().split('\n')) if (line.trim()) log(line);
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.on('error', (err) => reject(new Error(`${cmd} could not start: ${err.message}`)));
    child.on('close', (code) =>
      code === 0 ? resolve() : reject(new Error(`${cmd} ${args.join(' ')} failed (${code}):\n${tail}`)),
    );
  });
}

/** The tool's path, building it first when it is missing. */
export async function ensureLlamaTool(tool: LlamaTool, log: (line: string) => void = () => {}): Promise<string> {
  const bin = toolPath(tool);
  if (existsSync(bin)) return bin;
  if (process.env.LLAMA_TOOLS_BIN_DIR)
    throw new Error(`${bin} does not exist (LLAMA_TOOLS_BIN_DIR is set, so it is not built here)`);
  const cpuinfo = existsSync('/proc/cpuinfo') ? readFileSync('/proc/cpuinfo', 'utf8') : '';
  const defs: Record<string, string> = {
    CMAKE_BUILD_TYPE: 'Release',
    ...cpuDefines({ arch: process.arch, cpuFlags: parseCpuFlags(cpuinfo), override: process.env.LLAMA_CPU_FEATURES }),
    // Same objects as the addon's build where possible (ccache then reuses them).
    BUILD_SHARED_LIBS: 'OFF',
    CMAKE_POSITION_INDEPENDENT_CODE: 'ON',
    LLAMA_ALL_WARNINGS: 'OFF',
    LLAMA_BUILD_TESTS: 'OFF',
    LLAMA_BUILD_EXAMPLES: 'OFF',
    LLAMA_BUILD_TOOLS: 'ON',
    LLAMA_BUILD_SERVER: 'ON',
    LLAMA_BUILD_UI: 'OFF',
    LLAMA_USE_PREBUILT_UI: 'OFF',
    LLAMA_OPENSSL: 'OFF',
    GGML_CUDA: process.env.LLAMA_CUDA === '1' ? 'ON' : 'OFF',
  };
  if (process.env.LLAMA_CUDA === '1' && process.env.LLAMA_CUDA_ARCH)
    defs.CMAKE_CUDA_ARCHITECTURES = process.env.LLAMA_CUDA_ARCH;
  const configure = ['-S', llamaCppDir(), '-B', toolsBuildDir, ...Object.entries(defs).map(([k, v]) => `-D${k}=${v}`)];
  if (existsSync('/usr/bin/ninja') || existsSync('/usr/local/bin/ninja')) configure.push('-G', 'Ninja');
  const ccache = ['/usr/bin/ccache', '/usr/local/bin/ccache'].find((p) => existsSync(p));
  if (ccache) configure.push(`-DCMAKE_C_COMPILER_LAUNCHER=${ccache}`, `-DCMAKE_CXX_COMPILER_LAUNCHER=${ccache}`);
  log(`building ${tool} from ${llamaCppDir()} into ${toolsBuildDir}`);
  await run('cmake', configure, log);
  await run('cmake', ['--build', toolsBuildDir, '--target', tool, '-j', String(availableParallelism())], log);
  if (!existsSync(bin)) throw new Error(`the build finished but ${bin} is missing`);
  return bin;
}
