// The chat route gives the decoder where the user messages start (the template's message delimiters, found in the
// prompt's tokens), so on a sliding-window model the prefill pauses there to save a checkpoint, as llama-server.
import t from 'tap';
import { ChatTemplates } from '../../../src/engine/index.ts';
import { messageStarts, tokenizePrompt } from '../../../src/server/generation/params.ts';
import { loadModel } from '../../helpers/models.ts';
import { makeHarness } from '../harness.ts';

const conversation = [
  { role: 'system', content: 'Be brief.' },
  { role: 'user', content: 'The first question.' },
  { role: 'assistant', content: 'An answer.' },
  { role: 'user', content: 'And the second one?' },
];

t.test('messageStarts finds every user message of a rendered conversation', async (t) => {
  const qwen = await loadModel('tiny-qwen');
  t.teardown(() => qwen.dispose());
  const chat = new ChatTemplates(qwen);
  t.teardown(() => chat.dispose());
  const rendered = await chat.apply({ messages: conversation, add_generation_prompt: true });
  t.same(rendered.userStarts, ['<|im_start|>user'], 'ChatML opens a user message with <|im_start|>user');
  const tokens = tokenizePrompt(qwen, rendered.prompt);
  const starts = messageStarts(qwen, tokens, rendered.userStarts);
  t.equal(starts.length, 2);
  for (const at of starts)
    t.match(qwen.detokenize(tokens.slice(at, at + 3), { unparseSpecial: true }), /^<\|im_start\|>user/);
  t.same(messageStarts(qwen, tokens, []), [], 'no delimiters: none');
});

t.test('on a sliding-window model the prefill pauses at the user message: a checkpoint there', async (t) => {
  const gemma = await loadModel('tiny-gemma3');
  t.teardown(() => gemma.dispose());
  const { app, decoder } = await makeHarness(t, gemma, {
    slots: 1,
    ctxPerSlot: 2048,
    config: { endpoints: { metrics: true } },
  });
  const gauge = async () => {
    const text = (await app.inject({ method: 'GET', url: '/metrics' })).body;
    return Number(/^llama_slots_checkpoint_bytes (\d+)$/m.exec(text)?.[1]);
  };
  t.equal(await gauge(), 0, 'no checkpoint before the first prompt');
  const res = await app.inject({
    method: 'POST',
    url: '/v1/chat/completions',
    payload: { max_tokens: 2, messages: [{ role: 'user', content: 'This is a test. '.repeat(10) }] },
  });
  t.equal(res.statusCode, 200, res.body);
  const held = decoder.cachedPrefix(0);
  // Not the one every prompt gets 4 tokens before its end (the prompt is shorter than a batch: no other).
  const promptTokens = res.json().usage.prompt_tokens as number;
  t.ok(promptTokens < 512);
  const inside = decoder.resumePoints(0).checkpoints.filter((n) => n !== promptTokens - 4);
  t.equal(inside.length, 1, `one checkpoint inside the prompt (${inside})`);
  t.match(
    gemma.detokenize(held.slice(inside[0], (inside[0] ?? 0) + 16), { unparseSpecial: true }),
    /^<start_of_turn>user/,
    'where the user message starts',
  );
  t.equal(await gauge(), decoder.info.checkpointBytes, '/metrics reports the bytes they hold');
  t.ok(decoder.info.checkpointBytes > 0);
  decoder.clear(0);
  t.equal(await gauge(), 0, 'a cleared slot holds none');
});
