// `npm run fuzz -- [--cases N] [--concurrency C] [--seed S] [--json FILE]`: the property test's storm, as many requests
// as asked, C at a time, against the real servers (app.inject()): the generated tiny model, 2 slots of 128 tokens, and
// an embedding server on the generated tiny BERT. Prints the figures; exit 0 when every rule held, 1 when one broke
// (the smallest failing request is printed), 2 on bad flags.
import { writeFile } from 'node:fs/promises';
import { BatchDecoder, ChatTemplates, Embedder, Model } from '../engine/index.ts';
import { assembleServer } from '../entry/assemble.ts';
import { type Command, readCommandLine } from '../flags/command.ts';
import { type FlagSpec, parseFlags } from '../flags/parse.ts';
import { DEFAULT_BODY_LIMIT_BYTES } from '../server/options.ts';
import { ensureModel } from '../tools/model-cache.ts';
import { formatFuzzReport, fuzzPassed, runFuzz } from './run.ts';
import { appTarget, embeddingServer } from './target.ts';

interface FuzzArgs {
  cases: number;
  concurrency: number;
  seed: number;
  jsonFile?: string;
}

const FLAGS: readonly FlagSpec<keyof FuzzArgs>[] = [
  { names: ['--cases'], kind: 'int', key: 'cases', min: 1, default: '1000', help: 'requests to send' },
  {
    names: ['--concurrency'],
    kind: 'int',
    key: 'concurrency',
    min: 1,
    max: 256,
    default: '1',
    help: 'requests sent at a time (cases are rounded up to a multiple)',
  },
  {
    names: ['--seed'],
    kind: 'int',
    key: 'seed',
    min: 0,
    max: 0x7fffffff,
    default: '1',
    help: 'seed of the generated requests (the same seed sends the same requests)',
  },
  { names: ['--json'], kind: 'string', key: 'jsonFile', value: 'FILE', help: 'write the report as JSON' },
];

export const FUZZ_COMMAND: Command = {
  name: 'fuzz',
  synopsis: `Usage: npm run fuzz -- [--cases N] [--concurrency C] [--seed S] [--json FILE]

Sends generated and mutated request bodies to every route of the server (the tiny generated model, in-process)
and of an embedding server (the tiny BERT), C at a time, and checks that none gets a 5xx, every error is in its
route's shape, every 200 is what its route promises (shape, usage, finish reasons, token limits, one terminal
event per stream), and the servers are whole afterwards.`,
  footer: 'Exit codes: 0 every rule held, 1 a rule broke, 2 bad arguments.',
  flags: FLAGS,
};

export function parseFuzzArgs(argv: readonly string[]): FuzzArgs {
  return parseFlags(FLAGS, argv, {}).values as FuzzArgs;
}

export async function runFuzzCli(argv: string[]): Promise<number> {
  const line = readCommandLine(FUZZ_COMMAND, argv, process, parseFuzzArgs);
  if ('exit' in line) return line.exit;
  const { cases, concurrency, seed, jsonFile } = line.args;
  const slots = 2;
  const ctxPerSlot = 128;
  const path = await ensureModel({ preset: 'tiny', quant: 'F16', seed: 1 });
  const model = await Model.load(path);
  const server = assembleServer({
    path,
    config: { slots, ctxPerSlot },
    app: { ready: true },
    kvCellsTotal: slots * ctxPerSlot,
  });
  const decoder = new BatchDecoder(model, { slots, ctxPerSlot });
  const chat = new ChatTemplates(model);
  const scheduler = server.attach({ model, chat, decoder });
  const bert = await Model.load(await ensureModel({ preset: 'tiny-bert', quant: 'F16', seed: 1 }));
  const embedder = new Embedder(bert, { sequences: 4 });
  const embeddings = embeddingServer(bert, embedder, { ctxPerSlot: 512, slots: 4 });
  try {
    const report = await runFuzz(appTarget(server.app, scheduler, decoder, embeddings), {
      cases,
      concurrency,
      seed,
      ctxPerSlot,
      bodyLimitBytes: DEFAULT_BODY_LIMIT_BYTES,
    });
    process.stdout.write(formatFuzzReport(report));
    if (jsonFile !== undefined) await writeFile(jsonFile, `${JSON.stringify(report, null, 2)}\n`);
    return fuzzPassed(report) ? 0 : 1;
  } finally {
    await embeddings.close();
    embedder.dispose();
    bert.dispose();
    await server.app.close();
    await scheduler.close(0);
    decoder.dispose();
    chat.dispose();
    model.dispose();
  }
}
