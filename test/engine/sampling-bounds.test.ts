// The addon's range checks (native/binding/convert.cpp, native/core/slot_sampler.cpp) against the generation
// parameter table (src/server/generation/parameters.ts): every value a request may give starts a slot (a 400 naming
// the field is the HTTP layer's, never a failed generation), and just past the table's edges the addon refuses too,
// but where its bound is looser, listed below. A serve flag's edges start a slot too: its value is the default of
// every request that leaves the field out.
import t from 'tap';
import { BatchDecoder } from '../../src/engine/index.ts';
import type { StartOptions } from '../../src/scheduler/decoder.ts';
import {
  GENERATION_PARAMETERS,
  type GenerationParameter,
  PARAMETER_NAMES,
  POSITIVE_FLOAT32,
  TOKEN_COUNT_MAX,
} from '../../src/server/generation/parameters.ts';
import { loadModel } from '../helpers/models.ts';

const model = await loadModel('tiny');
t.teardown(() => model.dispose());
const decoder = new BatchDecoder(model, { slots: 1, ctxPerSlot: 64 });
t.teardown(() => decoder.dispose());

/** The decoder options a parameter's value gives: the sampler's field, or the start's own. */
const START_FIELDS: Record<string, keyof StartOptions> = { nKeep: 'nKeep', nProbs: 'nProbs' };

function starts(options: StartOptions): boolean {
  try {
    decoder.start(0, [1, 2, 3], options);
  } catch (err) {
    if ((err as { code?: string }).code === 'INVALID_ARGUMENT') return false;
    throw err;
  }
  decoder.cancel(0);
  return true;
}

function optionsWith(name: string, p: GenerationParameter, value: number): StartOptions | undefined {
  if (p.sampler !== undefined) return { maxTokens: 1, sampling: { [p.sampler]: value } };
  const field = START_FIELDS[name];
  return field === undefined ? undefined : { maxTokens: 1, [field]: value };
}

t.test('every value the table lets a request give starts a slot; past its edges the addon refuses', async (t) => {
  const looser: string[] = [];
  for (const name of PARAMETER_NAMES) {
    const p: GenerationParameter = GENERATION_PARAMETERS[name];
    if (p.kind !== 'int' && p.kind !== 'float') continue;
    const step = (v: number) => (p.kind === 'int' ? 1 : Math.max(1, Math.abs(v)) * 1e-6);
    for (const [edge, outside] of [
      // Below the smallest positive float32: 0.
      [p.min, p.min === undefined ? undefined : p.min === POSITIVE_FLOAT32 ? 0 : p.min - step(p.min)],
      [p.max, p.max === undefined ? undefined : p.max + step(p.max)],
    ] as const) {
      if (edge === undefined || outside === undefined) continue;
      // top_p 0 never reaches the sampler: the HTTP layer makes it greedy (temperature 0, top_p 1).
      if (name === 'topP' && edge === 0) continue;
      const at = optionsWith(name, p, edge);
      const past = optionsWith(name, p, outside);
      if (at === undefined || past === undefined) continue;
      t.ok(starts(at), `${name} ${edge}: the addon takes the edge`);
      if (starts(past)) looser.push(`${name} ${outside}`);
    }
  }
  t.same(
    looser,
    [
      'temperature 2.000002',
      'presencePenalty -2.000002',
      'presencePenalty 2.000002',
      'frequencyPenalty -2.000002',
      'frequencyPenalty 2.000002',
      'repeatPenalty 10.00001',
      'nProbs 101',
    ],
    "the addon's looser bounds (convert.cpp): temperature <= 1e6, penalties +-100, repeat_penalty <= 100, n_probs <= 1024",
  );
});

t.test("a token limit: the decoder's count, TOKEN_COUNT_MAX, and not one more", async (t) => {
  t.ok(starts({ maxTokens: TOKEN_COUNT_MAX }));
  t.notOk(starts({ maxTokens: TOKEN_COUNT_MAX + 1 }));
});

t.test("every value a flag lets the server's default be starts a slot: no default fails every request", async (t) => {
  for (const name of PARAMETER_NAMES) {
    const p: GenerationParameter = GENERATION_PARAMETERS[name];
    if ((p.kind !== 'int' && p.kind !== 'float') || p.flag === undefined) continue;
    // An unbounded side: the largest number the flag parser would take there.
    for (const edge of [p.flag.min ?? -Number.MAX_VALUE, p.flag.max ?? Number.MAX_VALUE]) {
      // top_p 0 never reaches the sampler: the HTTP layer makes the server's default greedy, as a request's.
      if (name === 'topP' && edge === 0) continue;
      const at = optionsWith(name, p, edge);
      if (at === undefined) continue;
      t.ok(starts(at), `${p.flag.names[0]} ${edge}: the addon takes it`);
    }
  }
});
