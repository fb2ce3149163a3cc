// What the HTTP layer needs from a chat layer (the engine's ChatTemplates and ChatParser implement it): render a
// request into a prompt with its grammar, and parse the output back into content, reasoning and tool calls.
import type { Grammar } from '../../scheduler/decoder.ts';

/** A request to render, in OpenAI's field names (llama.cpp's chat layer reads them as such). */
export interface ChatRenderRequest {
  messages: readonly unknown[];
  tools?: readonly unknown[];
  tool_choice?: 'auto' | 'none' | 'required';
  parallel_tool_calls?: boolean;
  json_schema?: unknown;
  grammar?: string;
  add_generation_prompt?: boolean;
  /** Continue the last (assistant) message instead of answering it: true, or 'reasoning' / 'content'. */
  continue_final_message?: boolean | string;
  reasoning_format?: string;
  reasoning_effort?: string;
  chat_template_kwargs?: Record<string, unknown>;
  stream?: boolean;
}

export interface ChatPrompt {
  prompt: string;
  /** The constraint the decoder's sampler applies (the scheduler's contract; opaque to the HTTP layer). */
  grammar: Grammar | null;
  preservedTokens: ArrayLike<number>;
  additionalStops: readonly string[];
  /** Text that opens a user message in this format, to find the messages in the prompt's tokens. */
  userStarts?: readonly string[];
  /** The chat format llama.cpp picked (e.g. 'peg-native'). */
  format: string;
  /** Configuration of this request's output parser. */
  parserConfig: string;
  /** The format's thinking tags ('' and [] when it has none): what the reasoning budget counts between. */
  reasoningStart?: string;
  reasoningEnds?: readonly string[];
  /** What the template already wrote of the answer: the reasoning budget starts from it. */
  generationPrompt?: string;
}

export interface ChatDelta {
  content?: string;
  reasoning?: string;
  toolIndex?: number;
  toolId?: string;
  toolName?: string;
  toolArguments?: string;
}

export interface ChatMessageOut {
  content: string;
  reasoning: string;
  toolCalls: readonly { id: string; name: string; arguments: string }[];
}

/**
 * The calls an answer finished. Cut off by its token limit, the answer's last call may be unfinished (a lenient
 * parse reads a call's first characters as one, and some formats' parsers take a call without its required
 * arguments): it is not reported as a call, and the finish reason ('length') says the answer was cut. Calls before
 * it were closed by the next one opening.
 */
export function finishedCalls(m: ChatMessageOut, finish: string): ChatMessageOut['toolCalls'] {
  return finish === 'length' ? m.toolCalls.slice(0, -1) : m.toolCalls;
}

export interface ChatOutputParser {
  push(text: string, final?: boolean): ChatDelta[];
  message(): ChatMessageOut;
}

export interface ChatLayer {
  /** Rejects with ArgumentError or TemplateError (a 400) when the request can't be rendered. */
  apply(request: ChatRenderRequest): Promise<ChatPrompt>;
  parser(config: string): ChatOutputParser;
  /** JSON Schema -> grammar; ArgumentError (400) with the reason when it can't be converted. */
  grammarFromSchema(schema: unknown): Promise<string>;
  /** Resolves with the grammar when it parses; ArgumentError (400) otherwise. */
  checkGrammar(grammar: string): Promise<string>;
  /** True: tools and tool_choice can be honoured (a Jinja template). */
  readonly supportsTools: boolean;
  /** The template's source and what it can do, for /props (and thinking, which Anthropic's requests can turn on). */
  readonly info?:
    | {
        readonly source: string;
        readonly caps: Readonly<Record<string, boolean>>;
        readonly supportsThinking?: boolean;
      }
    | undefined;
}
