// The live view's frame from plain stand-ins for the scheduler, the aggregator, the model and the devices.
import t from 'tap';
import type { SlotSnapshot } from '../../src/scheduler/types.ts';
import type { LiveFigures } from '../../src/server/stats-frame.ts';
import { clientShares, StatsSource, type StatsSourceOptions } from '../../src/server/stats-source.ts';

const figures = { rateSeconds: 10 } as LiveFigures;

const slots: SlotSnapshot[] = [
  {
    id: 0,
    state: 'generating',
    cachedTokens: 50,
    request: {
      id: 'req-1',
      client: 'ip:a',
      priority: 0,
      promptTokens: 40,
      reusedTokens: 30,
      draftTokens: 12,
      draftAccepted: 9,
      generatedTokens: 11,
      startedAt: 1000,
    },
  },
  { id: 1, state: 'idle', cachedTokens: 7, request: null },
  {
    id: 2,
    state: 'prefill',
    cachedTokens: 0,
    request: {
      id: 'req-2',
      client: 'ip:b',
      priority: 0,
      promptTokens: 9,
      reusedTokens: 0,
      draftTokens: 0,
      draftAccepted: 0,
      generatedTokens: 0,
      startedAt: 1400,
    },
  },
];

function options(over: Partial<StatsSourceOptions> = {}): StatsSourceOptions {
  return {
    modelId: 'tiny.gguf',
    slots: 3,
    ctxPerSlot: 512,
    live: { snapshot: () => figures },
    scheduler: () => ({
      snapshot: () => slots,
      queueLength: 3,
      queuedTokens: 60,
      queueByClient: () => [
        { client: 'ip:c', requests: 2, tokens: 50 },
        { client: 'ip:a', requests: 1, tokens: 10 },
      ],
    }),
    model: () => ({
      description: 'llama 1B Q4_K - Medium',
      nParams: 1e9,
      sizeBytes: 7e8,
      offloadedLayers: -1,
      offloadableLayers: 17,
    }),
    kv: () => ({ cellsUsed: 57, cellsTotal: 1536 }),
    devices: () => [{ name: 'CPU', description: 'AMD EPYC', type: 'cpu', memoryFreeBytes: 8e9, memoryTotalBytes: 8e9 }],
    schedulerNow: () => 1500,
    now: () => 1_700_000_000_000,
    ...over,
  };
}

t.test('a frame: slots with how long they have run, queue, KV, figures, server', async (t) => {
  const f = new StatsSource(options()).frame('ok');
  t.equal(f.time, 1_700_000_000_000);
  t.equal(f.state, 'ok');
  t.same(f.slots[0], {
    id: 0,
    state: 'generating',
    cachedTokens: 50,
    request: {
      id: 'req-1',
      client: 'ip:a',
      promptTokens: 40,
      reusedTokens: 30,
      draftTokens: 12,
      draftAccepted: 9,
      generatedTokens: 11,
      runningMs: 500,
    },
  });
  t.same(f.slots[1], { id: 1, state: 'idle', cachedTokens: 7, request: null });
  t.equal(f.slots[2]?.request?.runningMs, 100);
  t.same(f.queue, {
    requests: 3,
    tokens: 60,
    clients: [
      { client: 'ip:c', waiting: 2, waitingTokens: 50, running: 0 },
      { client: 'ip:a', waiting: 1, waitingTokens: 10, running: 1 },
      { client: 'ip:b', waiting: 0, waitingTokens: 0, running: 1 },
    ],
  });
  t.same(f.kv, { cellsUsed: 57, cellsTotal: 1536 });
  t.equal(f.live, figures);
  t.match(f.server, {
    model: 'tiny.gguf',
    description: 'llama 1B Q4_K - Medium',
    params: 1e9,
    backend: 'CPU',
    layersOffloaded: null,
    slots: 3,
    ctxPerSlot: 512,
    startedAt: 1_700_000_000_000,
  });
  t.same(f.server.devices, [
    {
      name: 'CPU',
      description: 'AMD EPYC',
      type: 'cpu',
      memoryTotalBytes: 8e9,
      memoryFreeBytes: 8e9,
      computeCapability: null,
    },
  ]);
});

t.test('while the model loads: no slots, an empty queue, no description', async (t) => {
  const f = new StatsSource(options({ scheduler: () => undefined, model: () => undefined })).frame('loading');
  t.equal(f.state, 'loading');
  t.same(f.slots, []);
  t.same(f.queue, { requests: 0, tokens: 0, clients: [] });
  t.equal(f.server.description, '');
  t.equal(f.server.backend, 'CPU');
});

t.test('a GPU backend names the card and the layers it holds', async (t) => {
  const f = new StatsSource(
    options({
      model: () => ({ description: 'gemma3', nParams: 1, sizeBytes: 1, offloadedLayers: 27, offloadableLayers: 27 }),
      devices: () => [
        { name: 'CPU', description: 'cpu', type: 'cpu', memoryFreeBytes: 1, memoryTotalBytes: 1 },
        {
          name: 'CUDA0',
          description: 'NVIDIA GeForce 940M',
          type: 'gpu',
          memoryFreeBytes: 2e8,
          memoryTotalBytes: 1e9,
          computeCapability: '5.0',
        },
      ],
    }),
  ).frame('ok');
  t.equal(f.server.backend, 'NVIDIA GeForce 940M (GPU)');
  t.equal(f.server.layersOffloaded, '27/27');
  t.equal(f.server.devices[1]?.computeCapability, '5.0');
});

t.test('devices are asked again only after devicesRefreshMs; a failing backend keeps the last list', async (t) => {
  let now = 0;
  let asked = 0;
  let fail = false;
  const source = new StatsSource(
    options({
      now: () => now,
      devicesRefreshMs: 5000,
      devices: () => {
        asked++;
        if (fail) throw new Error('backend gone');
        return [{ name: 'GPU', description: '', type: 'gpu', memoryFreeBytes: asked, memoryTotalBytes: 10 }];
      },
    }),
  );
  t.equal(source.frame('ok').server.devices[0]?.memoryFreeBytes, 1);
  now = 4999;
  t.equal(source.frame('ok').server.devices[0]?.memoryFreeBytes, 1, 'cached');
  now = 5000;
  t.equal(source.frame('ok').server.devices[0]?.memoryFreeBytes, 2, 'asked again');
  fail = true;
  now = 10_000;
  t.equal(source.frame('ok').server.devices[0]?.memoryFreeBytes, 2, 'the last list');
  t.equal(asked, 3);
});

t.test('without models (one model): no `models` in the frame', async (t) => {
  t.notOk('models' in new StatsSource(options()).frame('ok'));
});

t.test('router mode: each model with its status, slots and queue; the queue counts every model', async (t) => {
  const second: SlotSnapshot[] = [
    {
      id: 0,
      state: 'generating',
      cachedTokens: 5,
      request: { ...(slots[0]?.request as NonNullable<SlotSnapshot['request']>), id: 'req-3', startedAt: 1200 },
    },
  ];
  const f = new StatsSource(
    options({
      modelId: 'router',
      scheduler: () => undefined,
      model: () => undefined,
      models: () => [
        { id: 'broken', status: 'failed', requests: 0, slots: 0, ctxPerSlot: 0 },
        {
          id: 'a',
          status: 'loaded',
          requests: 5,
          slots: 3,
          ctxPerSlot: 512,
          scheduler: {
            snapshot: () => slots,
            queueLength: 3,
            queuedTokens: 60,
            queueByClient: () => [
              { client: 'ip:c', requests: 2, tokens: 50 },
              { client: 'ip:a', requests: 1, tokens: 10 },
            ],
          },
        },
        {
          id: 'b',
          status: 'loaded',
          requests: 2,
          slots: 1,
          ctxPerSlot: 1024,
          scheduler: {
            snapshot: () => second,
            queueLength: 1,
            queuedTokens: 7,
            queueByClient: () => [{ client: 'ip:d', requests: 1, tokens: 7 }],
          },
        },
        { id: 'c', status: 'sleeping', requests: 1, slots: 2, ctxPerSlot: 256 },
      ],
    }),
  ).frame('ok');
  t.same(f.slots, [], 'the router itself has no slots');
  t.same(
    f.models?.map((m) => [m.id, m.status, m.requests, m.slotCount, m.ctxPerSlot, m.slots.length, m.queue]),
    [
      ['broken', 'failed', 0, 0, 0, 0, { requests: 0, tokens: 0 }],
      ['a', 'loaded', 5, 3, 512, 3, { requests: 3, tokens: 60 }],
      ['b', 'loaded', 2, 1, 1024, 1, { requests: 1, tokens: 7 }],
      ['c', 'sleeping', 1, 2, 256, 0, { requests: 0, tokens: 0 }],
    ],
  );
  t.equal(f.models?.[1]?.slots[0]?.request?.runningMs, 500, "a's slots as SlotViews");
  t.equal(f.models?.[2]?.slots[0]?.request?.runningMs, 300, "b's slot on the same clock");
  t.same(f.queue, {
    requests: 4,
    tokens: 67,
    clients: [
      { client: 'ip:c', waiting: 2, waitingTokens: 50, running: 0 },
      { client: 'ip:a', waiting: 1, waitingTokens: 10, running: 2 },
      { client: 'ip:d', waiting: 1, waitingTokens: 7, running: 0 },
      { client: 'ip:b', waiting: 0, waitingTokens: 0, running: 1 },
    ],
  });
  t.equal(f.server.model, 'router');
});

t.test('clientShares: waiting clients in turn order, then those only running', async (t) => {
  t.same(clientShares([], []), []);
  t.same(clientShares([], slots), [
    { client: 'ip:a', waiting: 0, waitingTokens: 0, running: 1 },
    { client: 'ip:b', waiting: 0, waitingTokens: 0, running: 1 },
  ]);
});
