// What a request really put before the model, and what the chat layer makes of a reply. The prompt
// test/fixtures/chat/tool-marker.jinja renders, written out by hand: what a request's rendered prompt (the
// tokens the decoder was given) is compared with, so a tool result or an earlier call that never reached the prompt,
// or reached it out of its place, fails.
import { ChatTemplates, type Model } from '../../src/engine/index.ts';
import type { StepLog } from './step-log.ts';

/** A value as Jinja's tojson writes it (Python's json.dumps: ", " and ": " separators, keys in their order). */
export function pyJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(pyJson).join(', ')}]`;
  if (v !== null && typeof v === 'object')
    return `{${Object.entries(v)
      .map(([k, x]) => `${JSON.stringify(k)}: ${pyJson(x)}`)
      .join(', ')}}`;
  return JSON.stringify(v);
}

export type MarkerTurn =
  | { role: 'system' | 'user' | 'tool'; content: string }
  | { role: 'assistant'; content?: string; calls?: Array<{ name: string; arguments: unknown }> };

/** The template's prompt for these tools (chat's shape, `{type: 'function', function}`) and turns, ready to answer. */
export function toolMarkerPrompt(tools: readonly unknown[], turns: readonly MarkerTurn[]): string {
  let out = '';
  if (tools.length > 0)
    out += `<|im_start|>system\nTools: ${tools.map(pyJson).join('')}Call one as <tool_call>{"name": ..., "arguments": {...}}</tool_call><|im_end|>\n`;
  for (const m of turns) {
    if (m.role === 'assistant' && m.calls && m.calls.length > 0)
      out += `<|im_start|>assistant\n${m.calls.map((c) => `<tool_call>${pyJson({ name: c.name, arguments: c.arguments })}</tool_call>`).join('')}<|im_end|>\n`;
    else out += `<|im_start|>${m.role}\n${m.content ?? ''}<|im_end|>\n`;
  }
  return `${out}<|im_start|>assistant\n`;
}

/** The prompt the decoder was given at its latest start(), as text with the special tokens written out. */
export function lastPrompt(model: Model, steps: StepLog): { text: string; tokens: number[] } {
  const tokens = steps.starts.at(-1)?.tokens ?? [];
  return { text: model.detokenize(tokens, { unparseSpecial: true }), tokens };
}

/** How llama.cpp's parser splits `raw`, the text a reply generated after this template's generation prompt. */
export async function parsedReply(
  model: Model,
  template: string,
  raw: string,
): Promise<{ reasoning: string; content: string }> {
  const chat = new ChatTemplates(model, { template });
  try {
    const prompt = await chat.apply({ messages: [{ role: 'user', content: 'Sure?' }] });
    const parser = chat.parser(prompt.parserConfig);
    parser.push(raw, true);
    const { reasoning, content } = parser.message();
    return { reasoning, content };
  } finally {
    chat.dispose();
  }
}
