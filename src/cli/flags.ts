// One declarative flag layer for every command: each command lists its flags (names, environment variable, kind,
// help, limits) and gets back typed values, which settings were given, warnings for flags that mean nothing here,
// and an error that names the flag for anything wrong. Pure: no process state is read or written.
import { parseSize } from '../fit/size.ts';

export class FlagError extends Error {}

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
  /** --help section. */
  group: string;
  /** The value's placeholder in --help (N, FNAME, ...). */
  value?: string;
  min?: number;
  max?: number;
  choices?: readonly string[];
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
}

const TRUE = new Set(['1', 'true', 'on', 'yes', 'enabled', '']);
const FALSE = new Set(['0', 'false', 'off', 'no', 'disabled']);

function convert(spec: FlagSpec, raw: string, from: string): unknown {
  const range = (n: number): number => {
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
  let value: unknown;
  switch (spec.kind) {
    case 'string':
      if (raw === '') throw new FlagError(`${from} needs a value`);
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
    case 'list':
      value = raw
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean);
      break;
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
 * given by flags replaces the environment's list, repeated flags add to each other).
 */
export function parseFlags<K extends string>(
  specs: readonly FlagSpec<K>[],
  argv: readonly string[],
  env: Readonly<Record<string, string | undefined>>,
  options: { positional?: boolean } = {},
): ParsedFlags<K> {
  const out: ParsedFlags<K> = { values: {}, explicit: new Set(), warnings: [], positional: [] };
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
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] ?? '';
    if (!arg.startsWith('-') || arg === '-') {
      if (options.positional) {
        out.positional.push(arg);
        continue;
      }
      throw new FlagError(`unexpected argument '${arg}' (see --help)`);
    }
    const eq = arg.startsWith('--') ? arg.indexOf('=') : -1;
    // As llama.cpp: `--backend_sampling` is `--backend-sampling`.
    const typed = eq > 0 ? arg.slice(0, eq) : arg;
    const name = typed.startsWith('--') ? typed.replaceAll('_', '-') : typed;
    const spec = specs.find((f) => f.names.includes(name) || f.negated?.includes(name));
    if (!spec) throw new FlagError(`unknown option '${arg}' (see --help)`);
    // Before any value is read: a refused flag is named as given, whatever its form.
    refuse(spec, name);
    let raw: string;
    if (spec.negated?.includes(name)) {
      if (eq > 0) throw new FlagError(`${name} takes no value`);
      raw = 'false';
    } else if (eq > 0) raw = arg.slice(eq + 1);
    else if (spec.kind === 'bool') raw = 'true';
    else {
      const next = argv[i + 1];
      if (next === undefined) throw new FlagError(`${name} needs a value`);
      raw = next;
      i++;
    }
    set(spec, convert(spec, raw, name), true, listsFromFlags, name);
  }
  return out;
}

/** --help text: sections in the order their first flag appears, one line per flag with its variable. */
export function flagUsage(specs: readonly FlagSpec[], header: string): string {
  const groups = new Map<string, string[]>();
  for (const f of specs) {
    const value =
      f.kind === 'bool'
        ? ''
        : ` ${f.value ?? (f.kind === 'enum' ? (f.choices?.join('|') ?? '') : f.kind === 'int' ? 'N' : f.kind === 'size' ? 'SIZE' : 'VALUE')}`;
    const left = `  ${[...f.names, ...(f.negated ?? [])].join(', ')}${value}`;
    const note = f.refused ? ' (not supported here)' : f.ignored ? ' (accepted, no effect here)' : '';
    const line = `${left.padEnd(46)} ${f.help}${note}${f.env ? ` [env ${f.env}]` : ''}`;
    const rows = groups.get(f.group) ?? [];
    rows.push(line);
    groups.set(f.group, rows);
  }
  const sections = [...groups].map(([group, rows]) => `----- ${group} -----\n\n${rows.join('\n')}`);
  return `${header}\n\n${sections.join('\n\n')}\n`;
}

/** A Markdown table of the flags: spellings, environment variable, and what this server does with each. */
export function flagTable(specs: readonly FlagSpec[]): string {
  const cell = (s: string): string => s.replaceAll('|', '\\|');
  const rows = specs.map((f) => {
    const names = [...f.names, ...(f.negated ?? [])].map((n) => `\`${n}\``).join(', ');
    const here = f.refused ? `refused: ${f.refused}` : f.ignored ? `accepted, no effect: ${f.ignored}` : f.help;
    return `| ${cell(f.group)} | ${names} | ${f.env ? `\`${f.env}\`` : ''} | ${cell(here)} |`;
  });
  return ['| Group | Flag | Environment | Here |', '|---|---|---|---|', ...rows].join('\n');
}
