// An embeddings request's `input` as token lists: a string, an array of strings, an array of tokens or an array of
// token arrays (OpenAI's four shapes). Strings are tokenized with the model's special tokens (a BERT's [CLS] ...
// [SEP]), as llama-server does; token arrays are taken as they are. Every refusal is a 400 naming its field.
import { ApiError, invalidRequest } from '../errors.ts';

/** OpenAI's limit on inputs in one request. */
export const MAX_INPUTS = 2048;

export type EmbeddingInput = string | readonly string[] | readonly number[] | readonly (readonly number[])[];

export interface Tokenizer {
  tokenize(text: string, options: { addSpecial: boolean; parseSpecial: boolean }): ArrayLike<number>;
}

export interface EmbeddingLimits {
  nVocab: number;
  maxInputTokens: number;
}

/** Token lists, one per input, in order; throws ApiError. */
export function inputTokens(
  input: EmbeddingInput,
  tokenizer: Tokenizer,
  limits: EmbeddingLimits,
  param = 'input',
): Int32Array[] {
  // A string or one flat token array is one input, named `input` itself; otherwise each element is one.
  const single = typeof input === 'string' || (input.length > 0 && input.every((x) => typeof x === 'number'));
  const items = (single ? [input] : input) as readonly (string | readonly number[])[];
  if (items.length === 0) throw invalidRequest(`'${param}' must not be empty`, param, 'invalid_value');
  if (items.length > MAX_INPUTS)
    throw invalidRequest(
      `'${param}' has ${items.length} inputs; the most one request may have is ${MAX_INPUTS}`,
      param,
      'invalid_value',
    );
  return items.map((item, i) => {
    const where = single ? param : `${param}[${i}]`;
    if (typeof item !== 'string' && !Array.isArray(item))
      throw invalidRequest(`'${where}' must be a string or an array of tokens`, where, 'invalid_type');
    if (item.length === 0) throw invalidRequest(`'${where}' must not be empty`, where, 'invalid_value');
    const tokens =
      typeof item === 'string'
        ? Int32Array.from(tokenizer.tokenize(item, { addSpecial: true, parseSpecial: true }))
        : checkedTokens(item, where, limits.nVocab);
    if (tokens.length === 0) throw invalidRequest(`'${where}' has no tokens`, where, 'invalid_value');
    if (tokens.length > limits.maxInputTokens) throw inputTooLong(where, tokens.length, limits.maxInputTokens);
    return tokens;
  });
}

function checkedTokens(tokens: readonly number[], where: string, nVocab: number): Int32Array {
  const bad = tokens.find((t) => !Number.isInteger(t) || t < 0 || t >= nVocab);
  if (bad !== undefined)
    throw invalidRequest(
      `'${where}' has token ${bad}, outside the vocabulary (0..${nVocab - 1})`,
      where,
      'invalid_value',
    );
  return Int32Array.from(tokens);
}

/** OpenAI's wording and code for an input longer than the model takes; llama-server's error type. */
export function inputTooLong(where: string, tokens: number, max: number): ApiError {
  return new ApiError(
    400,
    'exceed_context_size_error',
    `'${where}' has ${tokens} tokens; this model's maximum input length is ${max} tokens`,
    { param: where, code: 'context_length_exceeded', extra: { n_prompt_tokens: tokens, n_ctx: max } },
  );
}
