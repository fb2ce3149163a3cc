import t, { type Test } from 'tap';
import { inputTokens, MAX_INPUTS } from '../../../src/server/embeddings/request.ts';
import { ApiError } from '../../../src/server/errors.ts';

// One token per character, framed by 1 and 2 when special tokens are added (as a BERT's [CLS] ... [SEP]).
const tokenizer = {
  tokenize: (text: string, o: { addSpecial: boolean }) => {
    const ids = [...text].map((c) => c.charCodeAt(0));
    return o.addSpecial ? [1, ...ids, 2] : ids;
  },
};
const limits = { nVocab: 1000, maxInputTokens: 8 };
const tokens = (input: Parameters<typeof inputTokens>[0]) =>
  inputTokens(input, tokenizer, limits).map((a) => Array.from(a));

function refusal(t: Test, input: unknown, param: string, message: RegExp, type = 'invalid_request_error') {
  try {
    inputTokens(input as string, tokenizer, limits);
    t.fail(`accepted ${JSON.stringify(input)}`);
  } catch (err) {
    t.ok(err instanceof ApiError);
    t.match(err, { statusCode: 400, param, type, message }, JSON.stringify(input));
  }
}

t.test("OpenAI's four input shapes", async (t) => {
  t.same(tokens('ab'), [[1, 97, 98, 2]], 'a string, with special tokens');
  t.same(tokens(['a', 'b']), [
    [1, 97, 2],
    [1, 98, 2],
  ]);
  t.same(tokens([5, 6]), [[5, 6]], 'a token array is one input, taken as it is');
  t.same(tokens([[5], [6, 7]]), [[5], [6, 7]]);
});

t.test('refusals name the input', async (t) => {
  refusal(t, '', 'input', /must not be empty/);
  refusal(t, [], 'input', /must not be empty/);
  refusal(t, ['a', ''], 'input[1]', /must not be empty/);
  refusal(t, [[1], []], 'input[1]', /must not be empty/);
  refusal(t, [1, 1000], 'input', /token 1000, outside the vocabulary \(0\.\.999\)/);
  refusal(t, [[1], [2.5]], 'input[1]', /token 2.5/);
  refusal(t, 'abcdefg', 'input', /9 tokens; this model's maximum input length is 8/, 'exceed_context_size_error');
  refusal(t, Array(MAX_INPUTS + 1).fill('a'), 'input', /the most one request may have is 2048/);
});
