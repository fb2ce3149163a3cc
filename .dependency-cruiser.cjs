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
      name: 'shared-modules-are-leaves',
      severity: 'error',
      comment:
        'The typed errors, the paths and the progress line are shared by every layer, so they import nothing of src/.',
      from: { path: '^src/(errors|paths|progress)\\.ts$' },
      to: { path: '^src/' },
    },
    {
      name: 'gguf-is-a-leaf',
      severity: 'error',
      comment:
        'The GGUF library reads, writes and generates F16 files; quantizing (the engine) is src/tools/make-model.ts.',
      from: { path: '^src/gguf/' },
      to: { path: '^src/', pathNot: ['^src/gguf/', '^src/util/', '^src/(errors|paths)\\.ts$'] },
    },
    {
      name: 'flags-at-the-bottom',
      severity: 'error',
      comment: 'The flag layer every command uses parses and prints; it knows no command.',
      from: { path: '^src/flags/' },
      to: { path: '^src/', pathNot: ['^src/flags/', '^src/util/'] },
    },
    {
      name: 'fit-reads-files-only',
      severity: 'error',
      comment: 'The VRAM planner works from the GGUF file and its own arithmetic: no engine, no server.',
      from: { path: '^src/fit/' },
      to: { path: '^src/', pathNot: ['^src/fit/', '^src/gguf/', '^src/flags/', '^src/util/', '^src/errors\\.ts$'] },
    },
    {
      name: 'tools-make-models',
      severity: 'error',
      comment: 'make-model and the model cache: the GGUF library, and the engine to quantize.',
      from: { path: '^src/tools/' },
      to: {
        path: '^src/',
        pathNot: [
          '^src/tools/',
          '^src/gguf/',
          '^src/engine/index\\.ts$',
          '^src/flags/',
          '^src/util/',
          '^src/(errors|paths|progress)\\.ts$',
        ],
      },
    },
    {
      name: 'loadgen-is-http-only',
      severity: 'error',
      comment:
        'The load generator is a client: it reaches a server over HTTP only, so it runs where no model or addon is (MPI ranks).',
      from: { path: '^src/bench/loadgen/' },
      to: { path: '^src/', pathNot: ['^src/bench/loadgen/', '^src/flags/', '^src/util/', '^src/progress\\.ts$'] },
    },
    {
      name: 'benches-use-the-engine-or-http',
      severity: 'error',
      comment:
        "The in-process benches drive the engine through its index; the others a server through the load generator. Neither reaches into the scheduler, the server's routes or the metrics.",
      from: { path: '^src/bench/', pathNot: '^src/bench/loadgen/' },
      to: {
        path: '^src/',
        pathNot: [
          '^src/bench/',
          '^src/engine/index\\.ts$',
          '^src/entry/config/',
          '^src/fuzz/',
          '^src/server/options\\.ts$',
          '^src/tools/',
          '^src/flags/',
          '^src/util/',
          '^src/(errors|paths|progress)\\.ts$',
        ],
      },
    },
    {
      name: 'fuzz-drives-the-assembled-server',
      severity: 'error',
      comment:
        "The fuzzer generates requests from the server's schemas and sends them to the server the entry assembles (or one over HTTP).",
      from: { path: '^src/fuzz/' },
      to: {
        path: '^src/',
        pathNot: [
          '^src/fuzz/',
          '^src/server/',
          '^src/entry/assemble\\.ts$',
          '^src/engine/index\\.ts$',
          '^src/tools/',
          '^src/flags/',
          '^src/util/',
          '^src/(errors|paths|progress)\\.ts$',
        ],
      },
    },
    {
      name: 'replicas-supervise-processes',
      severity: 'error',
      comment:
        "The replica supervisor starts server processes with the serve flags and routes by the server's client key; it loads no model.",
      from: { path: '^src/replicas/' },
      to: {
        path: '^src/',
        pathNot: [
          '^src/replicas/',
          '^src/entry/config/',
          '^src/engine/index\\.ts$',
          '^src/server/client-key\\.ts$',
          '^src/tools/',
          '^src/flags/',
          '^src/util/',
          '^src/(errors|paths|progress)\\.ts$',
        ],
      },
    },
    {
      name: 'docs-from-the-flags',
      severity: 'error',
      comment: "The generated tables of docs/ come from the serve flags and the HTTP layer's defaults.",
      from: { path: '^src/docs/' },
      to: {
        path: '^src/',
        pathNot: [
          '^src/docs/',
          '^src/entry/config/',
          '^src/server/(options|limits)\\.ts$',
          '^src/util/',
          '^src/paths\\.ts$',
        ],
      },
    },
    {
      name: 'entry-is-the-top',
      severity: 'error',
      comment:
        'Nothing imports the entry wing but its serve flags (src/entry/config/: replicas, docs, benches) and the one server factory (assemble.ts: the fuzzer, the test harnesses).',
      from: { path: '^src/', pathNot: '^src/entry/' },
      to: { path: '^src/entry/', pathNot: ['^src/entry/config/', '^src/entry/assemble\\.ts$'] },
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
