// Token probabilities in the shapes clients read: OpenAI chat's logprobs.content, OpenAI's legacy completions
// logprobs, and llama-server's completion_probabilities (logprob, or prob after the sampler chain).
import type { ServedModel } from '../options.ts';
import type { GeneratedToken } from './types.ts';

/** JSON has no -Infinity: the lowest finite float stands for it, as llama-server does. */
function finite(logprob: number): number {
  return Number.isFinite(logprob) ? logprob : -3.4028234663852886e38;
}

/** A token's text and bytes; a piece that ends inside a UTF-8 character keeps its bytes, loses the broken text. */
function piece(model: ServedModel, id: number): { token: string; bytes: number[] } {
  const bytes = model.tokenBytes(id);
  let end = bytes.length;
  // Drop a trailing incomplete UTF-8 sequence from the text (the bytes field keeps it).
  for (let i = Math.max(0, end - 3); i < end; i++) {
    const b = bytes[i] ?? 0;
    const need = b >= 0xf0 ? 4 : b >= 0xe0 ? 3 : b >= 0xc0 ? 2 : 1;
    if (i + need > end) {
      end = i;
      break;
    }
  }
  return { token: Buffer.from(bytes.subarray(0, end)).toString('utf8'), bytes: Array.from(bytes) };
}

function sentText(t: GeneratedToken): { token: string; bytes: number[] } {
  return { token: t.text, bytes: Array.from(Buffer.from(t.text, 'utf8')) };
}

/** OpenAI chat: one entry per generated token, with its top_logprobs. */
export function chatLogprobs(
  model: ServedModel,
  tokens: readonly GeneratedToken[],
  top: number,
): { content: object[] } {
  return {
    content: tokens
      .filter((t) => t.probs !== undefined)
      .map((t) => ({
        ...sentText(t),
        logprob: finite(t.probs?.chosen.logprob ?? 0),
        top_logprobs: (t.probs?.top ?? [])
          .slice(0, top)
          .map((p) => ({ ...piece(model, p.token), logprob: finite(p.logprob) })),
      })),
  };
}

/** OpenAI's legacy completions logprobs (tokens, token_logprobs, top_logprobs, text_offset). */
export function completionLogprobs(
  model: ServedModel,
  tokens: readonly GeneratedToken[],
  top: number,
  offset: number,
): object {
  let at = offset;
  const withProbs = tokens.filter((t) => t.probs !== undefined);
  return {
    tokens: withProbs.map((t) => t.text),
    token_logprobs: withProbs.map((t) => finite(t.probs?.chosen.logprob ?? 0)),
    top_logprobs: withProbs.map((t) =>
      Object.fromEntries(
        (t.probs?.top ?? []).slice(0, top).map((p) => [piece(model, p.token).token, finite(p.logprob)]),
      ),
    ),
    text_offset: withProbs.map((t) => {
      const start = at;
      at += t.text.length;
      return start;
    }),
  };
}

/** llama-server's completion_probabilities: logprob/top_logprobs, or prob/top_probs after the sampler chain. */
export function completionProbabilities(
  model: ServedModel,
  tokens: readonly GeneratedToken[],
  postSampling: boolean,
): object[] {
  const value = postSampling ? 'prob' : 'logprob';
  const list = postSampling ? 'top_probs' : 'top_logprobs';
  return tokens
    .filter((t) => t.probs !== undefined)
    .map((t) => ({
      id: t.id,
      ...sentText(t),
      [value]: postSampling ? (t.probs?.chosen.logprob ?? 0) : finite(t.probs?.chosen.logprob ?? 0),
      [list]: (t.probs?.top ?? []).map((p) => ({
        id: p.token,
        ...piece(model, p.token),
        [value]: postSampling ? p.logprob : finite(p.logprob),
      })),
    }));
}
