// Public surface of the engine: the typed wrapper over the native addon.
import { awaitNative, callNative, loadAddon, type NativeSystemInfo } from './native.ts';

export { type ChatMessage, Model, type ModelInfo, type ModelLoadOptions } from './model.ts';
export { loadAddon } from './native.ts';

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
export {
  BatchDecoder,
  type DecoderOptions,
  type EndReason,
  type SamplingOptions,
  type SlotEvent,
  type SlotInfo,
  type StartOptions,
  type StepResult,
} from './batch-decoder.ts';
export {
  type ChatDelta,
  type ChatMessageOut,
  ChatParser,
  type ChatPrompt,
  type ChatRenderRequest,
  type ChatTemplateInfo,
  type ChatTemplateOptions,
  ChatTemplates,
  checkGrammar,
  GRAMMAR_KIND,
  type GrammarSpec,
  jsonSchemaToGrammar,
  type ReasoningFormat,
} from './chat.ts';
export { type Device, listDevices, parseComputeCapabilities } from './devices.ts';
export { type MemoryReport, parseMemoryLog, probeMemory, totalBytes } from './memory-probe.ts';
