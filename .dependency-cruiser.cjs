// The layers of docs/ARCHITECTURE.md as rules: a wrong-way import fails `npm run lint` (and CI).
// Type-only imports count (tsPreCompilationDeps): a contract is a dependency too.
/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    {
      name: 'no-circular',
      severity: 'error',
      comment: 'No import cycles, type-only ones included.',
      from: {},
      to: { circular: true },
    },
    {
      name: 'scheduler-is-policy',
      severity: 'error',
      comment: 'The scheduler owns its contracts (decoder.ts, types.ts) and depends on nothing but the shared errors.',
      from: { path: '^src/scheduler/' },
      to: { path: '^src/', pathNot: ['^src/scheduler/', '^src/errors\\.ts$'] },
    },
    {
      name: 'engine-implements-its-contracts',
      severity: 'error',
      comment:
        "The engine sees the layers above it only through the contracts it implements: the scheduler's Decoder, the server's chat layer.",
      from: { path: '^src/engine/' },
      to: {
        path: '^src/',
        pathNot: [
          '^src/engine/',
          '^src/errors\\.ts$',
          '^src/paths\\.ts$',
          '^src/gguf/(reader|metadata|types)\\.ts$',
          '^src/scheduler/decoder\\.ts$',
          '^src/server/chat/layer\\.ts$',
        ],
      },
    },
    {
      name: 'server-sees-contracts',
      severity: 'error',
      comment:
        "The HTTP layer sees the scheduler's contracts and its own types: never the engine, the metrics or the entry point.",
      from: { path: '^src/server/' },
      to: {
        path: '^src/',
        pathNot: ['^src/server/', '^src/scheduler/(types|decoder)\\.ts$', '^src/errors\\.ts$', '^src/paths\\.ts$'],
      },
    },
    {
      name: 'metrics-observe-contracts',
      severity: 'error',
      comment: "Metrics implement the server's and the scheduler's observer contracts; they see nothing else.",
      from: { path: '^src/metrics/' },
      to: {
        path: '^src/',
        pathNot: ['^src/metrics/', '^src/server/(deps|stats-frame)\\.ts$', '^src/scheduler/types\\.ts$', '^src/util/'],
      },
    },
    {
      name: 'util-is-a-leaf',
      severity: 'error',
      from: { path: '^src/util/' },
      to: { path: '^src/', pathNot: '^src/util/' },
    },
    {
      name: 'web-page-shares-only-the-frame',
      severity: 'error',
      comment: 'The browser bundle may share the stats frame declarations, nothing of the server.',
      from: { path: '^web/' },
      to: { path: '^src/', pathNot: '^src/server/stats-frame\\.ts$' },
    },
    {
      name: 'no-tests-in-src',
      severity: 'error',
      from: { path: '^(src|web)/' },
      to: { path: '^test/' },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    exclude: { path: '(^|/)(node_modules|vendor|dist|build-cmake|build-tools)/' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: { extensions: ['.ts', '.tsx', '.mts', '.js', '.mjs', '.json'] },
    moduleSystems: ['es6', 'cjs'],
  },
};
