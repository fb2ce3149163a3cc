// The front door every command shares: -h/--help prints the usage generated from its flag table (exit 0); a bad
// command line prints the FlagError that names the flag, then the usage (exit 2). Each command declares a Command
// and a pure parse function; this is the only place that turns those into output and exit codes.
import { FlagError, type FlagSpec, flagUsage, type ParseOptions } from './parse.ts';

export interface Command<K extends string = string> {
  /** What its error lines start with: `fit: --vram is required`. */
  name: string;
  /** The top of --help: how it is called and what it does. */
  synopsis: string;
  /** The bottom of --help (exit codes, notes). */
  footer?: string;
  flags: readonly FlagSpec<K>[];
  options?: ParseOptions;
}

export interface CommandIo {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
}

const HELP: FlagSpec = { names: ['-h', '--help'], kind: 'bool', help: 'show this help' };

export function commandUsage(command: Command): string {
  return flagUsage([...command.flags, HELP], command.synopsis, command.footer);
}

/**
 * Reads a command line with the command's parse function. Returns what it parsed, or the exit code when there is
 * nothing to run: 0 after --help, 2 after a bad flag. Errors other than FlagError are the caller's.
 */
export function readCommandLine<T>(
  command: Command,
  argv: readonly string[],
  io: CommandIo,
  parse: (argv: readonly string[]) => T,
): { args: T } | { exit: 0 | 2 } {
  if (argv.some((arg) => HELP.names.includes(arg))) {
    io.stdout.write(commandUsage(command));
    return { exit: 0 };
  }
  try {
    return { args: parse(argv) };
  } catch (err) {
    if (!(err instanceof FlagError)) throw err;
    io.stderr.write(`${command.name}: ${err.message}\n\n${commandUsage(command)}`);
    return { exit: 2 };
  }
}
