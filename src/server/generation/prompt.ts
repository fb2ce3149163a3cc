// Prompts as llama-server takes them: text, token ids, a mix of both in one sequence, {prompt_string} objects, or
// an array of any of these for several prompts at once.

import { invalidRequest } from '../errors.ts';
import type { ServedModel } from '../options.ts';
import { tokenizePrompt } from './params.ts';

/** One prompt's tokens. */
export type PromptTokens = number[];

function isPiece(v: unknown): v is string | number {
  return typeof v === 'string' || typeof v === 'number';
}

/** Token ids, text (tokenized with special tokens added only at the very start) or both, in one sequence. */
function mixed(model: ServedModel, parts: readonly (string | number)[], param: string): PromptTokens {
  const out: number[] = [];
  parts.forEach((p, i) => {
    if (typeof p === 'number') {
      if (!Number.isInteger(p) || p < 0 || p >= model.info.nVocab) {
        throw invalidRequest(
          `Invalid '${param}[${i}]': ${p} is not a token id (0..${model.info.nVocab - 1}).`,
          param,
          'invalid_value',
        );
      }
      out.push(p);
    } else {
      const text =
        i === 0 ? tokenizePrompt(model, p) : Array.from(model.tokenize(p, { addSpecial: false, parseSpecial: true }));
      out.push(...text);
    }
  });
  return out;
}

function one(model: ServedModel, value: unknown, param: string): PromptTokens {
  if (typeof value === 'string') return tokenizePrompt(model, value);
  if (Array.isArray(value) && value.every(isPiece)) return mixed(model, value, param);
  if (typeof value === 'object' && value !== null && !Array.isArray(value)) {
    const o = value as Record<string, unknown>;
    if (o.multimodal_data !== undefined && o.multimodal_data !== null)
      throw invalidRequest(
        `'${param}.multimodal_data' is not supported: this server serves a text-only model.`,
        param,
        'unsupported_content_type',
      );
    if (typeof o.prompt_string !== 'string')
      throw invalidRequest(`Invalid '${param}': an object prompt needs 'prompt_string'.`, param, 'invalid_value');
    return tokenizePrompt(model, o.prompt_string);
  }
  throw invalidRequest(
    `Invalid '${param}': expected text, token ids, a mix of them, or {"prompt_string": ...}.`,
    param,
    'invalid_type',
  );
}

/** The prompts of a request: one unless it gave an array of prompts. */
export function promptsOf(model: ServedModel, value: unknown, param = 'prompt'): PromptTokens[] {
  // An array of pieces (numbers and text) is one prompt; an array holding other arrays or objects is several.
  if (Array.isArray(value) && value.length > 0 && !value.every(isPiece)) {
    return value.map((v, i) => one(model, v, `${param}[${i}]`));
  }
  if (Array.isArray(value) && value.length > 0 && value.every((v) => typeof v === 'string') && value.length > 1) {
    return value.map((v, i) => one(model, v, `${param}[${i}]`));
  }
  return [one(model, value, param)];
}
