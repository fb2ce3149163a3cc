// The INI dialect of llama-server's --models-preset file, as vendor/llama.cpp/common/preset.cpp
// (parse_ini_from_file, load_from_ini) reads it. Pure: text in, sections out; what the keys mean is catalog.ts'.
//
// Our own parser, not the npm `ini` package: that one splits section names on dots into nested objects, and preset
// sections are model names full of dots (`[Qwen2.5-7B-Instruct]`, `[ggml-org/gemma-3-4b-it-GGUF:Q4_K_M]`).
//
// The dialect, line by line:
//   blank lines, and comments starting with `;` or `#`
//   `[name]`            a section; `[*]` is the one every model inherits. A name ending in `:tag` has its tag
//                       made canonical as llama-server does (`:q4_k_m` -> `:Q4_K_M`, `:UD-Q4_K_XL` -> `:Q4_K_XL`)
//   `key = value`       key: [A-Za-z_][A-Za-z0-9_.-]*; the value runs to the first `;` or `#` (an inline comment,
//                       so neither can appear in a value), trailing blanks dropped; no quoting, no continuation
// Keys before any section belong to the section `default` (llama-server's COMMON_PRESET_DEFAULT_NAME); `version`
// there is reserved and the catalog skips it. A section given twice keeps only its last block, and a key given
// twice in a section its last value (both as llama-server). Anything else is an error naming the file and line.
// Leniencies: leading blanks before a key or `[` and blanks inside `[ name ]` are allowed (llama-server keeps a
// trailing blank in the name and refuses an indented key).
import { FlagError as ConfigError } from '../flags/parse.ts';

/** The section that keys before the first `[...]` belong to. */
export const PRESET_DEFAULT_SECTION = 'default';
/** The section every model inherits. */
export const PRESET_GLOBAL_SECTION = '*';

export interface PresetEntry {
  key: string;
  value: string;
  /** 1-based line in the file. */
  line: number;
}

export interface PresetSection {
  name: string;
  /** 1-based line of its `[name]` header (0 for `default`'s keys before any header). */
  line: number;
  /** In file order, one per key (a repeated key keeps its last value, at its last line). */
  entries: PresetEntry[];
}

const HEADER = /^[ \t]*\[[ \t]*([^\]]*?)[ \t]*\][ \t]*(?:[;#].*)?$/;
const KEY_VALUE = /^[ \t]*([A-Za-z_][A-Za-z0-9_.-]*)[ \t]*=[ \t]*(.*)$/;
const BLANK_OR_COMMENT = /^[ \t]*(?:[;#].*)?$/;

/** llama-server's canonical_tag: the tag's last `-`/`.`-separated part, upper-cased (`UD-q4_k_xl` -> `Q4_K_XL`). */
function canonicalTag(tag: string): string {
  const m = /[-.]([A-Z0-9_]+)$/i.exec(tag);
  return (m?.[1] ?? tag).toUpperCase();
}

/** A section name as llama-server keys it: `repo:tag` with the tag canonical; `*` and `default` as they are. */
export function canonicalSectionName(name: string): string {
  if (name === PRESET_GLOBAL_SECTION || name === PRESET_DEFAULT_SECTION) return name;
  const colon = name.lastIndexOf(':');
  return colon < 0 ? name : name.slice(0, colon + 1) + canonicalTag(name.slice(colon + 1));
}

/**
 * Parses a preset file's text into its sections, in the order they first appear (`default` first when keys come
 * before any header). `file` only names the file in errors.
 */
export function parsePresetIni(text: string, file: string): PresetSection[] {
  const sections = new Map<string, PresetSection>();
  let current: PresetSection | undefined;
  const lines = text.replace(/^\uFEFF/, '').split(/\r\n|\n|\r/);
  lines.forEach((raw, i) => {
    const line = i + 1;
    if (BLANK_OR_COMMENT.test(raw)) return;
    const header = HEADER.exec(raw);
    if (header) {
      const given = header[1] ?? '';
      if (given === '') throw new ConfigError(`${file}:${line}: a section needs a name: '${raw.trim()}'`);
      const name = canonicalSectionName(given);
      current = { name, line, entries: [] };
      sections.set(name, current); // a repeated section starts over, as llama-server
      return;
    }
    const kv = KEY_VALUE.exec(raw);
    if (!kv) throw new ConfigError(`${file}:${line}: expected '[section]', 'key = value' or a comment, got '${raw}'`);
    const key = kv[1] ?? '';
    const value = (kv[2] ?? '').replace(/[;#].*$/, '').replace(/[ \t]+$/, '');
    if (!current) {
      current = { name: PRESET_DEFAULT_SECTION, line: 0, entries: [] };
      sections.set(current.name, current);
    }
    current.entries = current.entries.filter((e) => e.key !== key);
    current.entries.push({ key, value, line });
  });
  return [...sections.values()];
}
