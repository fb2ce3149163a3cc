import path from 'node:path';
import t from 'tap';
import { ConfigError, parseServeConfig } from '../../src/entry/config/index.ts';
import { loadCatalog } from '../../src/router/catalog.ts';
import { parsePresetIni } from '../../src/router/preset-ini.ts';

const GGUF = 'not a real gguf';

t.test('models-dir: single files, a multimodal subdirectory, a split model, companions skipped', async (t) => {
  const dir = t.testdir({
    models: {
      'llama-3.2-1b-Q4_K_M.gguf': GGUF,
      'Qwen3-8B-Q4_K_M.gguf': GGUF,
      'mmproj-F16.gguf': GGUF, // a companion at the top: not a model
      'mtp-Qwen3-8B.gguf': GGUF, // a draft sidecar at the top: not a model
      'notes.txt': 'not a model',
      'gemma-3-4b-it-Q8_0': { 'gemma-3-4b-it-Q8_0.gguf': GGUF, 'mmproj-F16.gguf': GGUF, 'README.md': '' },
      'Kimi-K2-UD-IQ1_S': {
        'Kimi-K2-UD-IQ1_S-00002-of-00003.gguf': GGUF,
        'Kimi-K2-UD-IQ1_S-00001-of-00003.gguf': GGUF,
        'Kimi-K2-UD-IQ1_S-00003-of-00003.gguf': GGUF,
      },
      'qwen-mtp': { 'qwen.gguf': GGUF, 'mtp-qwen.gguf': GGUF, 'dflash-qwen.gguf': GGUF },
      'only-mmproj': { 'mmproj-x.gguf': GGUF }, // no model file: skipped
    },
  });
  const models = path.join(dir, 'models');
  const entries = await loadCatalog({ modelsDir: 'models', cwd: dir });
  t.same(
    entries.map((e) => e.id),
    ['Kimi-K2-UD-IQ1_S', 'Qwen3-8B-Q4_K_M', 'gemma-3-4b-it-Q8_0', 'llama-3.2-1b-Q4_K_M', 'qwen-mtp'],
  );
  const byId = new Map(entries.map((e) => [e.id, e]));
  t.strictSame(byId.get('Qwen3-8B-Q4_K_M'), {
    id: 'Qwen3-8B-Q4_K_M',
    source: 'models_dir',
    path: path.join(models, 'Qwen3-8B-Q4_K_M.gguf'),
    aliases: [],
    argv: [],
    loadOnStartup: false,
    stopTimeoutSeconds: 10,
  });
  const gemma = byId.get('gemma-3-4b-it-Q8_0');
  t.equal(gemma?.path, path.join(models, 'gemma-3-4b-it-Q8_0', 'gemma-3-4b-it-Q8_0.gguf'));
  t.equal(gemma?.mmproj, path.join(models, 'gemma-3-4b-it-Q8_0', 'mmproj-F16.gguf'));
  t.equal(gemma?.draft, undefined);
  t.equal(
    byId.get('Kimi-K2-UD-IQ1_S')?.path,
    path.join(models, 'Kimi-K2-UD-IQ1_S', 'Kimi-K2-UD-IQ1_S-00001-of-00003.gguf'),
  );
  const qwen = byId.get('qwen-mtp');
  t.equal(qwen?.path, path.join(models, 'qwen-mtp', 'qwen.gguf'));
  t.equal(qwen?.draft, path.join(models, 'qwen-mtp', 'dflash-qwen.gguf'), 'the first sidecar by name');
  t.notOk(entries.some((e) => e.problem));
});

t.test('a missing or non-directory models-dir is an error naming it', async (t) => {
  const dir = t.testdir({ 'file.gguf': GGUF });
  await t.rejects(loadCatalog({ modelsDir: 'nope', cwd: dir }), {
    name: 'FlagError',
    message: `--models-dir '${path.join(dir, 'nope')}' does not exist or is not a directory`,
  });
  await t.rejects(loadCatalog({ modelsDir: path.join(dir, 'file.gguf') }), { message: /file\.gguf' does not exist/ });
  t.ok(new ConfigError('x') instanceof Error);
});

const PRESET = `version = 1

; shared by every model
[*]
c = 8192
n-gpu-layers = 8
mlock = true
port = 9999        ; the router's: dropped
api-key = secret

# a section overriding [*]
[Qwen2.5-7B-Instruct]
model = ./qwen/Qwen2.5-7B-Instruct-Q4_K_M.gguf
ngl = 99
mlock = false
mmap = false
jinja = on
LLAMA_ARG_CACHE_RAM = 0
LLAMA_ARG_NO_CONTEXT_SHIFT = 1
alias = qwen, qwen2.5 ,
model-draft = /abs/draft.gguf
load-on-startup = true
stop-timeout = 30

[gemma]
ctx-size = 2048
mmproj = mm.gguf

[hf-model]
hf-repo = ggml-org/gemma-3-4b-it-GGUF:Q4_K_M

[empty]
`;

t.test('a preset: [*], sections over it, short and variable keys, switches, fields, merging, problems', async (t) => {
  const dir = t.testdir({
    'models.ini': PRESET,
    models: { gemma: { 'gemma.gguf': GGUF }, 'tiny.gguf': GGUF },
  });
  const entries = await loadCatalog({ modelsDir: 'models', modelsPreset: 'models.ini', cwd: dir });
  t.same(
    entries.map((e) => e.id),
    ['Qwen2.5-7B-Instruct', 'empty', 'gemma', 'hf-model', 'tiny'],
    'sorted; a dotted section name kept whole',
  );
  const byId = new Map(entries.map((e) => [e.id, e]));
  t.strictSame(byId.get('Qwen2.5-7B-Instruct'), {
    id: 'Qwen2.5-7B-Instruct',
    source: 'preset',
    path: path.join(dir, 'qwen', 'Qwen2.5-7B-Instruct-Q4_K_M.gguf'),
    draft: '/abs/draft.gguf',
    aliases: ['qwen', 'qwen2.5'],
    // [*]'s options in their places, the section's values over them; a switch without --no- is left out when false.
    argv: [
      '--ctx-size',
      '8192',
      '--n-gpu-layers',
      '99',
      '--no-mmap',
      '--jinja',
      '--cache-ram',
      '0',
      '--no-context-shift',
    ],
    loadOnStartup: true,
    stopTimeoutSeconds: 30,
  });
  // The argv is what the serve flags take.
  const config = parseServeConfig(byId.get('Qwen2.5-7B-Instruct')?.argv ?? [], {});
  t.equal(config.ctxSize, 8192);
  t.equal(config.gpuLayers, 99);
  t.equal(config.mmap, false);
  t.equal(config.mlock, false);
  t.equal(config.contextShift, false);
  t.equal(config.cacheRamMiB, 0);

  // A section named as a models-dir entry configures it: the directory's file, the section's options.
  const gemma = byId.get('gemma');
  t.equal(gemma?.source, 'preset');
  t.equal(gemma?.path, path.join(dir, 'models', 'gemma', 'gemma.gguf'));
  t.equal(gemma?.mmproj, path.join(dir, 'mm.gguf'), 'relative to cwd');
  t.same(gemma?.argv, ['--ctx-size', '2048', '--n-gpu-layers', '8', '--mlock']);
  t.equal(gemma?.problem, undefined);

  // [*] reaches models-dir entries no section names.
  t.same(byId.get('tiny')?.argv, ['--ctx-size', '8192', '--n-gpu-layers', '8', '--mlock']);
  t.equal(byId.get('tiny')?.source, 'models_dir');

  t.equal(byId.get('hf-model')?.path, undefined);
  t.match(
    byId.get('hf-model')?.problem,
    /`hf-repo`: this server never downloads models: give `model = \/path\/file.gguf`/,
  );
  t.match(byId.get('empty')?.problem, /^no model file: give `model = \/path\/file.gguf` in \[empty\]$/);
});

t.test('preset keys: bad ones are errors naming the file, line, section and key', async (t) => {
  const dir = t.testdir({
    'unknown.ini': '[*]\nc = 1\n[my-model]\nmodel = /m.gguf\nfrobnicate = 3\n',
    'badbool.ini': '[m]\nmodel = /m.gguf\nmlock = maybe\n',
    'syntax.ini': '[m]\nmodel /m.gguf\n',
    'refused.ini': '[m]\nmodel = /m.gguf\nlora = /a.gguf\n',
    'alias.ini': '[a]\nmodel = /a.gguf\nalias = b\n[b]\nmodel = /b.gguf\n',
  });
  const file = (name: string): string => path.join(dir, name);
  await t.rejects(loadCatalog({ modelsPreset: 'unknown.ini', cwd: dir }), {
    message: `${file('unknown.ini')}:5: [my-model]: unknown option 'frobnicate' (a flag without its dashes, as ctx-size or c, or its LLAMA_ARG_* variable)`,
  });
  await t.rejects(loadCatalog({ modelsPreset: 'badbool.ini', cwd: dir }), {
    message: `${file('badbool.ini')}:3: [m]: mlock must be true or false, got 'maybe'`,
  });
  await t.rejects(loadCatalog({ modelsPreset: 'syntax.ini', cwd: dir }), { message: /syntax\.ini:2: expected/ });
  await t.rejects(loadCatalog({ modelsPreset: 'missing.ini', cwd: dir }), { message: /missing\.ini' cannot be read/ });
  await t.rejects(loadCatalog({ modelsPreset: 'alias.ini', cwd: dir }), {
    message: "model name 'b' conflicts with an alias of model 'a'",
  });
  // A flag this server refuses: listed, with the reason.
  const [m] = await loadCatalog({ modelsPreset: 'refused.ini', cwd: dir });
  t.match(m?.problem, /^`lora` is not supported by this server: LoRA adapters are not offered$/);
  t.same(m?.argv, ['--lora', '/a.gguf']);
});

t.test('parsePresetIni: comments, top-level keys, repeats, canonical tags', async (t) => {
  const text = [
    'version = 1',
    '# comment',
    '  ; indented comment',
    '',
    '[ ggml-org/gemma-3-4b-it-GGUF:q4_k_m ]  ; trailing comment',
    'c = 4096 ; inline comment',
    'chat-template=chatml#no blank needed',
    'c = 8192',
    '[repo:UD-q4_k_xl]',
    '[dup]',
    'a = 1',
    '[dup]',
    'b = 2\r',
    'empty =',
  ].join('\n');
  t.strictSame(parsePresetIni(text, 'x.ini'), [
    { name: 'default', line: 0, entries: [{ key: 'version', value: '1', line: 1 }] },
    {
      name: 'ggml-org/gemma-3-4b-it-GGUF:Q4_K_M',
      line: 5,
      entries: [
        { key: 'chat-template', value: 'chatml', line: 7 },
        { key: 'c', value: '8192', line: 8 },
      ],
    },
    { name: 'repo:Q4_K_XL', line: 9, entries: [] },
    {
      name: 'dup',
      line: 12,
      entries: [
        { key: 'b', value: '2', line: 13 },
        { key: 'empty', value: '', line: 14 },
      ],
    },
  ]);
  t.throws(() => parsePresetIni('[]\n', 'x.ini'), { message: "x.ini:1: a section needs a name: '[]'" });
  t.throws(() => parsePresetIni('a\n', 'x.ini'), { message: /x\.ini:1: expected/ });
});
