// Public surface of the engine: the typed wrapper over the native addon.

export {
  BatchDecoder,
  type DecoderOptions,
  type SlotInfo,
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
  chatTemplateMarkers,
  checkGrammar,
  GRAMMAR_KIND,
  type GrammarSpec,
  jsonSchemaToGrammar,
  type ReasoningFormat,
} from './chat.ts';
export { type Device, listDevices, parseComputeCapabilities } from './devices.ts';
export {
  Embedder,
  type EmbedderInfo,
  type EmbedderOptions,
  type Embedding,
  type EmbedOutput,
  POOLINGS,
  type Pooling,
} from './embedder.ts';
export { type MemoryReport, parseMemoryLog, probeMemory, totalBytes } from './memory-probe.ts';
export { type ChatMessage, Model, type ModelInfo, type ModelLoadOptions } from './model.ts';
export { loadAddon } from './native.ts';
export { quantize, setLogLevel, systemInfo } from './system.ts';
