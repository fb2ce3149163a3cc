// App deps with no model behind them, for routes that never generate (the web page, the stats stream).
import type { AppDeps } from '../../src/server/app.ts';

export function stubDeps(extra: Partial<AppDeps> = {}): AppDeps {
  return {
    model: {
      info: {
        path: '/models/stub.gguf',
        name: 'stub',
        nParams: 1,
        sizeBytes: 1,
        nCtxTrain: 256,
        nVocab: 10,
        bos: -1,
        eogTokens: [],
      },
      tokenize: () => [],
      detokenize: () => '',
      tokenBytes: () => new Uint8Array(),
    },
    chat: {
      apply: () => Promise.reject(new Error('no chat in these tests')),
      parser: () => {
        throw new Error('no chat in these tests');
      },
      grammarFromSchema: () => Promise.reject(new Error('no grammars in these tests')),
      checkGrammar: () => Promise.reject(new Error('no grammars in these tests')),
      supportsTools: false,
    },
    scheduler: {
      submit: () => {
        throw new Error('no generation in these tests');
      },
      snapshot: () => [],
      slotAction: () => Promise.reject(new Error('no slots in these tests')),
    },
    config: { ctxPerSlot: 256, slots: 2 },
    ...extra,
  };
}
