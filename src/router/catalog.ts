// Router mode's model catalog: the models a router serves, found as llama-server finds them at the vendored commit
// (vendor/llama.cpp/common/preset.cpp: load_from_models_dir, load_from_ini, cascade; tools/server/server-models.cpp:
// load_models, add_model; "Using multiple models" in tools/server/README.md). No Hugging Face cache: this server
// never downloads, so its sources are --models-dir and --models-preset.
//
// --models-dir DIR: each top-level *.gguf is a model named by its file name less `.gguf` (files whose name holds
// "mmproj", or starts with mtp-/dspark-/dflash-, are companions and skipped); each subdirectory is a model named by
// the directory, with its model file (the `-00001-of-` shard of a split set), a file whose name holds "mmproj", and a
// draft sidecar (mtp-/dspark-/dflash-); a subdirectory without a model file is skipped. Where llama-server takes
// whichever file the directory listing gives last, this reads names in sorted order (so: the last in that order).
//
// --models-preset FILE (preset-ini.ts reads the INI): each section is a model; `[*]` applies to every model, models-dir
// ones included, a section's values overriding it. A section named as a models-dir entry configures that entry (its
// values win over the directory's files; the entry's source becomes `preset`, as llama-server's). Keys are flag names
// without dashes, long or short (`n-gpu-layers`, `ngl`, `c`), or their variables (`LLAMA_ARG_CTX_SIZE`), looked up in
// the serve flag table (src/entry/config/). model/mmproj/model-draft/alias become entry fields, not argv; the keys the
// router owns (host, port, api-key(-file), ssl-*, models-*) are dropped, as llama-server drops them; download keys
// (hf-repo, hf-file, model-url, docker-repo, hf-repo-draft, mmproj-url) list the model with a `problem`; hf-token is
// dropped (it downloads nothing by itself); load-on-startup, stop-timeout and dedup-cache-models are preset-only. A key
// the table does not know is an error naming the file, line, section and key. Relative model paths are resolved
// against the working directory (llama-server: "file paths are relative to server's CWD"); paths inside argv values
// (--chat-template-file, ...) are left as written.
import { readdir, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { serveFlagSpecs } from '../entry/config/index.ts';
import { FlagError as ConfigError, type FlagSpec } from '../flags/parse.ts';
import { PRESET_DEFAULT_SECTION, PRESET_GLOBAL_SECTION, type PresetSection, parsePresetIni } from './preset-ini.ts';

export interface CatalogEntry {
  /** models-dir: the file name without `.gguf`, or the subdirectory's name; preset: the section name. */
  id: string;
  /** `preset` when a preset section names it (also when it merges into a models-dir entry), as llama-server. */
  source: 'models_dir' | 'preset';
  /** The model file, absolute (a split model's first shard); undefined when nothing names one. */
  path?: string;
  /** The multimodal projector, absolute. Note the serve flags refuse --mmproj (a text-only server). */
  mmproj?: string;
  /** The draft model (a subdirectory's mtp-/dspark-/dflash- sidecar, or the preset's model-draft), absolute. */
  draft?: string;
  /** The preset's `alias` (comma-separated), trimmed, empty ones and repeats dropped. */
  aliases: string[];
  /**
   * Flags for parseServeConfig, [*]'s then the section's, one per option (a section's value replaces [*]'s in its
   * place); long spellings (`--ctx-size 8192`, `--no-mmap`). Keys given as LLAMA_ARG_* variables are here too, so one
   * precedence holds. Without model/mmproj/draft/alias (the fields above) and the router's own flags.
   */
  argv: string[];
  /** Preset-only `load-on-startup` (default false). */
  loadOnStartup: boolean;
  /** Preset-only `stop-timeout`: seconds to wait after an unload before forcing it (default 10). */
  stopTimeoutSeconds: number;
  /** Why this entry cannot be loaded (it is still listed, as llama-server lists it). */
  problem?: string;
}

export interface CatalogOptions {
  /** --models-dir. */
  modelsDir?: string;
  /** --models-preset. */
  modelsPreset?: string;
  /** What relative paths (the two above, model paths in the preset) are relative to (default process.cwd()). */
  cwd?: string;
}

/** llama-server's DEFAULT_STOP_TIMEOUT. */
export const DEFAULT_STOP_TIMEOUT_SECONDS = 10;

/** Draft sidecars in a models-dir subdirectory (preset.cpp's draft_prefixes). */
const DRAFT_PREFIXES = ['mtp-', 'dspark-', 'dflash-'];

const isMmprojFile = (name: string): boolean => name.includes('mmproj');
const isDraftFile = (name: string): boolean => DRAFT_PREFIXES.some((p) => name.startsWith(p));

const NO_DOWNLOADS = 'this server never downloads models: give `model = /path/file.gguf`';

/** Keys that name a download (dashless spellings and variables, from vendor/llama.cpp/common/arg.cpp). */
const DOWNLOAD_KEYS: readonly (readonly string[])[] = [
  ['hf', 'hfr', 'hf-repo', 'LLAMA_ARG_HF_REPO'],
  ['hff', 'hf-file', 'LLAMA_ARG_HF_FILE'],
  ['mu', 'model-url', 'LLAMA_ARG_MODEL_URL'],
  ['dr', 'docker-repo', 'LLAMA_ARG_DOCKER_REPO'],
  ['hfd', 'hfrd', 'spec-draft-hf', 'hf-repo-draft', 'LLAMA_ARG_SPEC_DRAFT_HF_REPO'],
  ['mmu', 'mmproj-url', 'LLAMA_ARG_MMPROJ_URL'],
];
const DROPPED_KEYS = new Set(['hft', 'hf-token', 'HF_TOKEN']);

/** The router's own settings (llama-server's unset_reserved_args, plus host/port/api-key-file). */
const RESERVED_FLAGS = new Set([
  '--host',
  '--port',
  '--api-key',
  '--api-key-file',
  '--ssl-key-file',
  '--ssl-cert-file',
  '--models-dir',
  '--models-preset',
  '--models-max',
  '--models-autoload',
]);
/** Their variables that the serve table does not list (it refuses the models-* flags and names no variable). */
const RESERVED_ENV = new Set([
  'LLAMA_ARG_MODELS_DIR',
  'LLAMA_ARG_MODELS_PRESET',
  'LLAMA_ARG_MODELS_MAX',
  'LLAMA_ARG_MODELS_AUTOLOAD',
  'LLAMA_ARG_NO_MODELS_AUTOLOAD',
]);

type Field = 'path' | 'mmproj' | 'draft' | 'aliases';
/** Flags that become entry fields, by a spelling in the serve table (mmproj has no variable there). */
const FIELD_FLAGS: Readonly<Record<string, Field>> = {
  '--model': 'path',
  '--mmproj': 'mmproj',
  '--model-draft': 'draft',
  '--alias': 'aliases',
};
const FIELD_ENV: Readonly<Record<string, Field>> = { LLAMA_ARG_MMPROJ: 'mmproj' };
const PRESET_ONLY = new Set(['load-on-startup', 'stop-timeout', 'dedup-cache-models']);

/** One option of a model, keyed by what it sets (so `c` and `ctx-size` are one option, the later winning). */
type Option =
  | { kind: 'flag'; spec: FlagSpec; name: string; value: string | boolean; key: string }
  | { kind: 'field'; field: Field; value: string }
  | { kind: 'preset'; value: string }
  | { kind: 'download'; key: string };
type Options = Map<string, Option>;

type Resolved =
  | { kind: 'flag'; spec: FlagSpec; negated: boolean }
  | { kind: 'field'; field: Field }
  | { kind: 'preset' | 'download'; id: string }
  | { kind: 'drop' };

const dashless = (name: string): string => name.replace(/^-+/, '');

let keyTable: Map<string, Resolved> | undefined;

/** Every key a preset may use, to what it sets. */
function presetKeys(): Map<string, Resolved> {
  if (keyTable) return keyTable;
  const table = new Map<string, Resolved>();
  for (const spec of serveFlagSpecs() as readonly FlagSpec[]) {
    const field = spec.names.map((n) => FIELD_FLAGS[n]).find((f) => f !== undefined);
    const reserved = spec.names.some((n) => RESERVED_FLAGS.has(n));
    const as = (negated: boolean): Resolved =>
      reserved ? { kind: 'drop' } : field ? { kind: 'field', field } : { kind: 'flag', spec, negated };
    for (const n of spec.names) table.set(dashless(n), as(false));
    for (const n of spec.negated ?? []) table.set(dashless(n), as(true));
    if (spec.env) table.set(spec.env, as(false));
    // As llama-server's get_env: a negatable switch also answers to LLAMA_ARG_NO_<NAME> (here, true meaning off).
    if (spec.env && spec.negated?.length) table.set(spec.env.replace(/^LLAMA_ARG_/, 'LLAMA_ARG_NO_'), as(true));
  }
  for (const [env, field] of Object.entries(FIELD_ENV)) table.set(env, { kind: 'field', field });
  for (const env of RESERVED_ENV) table.set(env, { kind: 'drop' });
  for (const keys of DOWNLOAD_KEYS) for (const k of keys) table.set(k, { kind: 'download', id: keys.at(-2) ?? k });
  for (const k of DROPPED_KEYS) table.set(k, { kind: 'drop' });
  for (const k of PRESET_ONLY) table.set(k, { kind: 'preset', id: k });
  keyTable = table;
  return table;
}

const TRUE = new Set(['1', 'true', 'on', 'yes', 'enabled']);
const FALSE = new Set(['0', 'false', 'off', 'no', 'disabled']);

/** A section's keys as options. Throws for an unknown key or a switch that is not true or false. */
function sectionOptions(section: PresetSection, file: string): Options {
  const options: Options = new Map();
  for (const { key, value, line } of section.entries) {
    if (key === 'version') continue; // reserved by llama-server
    const where = `${file}:${line}: [${section.name}]`;
    const r = presetKeys().get(key);
    if (!r)
      throw new ConfigError(
        `${where}: unknown option '${key}' (a flag without its dashes, as ctx-size or c, or its LLAMA_ARG_* variable)`,
      );
    switch (r.kind) {
      case 'drop':
        break;
      case 'field':
        options.set(`field:${r.field}`, { kind: 'field', field: r.field, value });
        break;
      case 'preset':
        options.set(`preset:${r.id}`, { kind: 'preset', value });
        break;
      case 'download':
        options.set(`download:${r.id}`, { kind: 'download', key });
        break;
      case 'flag': {
        let v: string | boolean = value;
        if (r.spec.kind === 'bool') {
          const lower = value.toLowerCase();
          if (!TRUE.has(lower) && !FALSE.has(lower))
            throw new ConfigError(`${where}: ${key} must be true or false, got '${value}'`);
          v = TRUE.has(lower) !== r.negated;
        }
        // llama-server writes an option's last (long) spelling. The table gives flags it only warns about or refuses
        // a spec per group (`--lora`, `--lora-scaled`): those keep the spelling typed, and one option per spelling.
        const typed = r.spec.key === undefined ? r.spec.names.find((n) => dashless(n) === key) : undefined;
        const name = typed ?? r.spec.names.at(-1) ?? '';
        options.set(`flag:${name}`, { kind: 'flag', spec: r.spec, name, value: v, key });
        break;
      }
    }
  }
  return options;
}

/** preset.cpp's cascade and merge: `base`'s options, then `added`'s over them. */
const merged = (base: Options, added: Options): Options => {
  const out = new Map(base);
  for (const [id, o] of added) out.set(id, o);
  return out;
};

interface LocalModel {
  name: string;
  path: string;
  mmproj?: string;
  draft?: string;
}

const byCodeUnit = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

async function statOrUndefined(p: string) {
  try {
    return await stat(p);
  } catch {
    return undefined;
  }
}

/** preset.cpp's load_from_models_dir (scan_subdir included), in sorted name order. */
async function scanModelsDir(dir: string): Promise<LocalModel[]> {
  const st = await statOrUndefined(dir);
  if (!st?.isDirectory()) throw new ConfigError(`--models-dir '${dir}' does not exist or is not a directory`);
  const models: LocalModel[] = [];
  for (const name of (await readdir(dir)).sort(byCodeUnit)) {
    const full = path.join(dir, name);
    const s = await statOrUndefined(full);
    if (s?.isDirectory()) {
      let model: string | undefined;
      let firstShard: string | undefined;
      let mmproj: string | undefined;
      let draft: string | undefined;
      for (const f of (await readdir(full)).sort(byCodeUnit)) {
        if (!f.endsWith('.gguf') || !(await statOrUndefined(path.join(full, f)))?.isFile()) continue;
        const p = path.join(full, f);
        if (isMmprojFile(f)) mmproj = p;
        else if (isDraftFile(f))
          draft ??= p; // the first sidecar wins
        else if (f.includes('-00001-of-')) firstShard = p;
        else model = p;
      }
      const file = firstShard ?? model;
      if (file)
        models.push({
          name,
          path: file,
          ...(mmproj !== undefined && { mmproj }),
          ...(draft !== undefined && { draft }),
        });
    } else if (s?.isFile() && name.endsWith('.gguf') && !isMmprojFile(name) && !isDraftFile(name)) {
      models.push({ name: name.replaceAll('.gguf', ''), path: full });
    }
  }
  return models;
}

function localOptions(m: LocalModel): Options {
  const options: Options = new Map();
  options.set('field:path', { kind: 'field', field: 'path', value: m.path });
  if (m.mmproj !== undefined) options.set('field:mmproj', { kind: 'field', field: 'mmproj', value: m.mmproj });
  if (m.draft !== undefined) options.set('field:draft', { kind: 'field', field: 'draft', value: m.draft });
  return options;
}

const isTruthy = (v: string): boolean => TRUE.has(v.toLowerCase());

function toEntry(id: string, source: CatalogEntry['source'], options: Options, cwd: string): CatalogEntry {
  const fields: Partial<Record<Field, string>> = {};
  const argv: string[] = [];
  const problems: string[] = [];
  const preset = new Map<string, string>();
  for (const [key, o] of options) {
    if (o.kind === 'field') fields[o.field] = o.value;
    else if (o.kind === 'preset') preset.set(key.slice('preset:'.length), o.value);
    else if (o.kind === 'download') problems.push(`\`${o.key}\`: ${NO_DOWNLOADS}`);
    else {
      const { spec, name, value } = o;
      let rendered = true;
      if (value === true) argv.push(name);
      else if (value !== false) argv.push(name, value);
      else if (spec.negated?.length) argv.push(spec.negated.at(-1) ?? '');
      else rendered = false; // a switch with no negation: false is its default
      if (rendered && spec.refused) problems.push(`\`${o.key}\` is not supported by this server: ${spec.refused}`);
    }
  }
  const file = (v: string | undefined): string | undefined => (v ? path.resolve(cwd, v) : undefined);
  const modelPath = file(fields.path);
  if (modelPath === undefined) problems.unshift(`no model file: give \`model = /path/file.gguf\` in [${id}]`);
  const mmproj = file(fields.mmproj);
  const draft = file(fields.draft);
  const stopTimeout = Number.parseInt(preset.get('stop-timeout') ?? '', 10);
  return {
    id,
    source,
    ...(modelPath !== undefined && { path: modelPath }),
    ...(mmproj !== undefined && { mmproj }),
    ...(draft !== undefined && { draft }),
    aliases: [
      ...new Set(
        (fields.aliases ?? '')
          .split(',')
          .map((a) => a.trim())
          .filter(Boolean),
      ),
    ],
    argv,
    loadOnStartup: isTruthy(preset.get('load-on-startup') ?? ''),
    stopTimeoutSeconds: Number.isFinite(stopTimeout) ? stopTimeout : DEFAULT_STOP_TIMEOUT_SECONDS,
    ...(problems.length > 0 && { problem: problems.join('; ') }),
  };
}

/** server-models.cpp's add_model checks: no name or alias may be another model's name or alias. */
function checkNames(entries: readonly CatalogEntry[]): void {
  for (const [i, e] of entries.entries()) {
    for (const other of entries.slice(0, i)) {
      if (other.aliases.includes(e.id))
        throw new ConfigError(`model name '${e.id}' conflicts with an alias of model '${other.id}'`);
      for (const alias of e.aliases) {
        if (alias === other.id)
          throw new ConfigError(`alias '${alias}' of model '${e.id}' conflicts with an existing model name`);
        if (other.aliases.includes(alias))
          throw new ConfigError(`alias '${alias}' of model '${e.id}' conflicts with an alias of model '${other.id}'`);
      }
    }
  }
}

/**
 * The models a router serves, sorted by id: --models-dir's, then --models-preset's sections over them with [*]
 * under both (server-models.cpp's load_models). Throws a ConfigError (src/flags/parse.ts' FlagError) for a missing
 * models dir or preset file, a preset that does not parse, an unknown key, and clashing names or aliases; a model
 * that is listed but cannot be loaded has `problem`.
 */
export async function loadCatalog(o: CatalogOptions): Promise<CatalogEntry[]> {
  const cwd = o.cwd ?? process.cwd();
  const local = new Map<string, Options>();
  if (o.modelsDir !== undefined)
    for (const m of await scanModelsDir(path.resolve(cwd, o.modelsDir))) local.set(m.name, localOptions(m));

  let global: Options = new Map();
  const custom = new Map<string, Options>();
  if (o.modelsPreset !== undefined) {
    const file = path.resolve(cwd, o.modelsPreset);
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (err) {
      throw new ConfigError(`--models-preset '${file}' cannot be read: ${(err as Error).message}`);
    }
    for (const section of parsePresetIni(text, file)) {
      const options = sectionOptions(section, file);
      if (section.name === PRESET_DEFAULT_SECTION && options.size === 0) continue;
      if (section.name === PRESET_GLOBAL_SECTION) global = options;
      else custom.set(section.name, options);
    }
  }

  const final = new Map<string, { options: Options; source: CatalogEntry['source'] }>();
  for (const [name, options] of local) final.set(name, { options: merged(global, options), source: 'models_dir' });
  for (const [name, options] of custom) {
    const withGlobal = merged(global, options);
    const base = final.get(name);
    final.set(name, { options: base ? merged(base.options, withGlobal) : withGlobal, source: 'preset' });
  }
  const entries = [...final]
    .sort(([a], [b]) => byCodeUnit(a, b))
    .map(([id, { options, source }]) => toEntry(id, source, options, cwd));
  checkNames(entries);
  return entries;
}
