// The shapes the generation path passes between its parts.
import type { StartOptions } from '../../engine/index.ts';

export type FinishReason = 'stop' | 'length' | 'tool_calls';

export interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
  prompt_tokens_details: { cached_tokens: number };
}

/** A request ready for the scheduler. */
export interface PreparedGeneration {
  tokens: number[];
  options: StartOptions;
  stop: string[];
  client: string;
  stream: boolean;
  includeUsage: boolean;
}

/**
 * The OpenAI objects of one route. Text arrives with stop strings already removed; a route that parses its
 * output (chat: tool calls, reasoning) turns it into deltas here.
 */
export interface Presenter {
  /** Chunks sent when the stream opens (chat: the assistant role). */
  open(): object[];
  /** Chunks for newly generated text (possibly none, while a parser waits for more). */
  text(text: string): object[];
  /** The chunks that end the stream: whatever is still held back, then the finish reason. */
  finish(finish: FinishReason): object[];
  usageChunk(usage: Usage): object;
  /** The whole answer, when not streamed. */
  completion(text: string, finish: FinishReason, usage: Usage): object;
}
