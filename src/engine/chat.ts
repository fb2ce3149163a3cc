// llama.cpp's chat layer (native/core/chat_templates.h): a model's Jinja template rendered with tools, structured
// output and reasoning, and the parser that turns generated text back into content, reasoning and tool calls.
import type { ChatRenderRequest } from '../server/chat/layer.ts';
import type { Model } from './model.ts';
import {
  awaitNative,
  callNative,
  loadAddon,
  type NativeChatDelta,
  type NativeChatMessage,
  type NativeChatParser,
  type NativeChatPrompt,
  type NativeChatTemplateInfo,
  type NativeChatTemplates,
  type NativeGrammar,
  nativeDefaults,
} from './native.ts';

export type { ChatRenderRequest };

export type ReasoningFormat = 'none' | 'deepseek' | 'deepseek-legacy' | 'auto';

export interface ChatTemplateOptions {
  /** Jinja source or a llama.cpp built-in template name (chatml, llama3, ...). Default: the model's, else chatml. */
  template?: string;
  /** false: llama.cpp's legacy renderer (a fixed list of known templates, no tools). Default true. */
  jinja?: boolean;
  /** For requests that name none. Default 'deepseek' (llama-server's). */
  reasoningFormat?: ReasoningFormat;
  /** Template variables for every request. */
  defaultKwargs?: Record<string, unknown>;
  /** Thinking on templates that support it: 'auto' (default: on where supported), 'on' or 'off'. */
  thinking?: 'auto' | 'on' | 'off';
  /** A conversation that ends with the assistant is continued, not answered (llama-server's default). */
  prefillAssistant?: boolean;
}

export type ChatTemplateInfo = NativeChatTemplateInfo;
export type ChatPrompt = NativeChatPrompt;
export type GrammarSpec = NativeGrammar;
export type ChatDelta = NativeChatDelta;
export type ChatMessageOut = NativeChatMessage;

const THINKING = { auto: -1, off: 0, on: 1 } as const;

/** A model's chat layer: its template, the parser of its output, and grammars for its structured output. */
export class ChatTemplates {
  readonly #native: NativeChatTemplates;
  readonly #model: Model;
  readonly info: ChatTemplateInfo;

  /** Parses the template (TEMPLATE_FAILED when it does not parse). */
  constructor(model: Model, options: ChatTemplateOptions = {}) {
    const addon = loadAddon();
    const d = nativeDefaults().chatTemplates;
    this.#model = model;
    this.#native = callNative(
      () =>
        new addon.ChatTemplates(model.native, {
          template: options.template ?? d.template,
          jinja: options.jinja ?? d.jinja,
          reasoningFormat: options.reasoningFormat ?? d.reasoningFormat,
          defaultKwargs: options.defaultKwargs === undefined ? d.defaultKwargs : JSON.stringify(options.defaultKwargs),
          enableThinking: options.thinking === undefined ? d.enableThinking : THINKING[options.thinking],
          prefillAssistant: options.prefillAssistant ?? d.prefillAssistant,
        }),
    );
    this.info = callNative(() => this.#native.info());
  }

  /**
   * Renders a request off the main thread. Rejects with ArgumentError when llama.cpp refuses the request and
   * TemplateError with the template's own message when rendering raises.
   */
  apply(request: ChatRenderRequest): Promise<ChatPrompt> {
    const json = JSON.stringify(request);
    return awaitNative(() => this.#native.apply(json));
  }

  /** Tools and tool_choice can be honoured: only a Jinja template describes them. */
  get supportsTools(): boolean {
    return this.info.jinja;
  }

  /** A parser of one request's output (`config`: its ChatPrompt's parserConfig). */
  parser(config: string): ChatParser {
    return new ChatParser(config);
  }

  grammarFromSchema(schema: unknown): Promise<string> {
    return jsonSchemaToGrammar(schema);
  }

  checkGrammar(grammar: string): Promise<string> {
    return checkGrammar(this.#model, grammar);
  }

  dispose(): void {
    this.#native.dispose();
  }
}

/** One request's output, parsed as it grows. */
export class ChatParser {
  readonly #native: NativeChatParser;

  /** `config`: a ChatPrompt's parserConfig. */
  constructor(config: string) {
    const addon = loadAddon();
    this.#native = callNative(() => new addon.ChatParser(config));
  }

  /** Adds generated text; `final` parses the whole output as complete. Returns the deltas since the last call. */
  push(text: string, final = false): ChatDelta[] {
    return callNative(() => this.#native.push(text, final));
  }

  message(): ChatMessageOut {
    return callNative(() => this.#native.message());
  }
}

/** llama.cpp's JSON-Schema-to-GBNF conversion, off the main thread. ArgumentError names what it can't convert. */
export function jsonSchemaToGrammar(schema: unknown): Promise<string> {
  const json = JSON.stringify(schema);
  return awaitNative(() => loadAddon().jsonSchemaToGrammar(json));
}

/**
 * The markers llama.cpp's chat layer names for a template's format (its preserved tokens, thinking tags, trigger
 * words and extra stops): what a test model's vocabulary should hold as single tokens. No model needed.
 */
export function chatTemplateMarkers(source: string): Promise<string[]> {
  return awaitNative(() => loadAddon().chatTemplateMarkers(source));
}

/** Resolves with the grammar when llama.cpp parses it; ArgumentError otherwise. */
export function checkGrammar(model: Model, grammar: string): Promise<string> {
  return awaitNative(() => loadAddon().checkGrammar(model.native, grammar));
}

/** GrammarSpec.kind values (native/core/slot_sampler.h). */
export const GRAMMAR_KIND = { user: 0, outputFormat: 1, toolCalls: 2 } as const;
