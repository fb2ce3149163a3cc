// Process-wide addon calls: what the build and the machine offer, llama.cpp's log level, quantization.
import { awaitNative, callNative, loadAddon, type NativeSystemInfo } from './native.ts';

/** Quantizes a GGUF file with llama_model_quantize (e.g. type 'Q4_K_M'), off the main thread. */
export function quantize(
  input: string,
  output: string,
  type: string,
  options: { threads?: number } = {},
): Promise<void> {
  return awaitNative(() => loadAddon().quantize(input, output, type, options));
}

export function systemInfo(): NativeSystemInfo {
  return callNative(() => loadAddon().systemInfo());
}

export function setLogLevel(level: 'none' | 'error' | 'warn' | 'info' | 'debug'): void {
  callNative(() => loadAddon().setLogLevel(level));
}
