import t from 'tap';
import { parseChatBenchArgs } from '../../src/bench/chat-bench.ts';

t.test('--tokens: 500 unless given, an integer of at least 1', async (t) => {
  t.same(parseChatBenchArgs([]), { tokens: 500 });
  t.same(parseChatBenchArgs(['--tokens', '40']), { tokens: 40 });
  t.throws(() => parseChatBenchArgs(['--tokens', '0']), /--tokens must be at least 1, got 0/);
  t.throws(() => parseChatBenchArgs(['--tokens']), /--tokens needs a value/);
  t.throws(() => parseChatBenchArgs(['--token', '4']), /unknown option '--token'/);
});
