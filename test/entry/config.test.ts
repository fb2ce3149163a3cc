import t from 'tap';
import { ConfigError, parseServeConfig, serveUsage, slotContext } from '../../src/entry/config/index.ts';

t.test('defaults', async (t) => {
  const c = parseServeConfig([], {});
  t.equal(c.host, '127.0.0.1');
  t.equal(c.port, 8090);
  t.equal(c.model, undefined);
  t.equal(c.parallel, 4);
  t.equal(c.gpuLayers, -1);
  t.equal(c.batchSize, 512);
  t.same(c.apiKeys, []);
  t.equal(c.mmap, true);
});

t.test('llama-server flags, short and long, with = or a separate value', async (t) => {
  const c = parseServeConfig(
    [
      '-m',
      'model.gguf',
      '-c',
      '8192',
      '-np',
      '2',
      '-ngl',
      '99',
      '-b',
      '256',
      '-t',
      '3',
      '--host',
      '0.0.0.0',
      '--port=9000',
      '--api-key',
      'k1',
      '--api-key',
      'k2',
      '--alias',
      'gemma',
      '--no-mmap',
      '-fa',
      'on',
      '-ctk',
      'q8_0',
      '-ctv',
      'q8_0',
    ],
    {},
  );
  t.equal(c.model, 'model.gguf');
  t.equal(c.ctxSize, 8192);
  t.equal(c.parallel, 2);
  t.equal(c.gpuLayers, 99);
  t.equal(c.batchSize, 256);
  t.equal(c.ubatchSize, 256, 'ubatch follows a smaller batch');
  t.equal(c.threads, 3);
  t.equal(c.host, '0.0.0.0');
  t.equal(c.port, 9000);
  t.same(c.apiKeys, ['k1', 'k2']);
  t.same(c.aliases, ['gemma']);
  t.equal(c.mmap, false);
  t.equal(c.flashAttn, 'on');
  t.equal(c.kvTypeK, 'q8_0');
  t.equal(c.kvTypeV, 'q8_0');
  t.equal(parseServeConfig(['-ctk', 'q8_0'], {}).kvTypeV, 'f16', '-ctk sets K only, as in llama-server');
});

t.test('environment variables, overridden by flags', async (t) => {
  const env = {
    LLAMA_ARG_MODEL: '/m.gguf',
    LLAMA_ARG_PORT: '7000',
    LLAMA_API_KEY: 'a,b',
    LLAMA_ARG_N_PARALLEL: '8',
    LLAMA_ARG_MLOCK: '1',
  };
  const c = parseServeConfig([], env);
  t.equal(c.model, '/m.gguf');
  t.equal(c.port, 7000);
  t.same(c.apiKeys, ['a', 'b']);
  t.equal(c.parallel, 8);
  t.equal(c.mlock, true);
  const d = parseServeConfig(['--port', '7001', '--api-key', 'c'], env);
  t.equal(d.port, 7001);
  t.same(d.apiKeys, ['c']);
});

t.test('--objective-priority: NAME=P entries from flags or the environment, checked', async (t) => {
  const env = { LLAMA_ARG_OBJECTIVE_PRIORITY: 'critical=10,batch=-5' };
  t.same(parseServeConfig([], env).objectivePriorities, ['critical=10', 'batch=-5']);
  const c = parseServeConfig(['--objective-priority', 'a=1', '--objective-priority=b=2'], env);
  t.same(c.objectivePriorities, ['a=1', 'b=2'], 'flags replace the environment, and add up');
  t.same(c.apiKeys, [], 'other lists are left alone');
  t.throws(() => parseServeConfig(['--objective-priority', 'critical'], {}), {
    constructor: ConfigError,
    message: /--objective-priority: 'critical' is not NAME=PRIORITY/,
  });
});

t.test('bad values name the flag', async (t) => {
  t.throws(() => parseServeConfig(['--port', 'abc'], {}), {
    constructor: ConfigError,
    message: "--port must be an integer, got 'abc'",
  });
  t.throws(() => parseServeConfig(['--port', '70000'], {}), { message: /--port must be between 0 and 65535/ });
  t.throws(() => parseServeConfig(['-np', '0'], {}), { message: /-np: must not be 0/ });
  t.throws(() => parseServeConfig(['--model'], {}), { message: '--model needs a value' });
  t.throws(() => parseServeConfig(['--frobnicate'], {}), { message: /unknown option '--frobnicate'/ });
  t.throws(() => parseServeConfig(['-fa', 'maybe'], {}), { message: /-fa must be one of on, off, auto/ });
  t.throws(() => parseServeConfig([], { LLAMA_ARG_PORT: 'x' }), { message: /environment variable LLAMA_ARG_PORT/ });
  t.throws(() => parseServeConfig(['-np', '8', '-b', '4'], {}), {
    message: /--batch-size \(4\) must be at least --parallel \(8\)/,
  });
  t.throws(() => parseServeConfig(['-ctv', 'q8_0', '-fa', 'off'], {}), {
    message: /a quantized V cache \(-ctv q8_0\) needs flash attention/,
  });
  t.equal(parseServeConfig(['-ctk', 'q8_0', '-fa', 'off'], {}).kvTypeK, 'q8_0', 'a quantized K cache does not');
});

t.test(
  "a sampling default the sampler cannot take is refused when the flags are read, naming the flag's range",
  async (t) => {
    // Each would otherwise start a server whose every request leaving the field out fails.
    const refused: [string[], Record<string, string>, string][] = [
      [['--typical', '0'], {}, '--typical must be between 1.1754943508222875e-38 and 1, got 0'],
      [['--typical-p', '1e-39'], {}, '--typical-p must be between 1.1754943508222875e-38 and 1, got 1e-39'],
      [['--repeat-penalty', '0'], {}, '--repeat-penalty must be between 1.1754943508222875e-38 and 100, got 0'],
      [['--repeat-penalty', '101'], {}, '--repeat-penalty must be between 1.1754943508222875e-38 and 100, got 101'],
      [['--presence-penalty', '101'], {}, '--presence-penalty must be between -100 and 100, got 101'],
      [['--frequency-penalty', '-101'], {}, '--frequency-penalty must be between -100 and 100, got -101'],
      [['--top-k', '1073741825'], {}, '--top-k must be between 0 and 1073741824, got 1073741825'],
      [[], { LLAMA_ARG_TOP_K: '1073741825' }, 'environment variable LLAMA_ARG_TOP_K must be between 0 and 1073741824'],
      [['--repeat-last-n', '16777217'], {}, '--repeat-last-n must be between -1 and 16777216, got 16777217'],
      [['--dry-penalty-last-n', '16777217'], {}, '--dry-penalty-last-n must be between -1 and 16777216, got 16777217'],
      [['--dry-allowed-length', '16777217'], {}, '--dry-allowed-length must be between 0 and 16777216, got 16777217'],
      [['--temp', '1e7'], {}, '--temp must be between 0 and 1000000, got 10000000'],
      [['--dynatemp-range', '1e7'], {}, '--dynatemp-range must be between 0 and 1000000'],
      [['--dynatemp-exp', '1e7'], {}, '--dynatemp-exp must be between 0 and 1000000'],
      [['--top-nsigma', '-1e7'], {}, '--top-nsigma must be between -1000000 and 1000000, got -10000000'],
      [['--dry-multiplier', '1e7'], {}, '--dry-multiplier must be between 0 and 1000000'],
      [['--dry-base', '1e7'], {}, '--dry-base must be between 1 and 1000000'],
      [['--mirostat-ent', '1e7'], {}, '--mirostat-ent must be between 0 and 1000000'],
      [['--mirostat-lr', '1e7'], {}, '--mirostat-lr must be between 0 and 1000000'],
    ];
    for (const [argv, env, message] of refused)
      t.throws(
        () => parseServeConfig(argv, env),
        { constructor: ConfigError, message: new RegExp(`^${message}`) },
        message,
      );
    // What they take, up to the edge: llama-server's values where they work here.
    const c = parseServeConfig(
      ['--top-p', '0', '--repeat-penalty', '100', '--presence-penalty', '-100', '--top-k', '1073741824', '--temp', '5'],
      {},
    );
    t.match(c, { topP: 0, repeatPenalty: 100, presencePenalty: -100, topK: 1073741824, temperature: 5 });
  },
);

t.test('slot context', async (t) => {
  t.equal(slotContext({ ctxSize: undefined, parallel: 4 }, 32768), 4096);
  t.equal(slotContext({ ctxSize: 8192, parallel: 4 }, 32768), 2048);
  t.equal(slotContext({ ctxSize: undefined, parallel: 4 }, 2048), 2048, 'capped by the training context');
});

t.test('help lists every flag with its environment variable', async (t) => {
  const u = serveUsage();
  for (const s of [
    '--model',
    '--ctx-size',
    '--parallel',
    '--n-gpu-layers',
    '--batch-size',
    '--threads',
    '--host',
    '--port',
    '--api-key',
    '--alias',
    '--max-queue',
    '--timeout',
    'LLAMA_ARG_CTX_SIZE',
    'LLAMA_API_KEY',
  ]) {
    t.match(u, s);
  }
  t.equal(parseServeConfig(['--help'], {}).help, true);
});

t.test('a VRAM budget, and which settings were given explicitly', async (t) => {
  const c = parseServeConfig(['--vram-budget', '1GiB', '-np', '2'], { LLAMA_ARG_CTX_SIZE: '4096' });
  t.equal(c.vramBudgetBytes, 1024 ** 3);
  t.ok(c.explicit.has('parallel'));
  t.ok(c.explicit.has('ctxSize'), 'from the environment');
  t.notOk(c.explicit.has('gpuLayers'));
  t.equal(parseServeConfig([], {}).vramBudgetBytes, undefined);
  t.throws(() => parseServeConfig(['--vram-budget', 'lots'], {}), { message: /--vram-budget: 'lots' is not a size/ });
});

t.test('--no-webui (and --no-ui, LLAMA_ARG_NO_UI) turns the web page off', async (t) => {
  t.equal(parseServeConfig([], {}).webui, true, 'on by default');
  t.equal(parseServeConfig(['--no-webui'], {}).webui, false);
  t.equal(parseServeConfig(['--no-ui'], {}).webui, false);
  t.equal(parseServeConfig([], { LLAMA_ARG_NO_UI: '1' }).webui, false);
  t.equal(parseServeConfig([], { LLAMA_ARG_NO_UI: '0' }).webui, true);
  t.match(serveUsage(), /--no-ui, --no-webui\s+serve the web page/);
});

t.test("llama-server's flags as its test suite passes them", async (t) => {
  // The arguments llama.cpp's server tests (tools/server/tests/utils.py) start a server with.
  const c = parseServeConfig(
    [
      ...['--host', '127.0.0.1', '--port', '8080', '--temp', '0.8', '--seed', '42', '--batch-size', '32'],
      ...['--ubatch-size', '32', '--threads', '2', '--n-gpu-layers', '99', '--cont-batching', '--metrics'],
      ...['--kv-unified', '--swa-full', '--no-slots', '--alias', 'a', '--tags', 'x,y', '--ctx-size', '512'],
      ...['--parallel', '2', '-ctk', 'q8_0', '-ctv', 'q8_0', '-fa', 'on', '--n-predict', '10', '--verbose'],
      ...['--slot-save-path', '/tmp/slots', '--context-shift', '--api-key', 'k', '--no-ui', '--no-jinja'],
      ...['--reasoning-format', 'none', '--reasoning', 'off', '--chat-template', 'chatml', '--cache-ram', '0'],
      ...['--backend_sampling', '--offline'],
    ],
    {},
  );
  t.match(c, {
    temperature: 0.8,
    seed: 42,
    batchSize: 32,
    ubatchSize: 32,
    metrics: true,
    kvUnified: true,
    swaFull: true,
    slots: false,
    aliases: ['a'],
    tags: ['x', 'y'],
    parallel: 2,
    kvTypeV: 'q8_0',
    nPredict: 10,
    verbose: true,
    slotSavePath: '/tmp/slots',
    contextShift: true,
    webui: false,
    jinja: false,
    reasoningFormat: 'none',
    reasoning: 'off',
    chatTemplate: 'chatml',
    cacheRamMiB: 0,
  });
  t.same(
    c.warnings.map((w) => w.split(' ')[0]),
    ['--cont-batching', '--backend-sampling', '--offline'],
    'one warning per flag with no effect here, named as llama.cpp spells it',
  );
});

t.test('a flag for something this server does not do is refused under the name given, before its value', async (t) => {
  for (const [argv, name] of [
    [['--rerank'], '--rerank'],
    [['--embd-normalize', '2'], '--embd-normalize'],
    [['--lora', 'x.gguf'], '--lora'],
    [['-gan', '2'], '-gan'],
    [['-hfd', 'org/draft'], '-hfd'],
    [['--mmproj', 'x.gguf'], '--mmproj'],
  ] as const) {
    t.throws(() => parseServeConfig(argv, {}), { message: new RegExp(`^${name} is not supported by this server: `) });
  }
  t.throws(() => parseServeConfig([], { LLAMA_ARG_RERANKING: '1' }), {
    message: /^LLAMA_ARG_RERANKING is not supported/,
  });
  t.throws(() => parseServeConfig(['--no_such_flag'], {}), { message: "unknown option '--no_such_flag' (see --help)" });
});

t.test("router mode's flags: llama-server's names, defaults and variables", async (t) => {
  const plain = parseServeConfig([], {});
  t.match(plain, { modelsMax: 4, modelsAutoload: true, sleepIdleSeconds: -1, modelsDir: undefined });
  const given = parseServeConfig(
    ['--models-dir', '/m', '--models-max', '0', '--no-models-autoload', '--sleep-idle-seconds', '30'],
    { LLAMA_ARG_MODELS_PRESET: '/p.ini', LLAMA_ARG_MODELS_MEMORY_BUDGET: '2GiB' },
  );
  t.match(given, {
    modelsDir: '/m',
    modelsPreset: '/p.ini',
    modelsMax: 0,
    modelsAutoload: false,
    sleepIdleSeconds: 30,
    modelsMemoryBytes: 2 * 1024 ** 3,
  });
  t.throws(() => parseServeConfig(['--sleep-idle-seconds', '0'], {}), /--sleep-idle-seconds.*cannot be 0/);
  t.throws(() => parseServeConfig(['--models-max', '-1'], {}), /--models-max/);
});

t.test("--embeddings and --pooling: llama-server's names and variables", async (t) => {
  const plain = parseServeConfig([], {});
  t.equal(plain.embeddings, false);
  t.equal(plain.pooling, undefined, "the model's pooling");
  for (const argv of [['--embedding'], ['--embeddings']]) t.equal(parseServeConfig(argv, {}).embeddings, true);
  t.equal(parseServeConfig([], { LLAMA_ARG_EMBEDDINGS: '1' }).embeddings, true);
  const c = parseServeConfig(['--embeddings', '--pooling', 'mean'], {});
  t.equal(c.pooling, 'mean');
  t.same(c.warnings, []);
  t.equal(parseServeConfig([], { LLAMA_ARG_POOLING: 'last' }).pooling, 'last');
  t.throws(() => parseServeConfig(['--embeddings', '--pooling', 'rank'], {}), {
    message: /--pooling rank is for reranking, which is not offered/,
  });
  t.throws(() => parseServeConfig(['--pooling', 'max'], {}), { message: /--pooling/ });
  t.match(parseServeConfig(['--pooling', 'cls'], {}).warnings, [/--pooling applies to --embeddings only/]);
});

t.test('a negatable switch reads LLAMA_ARG_NO_<NAME> too, as llama.cpp', async (t) => {
  t.equal(parseServeConfig([], { LLAMA_ARG_NO_CONTEXT_SHIFT: '1' }).contextShift, false);
  t.equal(parseServeConfig([], { LLAMA_ARG_CONTEXT_SHIFT: '1' }).contextShift, true);
  t.equal(parseServeConfig(['--no-context-shift'], { LLAMA_ARG_CONTEXT_SHIFT: '1' }).contextShift, false, 'flags win');
});

t.test('--prefill-chunk: the tokens one step carries (default: -b), within its range', async (t) => {
  t.equal(parseServeConfig([], {}).prefillChunk, undefined);
  t.equal(parseServeConfig(['--prefill-chunk', '128'], {}).prefillChunk, 128);
  t.equal(parseServeConfig([], { LLAMA_ARG_PREFILL_CHUNK: '64' }).prefillChunk, 64);
  t.throws(() => parseServeConfig(['--prefill-chunk', '0'], {}), {
    message: /--prefill-chunk must be between 1 and 1048576, got 0/,
  });
});

t.test('the KV pool is unified as llama-server decides it: unless -np is given, or as --kv-unified says', async (t) => {
  t.equal(parseServeConfig([], {}).kvUnified, true, 'no -np: one pool');
  t.equal(parseServeConfig(['-np', '8'], {}).kvUnified, false, '-np: each slot has -c/-np');
  t.equal(parseServeConfig([], { LLAMA_ARG_N_PARALLEL: '8' }).kvUnified, false, '-np from the environment');
  t.equal(parseServeConfig(['-np', '8', '-kvu'], {}).kvUnified, true);
  t.equal(parseServeConfig(['--no-kv-unified'], {}).kvUnified, false);
});
