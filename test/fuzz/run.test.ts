// The request storm as a property test, in CI: 1,000 generated and mutated requests against the real server
// (tiny model, 2 slots of 128 tokens). `npm run fuzz -- --cases 10000` runs more (docs/RELIABILITY.md).
import t from 'tap';
import { formatFuzzReport, fuzzPassed, runFuzz } from '../../src/fuzz/run.ts';
import { appTarget } from '../../src/fuzz/target.ts';
import { loadModel } from '../helpers/models.ts';
import { makeHarness } from '../server/harness.ts';

const model = await loadModel('tiny');
t.teardown(() => model.dispose());

const SEED = Number(process.env.FUZZ_SEED ?? 20240613);

t.test('1,000 requests: no 5xx, every error in OpenAI shape, the server whole afterwards', async (t) => {
  const bodyLimitBytes = 64 * 1024;
  const { app, scheduler, decoder } = await makeHarness(t, model, { ctxPerSlot: 128, config: { bodyLimitBytes } });
  const report = await runFuzz(appTarget(app, scheduler, decoder), { cases: 1000, seed: SEED, bodyLimitBytes });
  t.comment(formatFuzzReport(report));
  t.equal(report.failure, null, 'every answer kept the rules');
  t.equal(report.cases, 1000);
  t.ok(
    (report.byStatus['200'] ?? 0) >= 50,
    `${report.byStatus['200']} requests generated (the storm reaches the decoder)`,
  );
  t.ok(
    (report.byStatus['413'] ?? 0) > 0 && (report.byStatus['415'] ?? 0) > 0,
    'oversize and odd content types were sent',
  );
  t.equal(report.after.healthStatus, 200, '/health answers');
  t.equal(report.after.validStatus, 200, 'a valid request is served');
  t.same(report.after.slots, { scheduler: ['idle', 'idle'], decoder: ['idle', 'idle'] }, 'every slot is idle');
  t.ok(fuzzPassed(report));
});
