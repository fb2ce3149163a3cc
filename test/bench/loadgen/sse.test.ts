import { readFileSync } from 'node:fs';
import t from 'tap';
import { parseChatEvent, SseDecoder, type SseEvent } from '../../../src/bench/loadgen/sse.ts';

const fixture = (name: string): Buffer => readFileSync(new URL(`fixtures/${name}`, import.meta.url));

/** Decodes `bytes` fed in pieces of `size` bytes, the way a network delivers them. */
function decodeInPieces(bytes: Buffer, size: number): SseEvent[] {
  const sse = new SseDecoder();
  const text = new TextDecoder();
  const events: SseEvent[] = [];
  for (let k = 0; k < bytes.length; k += size)
    events.push(...sse.push(text.decode(bytes.subarray(k, k + size), { stream: true })));
  events.push(...sse.push(text.decode()), ...sse.end());
  return events;
}

t.test('llama-server stream (captured): the same events however the bytes are split', async (t) => {
  const bytes = fixture('llama-server-chat-stream.txt');
  const whole = decodeInPieces(bytes, bytes.length);
  t.equal(whole.length, 10, 'role, 6 content, finish, usage, [DONE]');
  for (const size of [1, 2, 3, 7, 64]) t.same(decodeInPieces(bytes, size), whole, `pieces of ${size} bytes`);

  const items = whole.map(parseChatEvent);
  t.same(
    items[0],
    { kind: 'chunk', content: '', finishReason: null, usage: null, timings: null },
    'role-only first chunk, content null',
  );
  const content = items.flatMap((i) => (i.kind === 'chunk' && i.content ? [i.content] : []));
  t.equal(content.length, 6, 'six content chunks');
  t.equal(content.join(''), ' grasp я\u00fdmNavigation arg\u00b2,', 'multi-byte characters survive splits');
  t.same(
    items[7],
    { kind: 'chunk', content: '', finishReason: 'length', usage: null, timings: null },
    'finish chunk with an empty delta',
  );
  t.same(
    items[8],
    {
      kind: 'chunk',
      content: '',
      finishReason: null,
      usage: { promptTokens: 34, completionTokens: 6 },
      timings: {
        cache_n: 0,
        prompt_n: 34,
        prompt_ms: 4.734,
        prompt_per_token_ms: 0.13923529411764707,
        prompt_per_second: 7182.087029995775,
        predicted_n: 6,
        predicted_ms: 6.106,
        predicted_per_token_ms: 1.2212,
        predicted_per_second: 818.8666885031116,
      },
    },
    'usage and timings last',
  );
  t.same(items[9], { kind: 'done' });
});

t.test('llama-server stream with an error after it started (captured)', async (t) => {
  const items = decodeInPieces(fixture('llama-server-chat-stream-error.txt'), 5).map(parseChatEvent);
  t.equal(items.filter((i) => i.kind === 'chunk' && i.content).length, 8);
  t.same(items.at(-1), {
    kind: 'error',
    message: 'The model produced output that does not match the expected peg-native format (server_error)',
  });
  t.notOk(
    items.some((i) => i.kind === 'done'),
    'no [DONE] after the error',
  );
});

t.test('OpenAI-style stream (ours): role chunk with empty content, usage chunk with empty choices', async (t) => {
  const body =
    'data: {"id":"c1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}\n\n' +
    'data: {"id":"c1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"Hello"},"finish_reason":null}]}\n\n' +
    'data: {"id":"c1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\n' +
    'data: {"id":"c1","object":"chat.completion.chunk","choices":[],"usage":{"prompt_tokens":12,"completion_tokens":1,"total_tokens":13}}\n\n' +
    'data: [DONE]\n\n';
  const items = decodeInPieces(Buffer.from(body), 9).map(parseChatEvent);
  t.same(items, [
    { kind: 'chunk', content: '', finishReason: null, usage: null, timings: null },
    { kind: 'chunk', content: 'Hello', finishReason: null, usage: null, timings: null },
    { kind: 'chunk', content: '', finishReason: 'stop', usage: null, timings: null },
    { kind: 'chunk', content: '', finishReason: null, usage: { promptTokens: 12, completionTokens: 1 }, timings: null },
    { kind: 'done' },
  ]);
});

t.test('line endings: LF, CRLF, CR, and a CRLF split across pieces', async (t) => {
  const want = [
    { event: 'message', data: 'a' },
    { event: 'message', data: 'b' },
  ];
  for (const eol of ['\n', '\r\n', '\r']) {
    const sse = new SseDecoder();
    t.same([...sse.push(`data: a${eol}${eol}data: b${eol}${eol}`), ...sse.end()], want, JSON.stringify(eol));
  }
  const sse = new SseDecoder();
  const events = [...sse.push('data: a\r'), ...sse.push('\n\r'), ...sse.push('\ndata: b\r\n\r\n'), ...sse.end()];
  t.same(events, want, 'a CR at the end of a piece waits for a possible LF');
});

t.test('comments, fields, multi-line data, missing final blank line', async (t) => {
  const sse = new SseDecoder();
  const events = [
    ...sse.push(': keep-alive ping\n\n:\n\n'),
    ...sse.push('event: error\nid: 7\nretry: 100\ndata: {"message":"x"}\n\n'),
    ...sse.push('data:no-space\ndata:  two spaces\n\n'),
    ...sse.push('data\n\n'),
    ...sse.push('data: [DONE]'),
    ...sse.end(),
  ];
  t.same(events, [
    { event: 'error', data: '{"message":"x"}' },
    { event: 'message', data: 'no-space\n two spaces' },
    { event: 'message', data: '' },
    { event: 'message', data: '[DONE]' },
  ]);
  t.same(sse.end(), [], 'nothing left after end');
});

t.test('errors inside the stream', async (t) => {
  const item = (event: string, data: string) => parseChatEvent({ event, data });
  t.same(item('message', '{"error":{"message":"queue full","type":"server_error","param":null,"code":null}}'), {
    kind: 'error',
    message: 'queue full (server_error)',
  });
  t.same(item('message', '{"error":"plain text"}'), { kind: 'error', message: 'plain text' });
  t.same(item('error', '{"message":"slot died"}'), { kind: 'error', message: 'slot died' });
  t.same(item('error', 'not json'), { kind: 'error', message: 'not json' });
  t.match(item('message', '{"choices": [').kind, 'error', 'malformed JSON is an error');
  t.match(item('message', '[1,2]').kind, 'error', 'an array is not a chunk');
  t.same(item('message', '{"choices":[{"delta":{"reasoning_content":"think","content":null}}]}'), {
    kind: 'chunk',
    content: 'think',
    finishReason: null,
    usage: null,
    timings: null,
  });
  t.same(
    item('message', '{"choices":[],"timings":{"prompt_ms":2.5,"queue_ms":1,"note":"x","bad":null}}'),
    { kind: 'chunk', content: '', finishReason: null, usage: null, timings: { prompt_ms: 2.5, queue_ms: 1 } },
    'timings keep their numbers only',
  );
});
