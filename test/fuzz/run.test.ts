// The request storm as a property test, in CI: 1,000 generated and mutated requests, 8 in flight at a time, against
// the real servers: the generation one (tiny model, 2 slots of 128 tokens: every route, /v1/embeddings refused) and
// an embedding one (tiny BERT: /v1/embeddings and /embeddings, generation routes refused). `npm run fuzz -- --cases
// 10000 --concurrency 8` runs more (docs/RELIABILITY.md).
import t from 'tap';
import { Embedder } from '../../src/engine/index.ts';
import { formatFuzzReport, fuzzPassed, runFuzz } from '../../src/fuzz/run.ts';
import { appTarget, embeddingServer } from '../../src/fuzz/target.ts';
import { loadModel } from '../helpers/models.ts';
import { makeHarness } from '../server/harness.ts';

const model = await loadModel('tiny');
const bert = await loadModel('tiny-bert');
t.teardown(() => {
  model.dispose();
  bert.dispose();
});

const SEED = Number(process.env.FUZZ_SEED ?? 20240613);
const CASES = 1000;

t.test('1,000 requests, 8 at a time, every route: no rule broken, the servers whole afterwards', async (t) => {
  const bodyLimitBytes = 64 * 1024;
  const ctxPerSlot = 128;
  const { app, scheduler, decoder } = await makeHarness(t, model, { ctxPerSlot, config: { bodyLimitBytes } });
  const embedder = new Embedder(bert, { sequences: 4 });
  const embeddings = embeddingServer(bert, embedder, { ctxPerSlot: 512, slots: 4, bodyLimitBytes });
  t.teardown(async () => {
    await embeddings.close();
    embedder.dispose();
  });
  const report = await runFuzz(appTarget(app, scheduler, decoder, embeddings), {
    cases: CASES,
    concurrency: 8,
    seed: SEED,
    ctxPerSlot,
    bodyLimitBytes,
  });
  t.comment(formatFuzzReport(report));
  t.equal(report.failure, null, 'every answer kept the rules');
  t.same(report.warnings, [], 'no process warning during the storm');
  t.equal(report.cases, CASES);
  t.ok((report.byStatus['200'] ?? 0) >= 80, `${report.byStatus['200']} answered 200 (the storm reaches the decoder)`);
  t.ok((report.byStatus['413'] ?? 0) > 0 && (report.byStatus['415'] ?? 0) > 0, 'oversize and odd content types');
  const routes = Object.keys(report.byRoute);
  for (const route of [
    'generation /v1/chat/completions',
    'generation /v1/completions',
    'generation /completion',
    'generation /v1/responses',
    'generation /v1/messages',
    'embeddings /v1/embeddings',
  ])
    t.ok((report.byRoute[route]?.['200'] ?? 0) > 0, `${route} answered 200 at least once`);
  t.ok(
    (report.byRoute['generation /v1/embeddings']?.['400'] ?? 0) > 0,
    '/v1/embeddings refused on a generation server',
  );
  t.ok(
    routes.some((r) => r.startsWith('embeddings /v1/') && r !== 'embeddings /v1/embeddings'),
    'generation routes sent to the embedding server',
  );
  t.equal(report.after.healthStatus, 200, '/health answers');
  t.equal(report.after.validStatus, 200, 'a valid request is served');
  t.same(report.after.embeddings, { healthStatus: 200, validStatus: 200 }, 'the embedding server too');
  t.same(report.after.slots, { scheduler: ['idle', 'idle'], decoder: ['idle', 'idle'] }, 'every slot is idle');
  t.ok(fuzzPassed(report));
});
