// The conversation: messages, the settings that shape requests, and how a streamed chunk in OpenAI's format
// (delta.content, delta.reasoning_content, delta.tool_calls in pieces, finish_reason, usage) grows the
// assistant's message. Kept in localStorage, so a reload finds it again.

export interface ToolCall {
  id: string;
  name: string;
  /** JSON text, as it arrived (in pieces). */
  arguments: string;
}

export interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  prompt_tokens_details?: { cached_tokens?: number };
}

export interface Message {
  id: string;
  role: 'user' | 'assistant';
  content: string;
  reasoning?: string;
  toolCalls?: ToolCall[];
  finish?: string;
  error?: string;
  /** The user pressed stop (or the page was closed) before the answer ended. */
  stopped?: boolean;
  /** Still arriving. */
  streaming?: boolean;
  usage?: Usage;
  /** Milliseconds from sending to the first content, and from sending to the end. */
  ttftMs?: number;
  totalMs?: number;
}

export interface Settings {
  system: string;
  temperature: number;
  /** null: no limit (until end of generation or a full slot). */
  maxTokens: number | null;
  /** null: random. */
  seed: number | null;
  /** JSON array of OpenAI tool definitions sent as `tools`; '' sends none. */
  tools: string;
}

export interface Conversation {
  messages: Message[];
  settings: Settings;
}

export const DEFAULT_SETTINGS: Settings = { system: '', temperature: 0.8, maxTokens: 512, seed: null, tools: '' };

/** One chunk of a chat completion stream (only the fields the page reads). */
export interface StreamChunk {
  choices?: Array<{
    delta?: {
      content?: string | null;
      reasoning_content?: string | null;
      tool_calls?: Array<{
        index: number;
        id?: string;
        function?: { name?: string; arguments?: string };
      }>;
    };
    finish_reason?: string | null;
  }>;
  usage?: Usage | null;
  error?: { message?: string };
}

/** The message after one chunk (a new object; the input is left alone). */
export function applyChunk(message: Message, chunk: StreamChunk): Message {
  const next: Message = { ...message };
  if (chunk.error !== undefined) next.error = chunk.error.message ?? 'the server reported an error';
  const choice = chunk.choices?.[0];
  const delta = choice?.delta;
  if (typeof delta?.content === 'string') next.content += delta.content;
  if (typeof delta?.reasoning_content === 'string') next.reasoning = (next.reasoning ?? '') + delta.reasoning_content;
  if (delta?.tool_calls !== undefined) {
    const calls = [...(next.toolCalls ?? [])];
    for (const part of delta.tool_calls) {
      const prev = calls[part.index] ?? { id: '', name: '', arguments: '' };
      calls[part.index] = {
        id: part.id ?? prev.id,
        name: prev.name + (part.function?.name ?? ''),
        arguments: prev.arguments + (part.function?.arguments ?? ''),
      };
    }
    next.toolCalls = calls;
  }
  if (typeof choice?.finish_reason === 'string') next.finish = choice.finish_reason;
  if (chunk.usage) next.usage = chunk.usage;
  return next;
}

/**
 * The request body's messages: the system prompt, then the turns as text. Reasoning is not sent back, nor are
 * tool calls (the page runs no tools, so there would be no results to pair them with); an assistant turn with
 * no text is left out.
 */
export function requestMessages(settings: Settings, messages: readonly Message[]): object[] {
  const out: object[] = [];
  if (settings.system.trim() !== '') out.push({ role: 'system', content: settings.system });
  for (const m of messages) {
    if (m.role === 'assistant' && m.content === '') continue;
    out.push({ role: m.role, content: m.content });
  }
  return out;
}

/** The body of one streamed chat completion. Throws naming the setting when the tools JSON is wrong. */
export function requestBody(model: string, settings: Settings, messages: readonly Message[]): object {
  const body: Record<string, unknown> = {
    model,
    messages: requestMessages(settings, messages),
    stream: true,
    stream_options: { include_usage: true },
    temperature: settings.temperature,
  };
  if (settings.maxTokens !== null) body.max_tokens = settings.maxTokens;
  if (settings.seed !== null) body.seed = settings.seed;
  if (settings.tools.trim() !== '') {
    let tools: unknown;
    try {
      tools = JSON.parse(settings.tools);
    } catch (err) {
      throw new Error(`Tools: not valid JSON (${(err as Error).message})`);
    }
    if (!Array.isArray(tools)) throw new Error('Tools: expected a JSON array of tool definitions');
    body.tools = tools;
  }
  return body;
}

const STORAGE = 'llama-slots:conversation';

export function loadConversation(): Conversation {
  try {
    const raw = localStorage.getItem(STORAGE);
    if (raw !== null) {
      const saved = JSON.parse(raw) as Partial<Conversation>;
      const messages = Array.isArray(saved.messages) ? saved.messages : [];
      return {
        // A message that was still arriving when the page closed will never finish.
        messages: messages.map((m) => (m.streaming ? { ...m, streaming: false, stopped: true } : m)),
        settings: { ...DEFAULT_SETTINGS, ...saved.settings },
      };
    }
  } catch {
    // Unreadable: start afresh rather than fail to load the page.
  }
  return { messages: [], settings: { ...DEFAULT_SETTINGS } };
}

export function saveConversation(c: Conversation): void {
  try {
    localStorage.setItem(STORAGE, JSON.stringify(c));
  } catch {
    // Storage full or disabled: the conversation lives on in the page.
  }
}

let counter = 0;
export function messageId(): string {
  counter++;
  return `${Date.now().toString(36)}-${counter}`;
}
