// `npm run bench:conversations -- --url URL`: the returning-conversations workload (run.ts) against a running
// server; prints the report, writes it as JSON on request, exits 1 when an answer was not its solo run.
import { writeFile } from 'node:fs/promises';
import { type CommandIo, readCommandLine } from '../../flags/command.ts';
import { CONVERSATIONS_COMMAND, parseConversationsArgs } from './options.ts';
import { formatReport, runConversations, verdictOf } from './run.ts';

export async function runConversationsCli(argv: readonly string[], io: CommandIo = process): Promise<number> {
  const line = readCommandLine(CONVERSATIONS_COMMAND, argv, io, parseConversationsArgs);
  if ('exit' in line) return line.exit;
  const { jsonFile, ...workload } = line.args;
  const report = await runConversations(workload, (l) => io.stderr.write(`${l}\n`));
  io.stdout.write(formatReport(report));
  if (jsonFile !== null) await writeFile(jsonFile, `${JSON.stringify(report, null, 2)}\n`);
  return verdictOf(report).length === 0 && report.burst.answered > 0 ? 0 : 1;
}
