// Typed errors with stable codes, shared by every layer. Native errors arrive with a `code` property
// (see native/core/errors.h) and are turned into these classes by src/engine/native.ts.

export type ErrorCode =
  // files
  | 'MODEL_NOT_FOUND'
  | 'NOT_A_FILE'
  | 'NOT_A_GGUF'
  | 'GGUF_TRUNCATED'
  | 'GGUF_CORRUPT'
  // native
  | 'INVALID_ARGUMENT'
  | 'MODEL_LOAD_FAILED'
  | 'LOAD_CANCELLED'
  | 'DISPOSED'
  | 'BUSY'
  | 'QUANTIZE_FAILED'
  | 'CONTEXT_FAILED'
  | 'CONTEXT_EXCEEDED'
  | 'DECODE_FAILED'
  | 'TEMPLATE_FAILED'
  | 'TOOL_CHOICE_UNFORCEABLE'
  | 'NATIVE_ERROR'
  | 'ADDON_NOT_BUILT'
  // scheduler
  | 'QUEUE_FULL'
  | 'SHUTTING_DOWN';

export class LlamaError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: ErrorOptions) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}

/** The file is missing, not a file, or not a valid GGUF. Raised before llama.cpp sees it. */
export class ModelFileError extends LlamaError {}
/** llama.cpp refused the model or its load was cancelled. */
export class ModelLoadError extends LlamaError {}
/** The object was disposed, or is busy with another operation. */
export class StateError extends LlamaError {}
/** An argument was out of range or of the wrong kind. */
export class ArgumentError extends LlamaError {}
/** A prompt does not fit the context it was given to. */
export class ContextExceededError extends LlamaError {}
/** The chat template raised (its own message) or cannot render these messages. */
export class TemplateError extends LlamaError {}
/** tool_choice asks for a call this chat template's tool-call grammar cannot force (the message says why). */
export class ToolChoiceError extends LlamaError {}
/** Any other failure inside the native code. */
export class NativeError extends LlamaError {}
/** The scheduler refused a request: its queue is full (retry later) or it is shutting down. */
export class RejectedError extends LlamaError {
  /** Seconds a client should wait before retrying (HTTP Retry-After). */
  readonly retryAfterSeconds: number;
  constructor(code: ErrorCode, message: string, options?: ErrorOptions & { retryAfterSeconds?: number }) {
    super(code, message, options);
    this.retryAfterSeconds = options?.retryAfterSeconds ?? 1;
  }
}

const CLASS_BY_CODE: Record<ErrorCode, new (code: ErrorCode, message: string, options?: ErrorOptions) => LlamaError> = {
  MODEL_NOT_FOUND: ModelFileError,
  NOT_A_FILE: ModelFileError,
  NOT_A_GGUF: ModelFileError,
  GGUF_TRUNCATED: ModelFileError,
  GGUF_CORRUPT: ModelFileError,
  INVALID_ARGUMENT: ArgumentError,
  MODEL_LOAD_FAILED: ModelLoadError,
  LOAD_CANCELLED: ModelLoadError,
  DISPOSED: StateError,
  BUSY: StateError,
  QUANTIZE_FAILED: NativeError,
  CONTEXT_FAILED: NativeError,
  CONTEXT_EXCEEDED: ContextExceededError,
  DECODE_FAILED: NativeError,
  TEMPLATE_FAILED: TemplateError,
  TOOL_CHOICE_UNFORCEABLE: ToolChoiceError,
  NATIVE_ERROR: NativeError,
  ADDON_NOT_BUILT: NativeError,
  QUEUE_FULL: RejectedError,
  SHUTTING_DOWN: RejectedError,
};

export function isErrorCode(code: unknown): code is ErrorCode {
  return typeof code === 'string' && Object.hasOwn(CLASS_BY_CODE, code);
}

/** The typed error for a code; unknown codes become NATIVE_ERROR. */
export function errorFor(code: string, message: string, options?: ErrorOptions): LlamaError {
  const known: ErrorCode = isErrorCode(code) ? code : 'NATIVE_ERROR';
  return new CLASS_BY_CODE[known](known, message, options);
}
