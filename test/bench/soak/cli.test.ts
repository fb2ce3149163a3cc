// `npm run soak` end to end, briefly: it starts a server on the tiny model, runs every kind of request against
// it, samples it, settles it and judges it; the JSON holds what the verdict was made from. A server without
// --metrics is refused with the reason.
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import t from 'tap';
import { runSoakCli } from '../../../src/bench/soak/cli.ts';
import { parseExposition } from '../../../src/bench/soak/probe.ts';
import type { Counts, Sample, Verdict } from '../../../src/bench/soak/verdict.ts';
import { modelPath } from '../../helpers/models.ts';
import { startServer } from '../../helpers/server-process.ts';

function io(): { io: { stdout: PassThrough; stderr: PassThrough }; out: () => string; err: () => string } {
  let out = '';
  let err = '';
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  stdout.on('data', (c: Buffer) => {
    out += c.toString();
  });
  stderr.on('data', (c: Buffer) => {
    err += c.toString();
  });
  return { io: { stdout, stderr }, out: () => out, err: () => err };
}

t.test('parseExposition reads unlabelled series and skips comments and labelled ones', async (t) => {
  const m = parseExposition(
    '# HELP x y\n# TYPE x gauge\nprocess_resident_memory_bytes 123456\nllamacpp:requests_processing 2\nfoo{a="b"} 9\n\n',
  );
  t.same(
    [...m.entries()],
    [
      ['process_resident_memory_bytes', 123456],
      ['llamacpp:requests_processing', 2],
    ],
  );
});

t.test('a short soak on the tiny model: every kind of request, no error, no leaked slot', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'soak-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const json = join(dir, 'soak.json');
  const c = io();
  // Long enough for the mix to send each kind; RSS growth is not judged over seconds. 128 cells a slot bound
  // the requests of the mix that set no max_tokens.
  const code = await runSoakCli(
    [
      '--minutes',
      '0.15',
      '--concurrency',
      '6',
      '-c',
      '512',
      '--sample-seconds',
      '1',
      '--max-rss-growth',
      '1000',
      '--json',
      json,
    ],
    c.io,
  );
  t.equal(code, 0, c.out() + c.err());
  t.match(c.out(), /verdict: PASS/);
  const report = JSON.parse(await readFile(json, 'utf8')) as { counts: Counts; verdict: Verdict; samples: Sample[] };
  t.ok(report.samples.length >= 5, `${report.samples.length} samples`);
  t.ok(
    report.samples.every((s) => s.rssBytes > 0 && s.healthMs !== null),
    'each sample read RSS from /metrics and got /health',
  );
  const kinds = new Set(Object.keys(report.counts.byOutcome).map((k) => k.split(' ')[0]));
  t.same([...kinds].sort(), ['abort', 'bad', 'complete', 'stream'], 'every kind of request was sent');
  t.ok(report.counts.aborted > 0, 'streams were dropped mid-way');
  t.ok(report.counts.completionTokens > 0);
  t.match(report.verdict, { leakedSlots: 0, leftQueued: 0, serverErrors: 0, shapeErrors: 0, healthFailures: 0 });
});

t.test('a server without --metrics: exit 1, naming the flag', async (t) => {
  const server = await startServer(['-m', await modelPath('tiny'), '-np', '1', '-c', '256']);
  t.teardown(() => server.stop());
  const c = io();
  t.equal(await runSoakCli(['--minutes', '0.1', '--url', server.url], c.io), 1);
  t.match(c.err(), /GET \/metrics answered 501: the server must run with --metrics/);
});
