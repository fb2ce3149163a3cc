// One declarative flag layer for every command: each command lists its flags (names, environment variable, kind,
// help, limits, default) and gets back typed values, which settings were given, warnings for flags that mean nothing
// here, and an error that names the flag for anything wrong. Pure: no process state is read or written
// (src/flags/command.ts is the part that writes --help and errors and picks the exit code).
//
// src/flags/ is the bottom of every command's stack: it knows no command and imports only src/util/.
import { parseSize } from '../util/size.ts';

export class FlagError extends Error {
  override name = 'FlagError';
}

export type FlagKind = 'string' | 'int' | 'float' | 'bool' | 'enum' | 'list' | 'size';

export interface FlagSpec<K extends string = string> {
  /** Every spelling, short ones first (`-c`, `--ctx-size`). */
  names: readonly string[];
  /** Boolean flags: the spellings that set it false (`--no-mmap`). */
  negated?: readonly string[];
  /** Environment variable that sets it (LLAMA_ARG_*, as llama-server reads them). */
  env?: string;
  kind: FlagKind;
  /** Where the value goes. Omitted for flags that are only warned about or refused. */
  key?: K;
  help: string;
  /** --help section (default: one section, `options`). */
  group?: string;
  /** The value's placeholder in --help (N, FNAME, ...). */
  value?: string;
  min?: number;
  max?: number;
  /** Numbers: the value must be greater than this (a rate or a timeout of 0 means nothing). */
  above?: number;
  choices?: readonly string[];
  /** Lists: each item is a number of this kind, checked against min, max and above. */
  items?: 'int' | 'float';
  /**
   * The value when neither a flag nor the environment gives one, as it would be typed (`'512'`, `'1,2,4,8'`): it is
   * converted and checked like a given value, shown in --help, and not counted as explicit.
   */
  default?: string;
  /** Must be given, by a flag or the environment. */
  required?: boolean;
  /** Turns the checked value into what the key holds; throw an Error to refuse it (the message names why). */
  parse?: (value: unknown) => unknown;
  /** Given again, its values add up (the parsed value is an array). */
  repeatable?: boolean;
  /** Known, but changes nothing here: accepted with this warning. */
  ignored?: string;
  /** Known, but not something this server does: refused with this reason. */
  refused?: string;
}

export interface ParsedFlags<K extends string> {
  values: Partial<Record<K, unknown>>;
  /** Keys set by a flag or an environment variable. */
  explicit: Set<K>;
  /** One line per ignored flag. */
  warnings: string[];
  /** Arguments that are not flags (only when the command allows them). */
  positional: string[];
  /** With `passUnknown`: every argument that is not one of these flags (nor the value of one), in order. */
  rest: string[];
}

export interface ParseOptions {
  /** Arguments that are not flags are collected in `positional` instead of refused. */
  positional?: boolean;
  /** Unknown flags and other arguments are kept in `rest`, for another parser (a launcher passing them on). */
  passUnknown?: boolean;
  /** A flag given twice is an error (repeatable flags and lists excepted), instead of the last one winning. */
  once?: boolean;
}

const DEFAULT_GROUP = 'options';

/** The spelling an error names when no spelling was typed (required, default): the last, long one. */
function longName(spec: FlagSpec): string {
  return spec.names[spec.names.length - 1] ?? spec.negated?.[0] ?? '';
}

const TRUE = new Set(['1', 'true', 'on', 'yes', 'enabled', '']);
const FALSE = new Set(['0', 'false', 'off', 'no', 'disabled']);

function convert(spec: FlagSpec, raw: string, from: string): unknown {
  const range = (n: number): number => {
    if (spec.above !== undefined && !(n > spec.above))
      throw new FlagError(`${from} must be greater than ${spec.above}, got ${n}`);
    if ((spec.min !== undefined && n < spec.min) || (spec.max !== undefined && n > spec.max)) {
      const bounds =
        spec.max === undefined
          ? `at least ${spec.min}`
          : spec.min === undefined
            ? `at most ${spec.max}`
            : `between ${spec.min} and ${spec.max}`;
      throw new FlagError(`${from} must be ${bounds}, got ${n}`);
    }
    return n;
  };
  // `--preset=` or `--port ''`: nothing was typed (a switch's empty value means on, a list's is checked below).
  if (raw === '' && spec.kind !== 'bool' && spec.kind !== 'list') throw new FlagError(`${from} needs a value`);
  let value: unknown;
  switch (spec.kind) {
    case 'string':
      value = raw;
      break;
    case 'int': {
      const n = Number(raw);
      if (raw.trim() === '' || !Number.isInteger(n)) throw new FlagError(`${from} must be an integer, got '${raw}'`);
      value = range(n);
      break;
    }
    case 'float': {
      const n = Number(raw);
      if (raw.trim() === '' || !Number.isFinite(n)) throw new FlagError(`${from} must be a number, got '${raw}'`);
      value = range(n);
      break;
    }
    case 'enum':
      if (!spec.choices?.includes(raw))
        throw new FlagError(`${from} must be one of ${spec.choices?.join(', ')}, got '${raw}'`);
      value = raw;
      break;
    case 'bool':
      if (TRUE.has(raw.toLowerCase())) value = true;
      else if (FALSE.has(raw.toLowerCase())) value = false;
      else throw new FlagError(`${from} must be true or false, got '${raw}'`);
      break;
    case 'list': {
      const items = raw
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean);
      if (items.length === 0) throw new FlagError(`${from} needs a comma-separated list`);
      const { items: kind, parse: _parse, ...rest } = spec;
      value = kind === undefined ? items : items.map((item) => convert({ ...rest, kind }, item, from));
      break;
    }
    case 'size':
      try {
        value = parseSize(raw);
      } catch (err) {
        throw new FlagError(`${from}: ${(err as Error).message}`);
      }
      break;
  }
  if (spec.parse) {
    try {
      value = spec.parse(value);
    } catch (err) {
      throw new FlagError(`${from}: ${(err as Error).message}`);
    }
  }
  return value;
}

/**
 * Parses `argv` and `env` against `specs`. The environment applies first; flags replace what it said (a list
 * given by flags replaces the environment's list, repeated flags add to each other). Then required flags are
 * checked and defaults fill what is left.
 */
export function parseFlags<K extends string>(
  specs: readonly FlagSpec<K>[],
  argv: readonly string[],
  env: Readonly<Record<string, string | undefined>>,
  options: ParseOptions = {},
): ParsedFlags<K> {
  const out: ParsedFlags<K> = { values: {}, explicit: new Set(), warnings: [], positional: [], rest: [] };
  const warned = new Set<FlagSpec<K>>();
  const refuse = (spec: FlagSpec<K>, given: string): void => {
    if (spec.refused) throw new FlagError(`${given} is not supported by this server: ${spec.refused}`);
  };
  const set = (spec: FlagSpec<K>, value: unknown, fromFlag: boolean, listsFromFlags: Set<K>, given: string): void => {
    if (spec.ignored) {
      if (!warned.has(spec)) out.warnings.push(`${given} has no effect here: ${spec.ignored}`);
      warned.add(spec);
      return;
    }
    if (spec.key === undefined) return;
    out.explicit.add(spec.key);
    if (spec.kind === 'list' || spec.repeatable) {
      const previous = fromFlag && !listsFromFlags.has(spec.key) ? [] : ((out.values[spec.key] as string[]) ?? []);
      if (fromFlag) listsFromFlags.add(spec.key);
      out.values[spec.key] = [...previous, ...(value as string[])];
    } else out.values[spec.key] = value;
  };
  /** The flag an argument names, if it is one of these: `--name=value` and `--snake_case` spellings included. */
  const lookup = (arg: string): { spec: FlagSpec<K> | undefined; name: string; eq: number } => {
    const eq = arg.startsWith('--') ? arg.indexOf('=') : -1;
    // As llama.cpp: `--backend_sampling` is `--backend-sampling`.
    const typed = eq > 0 ? arg.slice(0, eq) : arg;
    const name = typed.startsWith('--') ? typed.replaceAll('_', '-') : typed;
    return { spec: specs.find((f) => f.names.includes(name) || f.negated?.includes(name)), name, eq };
  };

  const noLists = new Set<K>();
  for (const spec of specs) {
    const raw = spec.env ? env[spec.env] : undefined;
    if (raw !== undefined && raw !== '') {
      refuse(spec, `${spec.env}`);
      set(spec, convert(spec, raw, `environment variable ${spec.env}`), false, noLists, `${spec.env}`);
    }
    // As llama.cpp: a negatable switch also reads LLAMA_ARG_NO_<NAME>, true meaning off.
    const negEnv =
      spec.kind === 'bool' && spec.negated && spec.env ? spec.env.replace(/^LLAMA_ARG_/, 'LLAMA_ARG_NO_') : '';
    const neg = negEnv !== '' ? env[negEnv] : undefined;
    if (neg !== undefined && neg !== '')
      set(spec, !(convert(spec, neg, `environment variable ${negEnv}`) as boolean), false, noLists, negEnv);
  }
  const listsFromFlags = new Set<K>();
  const given = new Set<FlagSpec<K>>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] ?? '';
    if (!arg.startsWith('-') || arg === '-') {
      if (options.positional) out.positional.push(arg);
      else if (options.passUnknown) out.rest.push(arg);
      else throw new FlagError(`unexpected argument '${arg}' (see --help)`);
      continue;
    }
    const { spec, name, eq } = lookup(arg);
    if (!spec) {
      if (!options.passUnknown) throw new FlagError(`unknown option '${arg}' (see --help)`);
      out.rest.push(arg);
      continue;
    }
    // Before any value is read: a refused flag is named as given, whatever its form.
    refuse(spec, name);
    if (options.once && !spec.repeatable && spec.kind !== 'list' && given.has(spec))
      throw new FlagError(`${name} is given twice`);
    given.add(spec);
    let raw: string;
    if (spec.negated?.includes(name)) {
      if (eq > 0) throw new FlagError(`${name} takes no value`);
      raw = 'false';
    } else if (eq > 0) raw = arg.slice(eq + 1);
    else if (spec.kind === 'bool') raw = 'true';
    else {
      const next = argv[i + 1];
      // `--out --seed 1`: the value was forgotten, not `--seed`.
      if (next === undefined || lookup(next).spec !== undefined) throw new FlagError(`${name} needs a value`);
      raw = next;
      i++;
    }
    set(spec, convert(spec, raw, name), true, listsFromFlags, name);
  }
  for (const spec of specs) {
    if (spec.key === undefined || out.explicit.has(spec.key)) continue;
    if (spec.required) throw new FlagError(`${longName(spec)} is required`);
    if (spec.default !== undefined && !(spec.key in out.values))
      out.values[spec.key] = convert(spec, spec.default, `the default of ${longName(spec)}`);
  }
  return out;
}

/**
 * --help text: the header, then sections in the order their first flag appears, one line per flag with its default
 * and variable, then the footer.
 */
export function flagUsage(specs: readonly FlagSpec[], header: string, footer?: string): string {
  const placeholder = (f: FlagSpec): string =>
    f.kind === 'bool'
      ? ''
      : ` ${f.value ?? (f.kind === 'enum' ? (f.choices?.join('|') ?? '') : f.kind === 'int' ? 'N' : f.kind === 'size' ? 'SIZE' : 'VALUE')}`;
  const lefts = specs.map((f) => `  ${[...f.names, ...(f.negated ?? [])].join(', ')}${placeholder(f)}`);
  // Short tables get a narrow column; long ones (serve's) stop at 46 and let longer names push their help right.
  const width = Math.min(46, Math.max(0, ...lefts.map((l) => l.length + 1)));
  const groups = new Map<string, string[]>();
  specs.forEach((f, k) => {
    const note = f.refused ? ' (not supported here)' : f.ignored ? ' (accepted, no effect here)' : '';
    const fallback = f.default !== undefined && f.kind !== 'bool' ? ` (default ${f.default})` : '';
    const line = `${(lefts[k] ?? '').padEnd(width)} ${f.help}${fallback}${note}${f.env ? ` [env ${f.env}]` : ''}`;
    const group = f.group ?? DEFAULT_GROUP;
    groups.set(group, [...(groups.get(group) ?? []), line]);
  });
  const sections = [...groups].map(([group, rows]) => `----- ${group} -----\n\n${rows.join('\n')}`);
  return `${header}\n\n${sections.join('\n\n')}\n${footer === undefined ? '' : `\n${footer}\n`}`;
}

/** A Markdown table of the flags: spellings, environment variable, and what this server does with each. */
export function flagTable(specs: readonly FlagSpec[]): string {
  const cell = (s: string): string => s.replaceAll('|', '\\|');
  const rows = specs.map((f) => {
    const names = [...f.names, ...(f.negated ?? [])].map((n) => `\`${n}\``).join(', ');
    const here = f.refused ? `refused: ${f.refused}` : f.ignored ? `accepted, no effect: ${f.ignored}` : f.help;
    return `| ${cell(f.group ?? DEFAULT_GROUP)} | ${names} | ${f.env ? `\`${f.env}\`` : ''} | ${cell(here)} |`;
  });
  return ['| Group | Flag | Environment | Here |', '|---|---|---|---|', ...rows].join('\n');
}
