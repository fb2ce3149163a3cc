// The generation parameter table against what is built from it (the request schemas, the server's defaults, the
// settings reports, the serve flags' bounds) and against what is not yet: the rest of the serve flags
// (src/entry/config/), through their exported parse, defaults and flag table, so that the two cannot drift. Where a
// flag's bounds differ from a request's, the table states both and the last test lists them.
import t from 'tap';
import { ConfigError, defaultServeConfig, parseServeConfig, serveFlagTable } from '../../../src/entry/config/index.ts';
import {
  GENERATION_PARAMETERS,
  GENERATION_SETTINGS,
  type GenerationParameter,
  PARAMETER_NAMES,
  PROPS_SETTINGS,
  parameterOfField,
  settingsReport,
} from '../../../src/server/generation/parameters.ts';
import { LLAMA_SERVER_DEFAULTS } from '../../../src/server/options.ts';
import { ChatCompletionBody, CompletionBody, NativeCompletionBody } from '../../../src/server/schemas.ts';

const entries = PARAMETER_NAMES.map((name): [string, GenerationParameter] => [name, GENERATION_PARAMETERS[name]]);
const withFlag = entries.filter(([, p]) => p.flag !== undefined);

interface FieldSchema {
  anyOf: { type?: string; minimum?: number; maximum?: number }[];
}

t.test(
  'each request schema declares every parameter field, with its kind and bounds, in the table order',
  async (t) => {
    for (const [label, body] of [
      ['chat', ChatCompletionBody],
      ['completions', CompletionBody],
      ['completion', NativeCompletionBody],
    ] as const) {
      const props = body.properties as unknown as Record<string, FieldSchema>;
      const keys = Object.keys(props);
      const fields = entries.flatMap(([, p]) => p.api);
      const at = keys.indexOf('stream_options') + 1;
      t.same(keys.slice(at, at + fields.length), fields, `${label}: the table's fields follow stream_options`);
      for (const [name, p] of entries) {
        for (const field of p.api) {
          const own = props[field]?.anyOf[0];
          if (p.kind === 'shape') {
            t.ok(own !== undefined || props[field] !== undefined, `${label}.${field}: declared (${name})`);
            continue;
          }
          t.equal(own?.type, p.kind === 'int' ? 'integer' : p.kind === 'float' ? 'number' : 'boolean', `${field} kind`);
          t.equal(own?.minimum, p.min, `${label}.${field} minimum`);
          t.equal(own?.maximum, p.max, `${label}.${field} maximum`);
        }
      }
    }
  },
);

t.test("the server's defaults are llama-server's, from the table", async (t) => {
  t.strictSame(LLAMA_SERVER_DEFAULTS, {
    nPredict: -1,
    temperature: 0.8,
    dynatempRange: 0,
    dynatempExponent: 1,
    topP: 0.95,
    topK: 40,
    minP: 0.05,
    typicalP: 1,
    topNSigma: -1,
    xtcProbability: 0,
    xtcThreshold: 0.1,
    seed: -1,
    presencePenalty: 0,
    frequencyPenalty: 0,
    repeatPenalty: 1,
    repeatLastN: 64,
    dryMultiplier: 0,
    dryBase: 1.75,
    dryAllowedLength: 2,
    dryPenaltyLastN: -1,
    mirostat: 0,
    mirostatTau: 5,
    mirostatEta: 0.1,
    ignoreEos: false,
    nKeep: 0,
    cachePrompt: true,
    drySequenceBreakers: undefined,
    samplers: undefined,
    logitBias: [],
    grammar: undefined,
    contextShift: false,
    renderSpecial: false,
  });
  for (const [name, p] of entries) {
    if (p.kind !== 'shape' && p.flag !== undefined)
      t.equal(LLAMA_SERVER_DEFAULTS[name as keyof typeof LLAMA_SERVER_DEFAULTS], p.default, name);
  }
});

/** The flag table's rows: each flag's spellings and its environment variable. */
function flagRows(): { names: string[]; env: string }[] {
  return serveFlagTable()
    .split('\n')
    .slice(2)
    .map((line) => {
      const cells = line.split(' | ');
      return {
        names: [...(cells[1] ?? '').matchAll(/`([^`]+)`/g)].map((m) => m[1] ?? ''),
        env: (cells[2] ?? '').replaceAll('`', '').trim(),
      };
    });
}

/** A value of the flag's own range that is not the default, so that parsing it shows the flag sets the field. */
function probe(p: GenerationParameter): number {
  const { min, max } = p.flag ?? {};
  const v = min !== undefined && max !== undefined ? (min + max) / 2 : (min ?? 0) + 3;
  const at = p.kind === 'int' ? Math.floor(v) : v;
  // A range centred on the default (the penalties'): halfway up from there.
  return at === p.default && max !== undefined ? (at + max) / 2 : at;
}

/** A value each shaped parameter's flags take, and what it gives. */
const SHAPE_SAMPLES: Record<string, [string, unknown]> = {
  '--samplers': ['top_k;temperature', ['top_k', 'temperature']],
  '--sampler-seq': ['kt', ['top_k', 'temperature']],
  '--sampling-seq': ['kt', ['top_k', 'temperature']],
  '--dry-sequence-breaker': ['x', ['x']],
  '-l': ['15043+1', [[15043, 1]]],
  '--logit-bias': ['2-inf', [[2, Number.NEGATIVE_INFINITY]]],
};

t.test(
  "every parameter a flag sets: its spellings, variable, default, field and bounds are the flag table's",
  async (t) => {
    const rows = flagRows();
    const defaults = defaultServeConfig() as unknown as Record<string, unknown>;
    for (const [name, p] of withFlag) {
      const flag = p.flag;
      if (flag === undefined) continue;
      const key = flag.key ?? name;
      const mine = rows.filter((r) => r.names.some((n) => flag.names.includes(n)));
      t.same(mine.flatMap((r) => r.names).sort(), [...flag.names].sort(), `${name}: the flags`);
      for (const r of mine) t.equal(r.env, flag.env ?? '', `${name}: ${r.names[0]}'s environment variable`);
      t.strictSame(
        defaults[key],
        p.kind === 'shape' ? LLAMA_SERVER_DEFAULTS[name as keyof typeof LLAMA_SERVER_DEFAULTS] : p.default,
        `${name}: the default`,
      );
      const set = (argv: string[], env: Record<string, string> = {}) =>
        (parseServeConfig(argv, env) as unknown as Record<string, unknown>)[key];
      for (const n of flag.names) {
        if (p.kind === 'shape') {
          const [value, gives] = SHAPE_SAMPLES[n] ?? [];
          t.ok(value !== undefined, `${n}: a sample value`);
          t.strictSame(set([n, String(value)]), gives, `${n} sets ${key}`);
        } else if (p.kind === 'bool') t.equal(set([n]), !n.startsWith('--no-'), `${n} sets ${key}`);
        else {
          t.not(probe(p), p.default);
          t.equal(set([n, String(probe(p))]), probe(p), `${n} sets ${key}`);
        }
      }
      if (flag.env !== undefined) {
        if (p.kind === 'bool') t.equal(set([], { [flag.env]: String(!p.default) }), !p.default, `${flag.env}`);
        else t.equal(set([], { [flag.env]: String(probe(p)) }), probe(p), `${flag.env}`);
      }
      if (p.kind !== 'int' && p.kind !== 'float') continue;
      const first = flag.names[0] ?? '';
      const step = (v: number) => (p.kind === 'int' ? 1 : Math.max(1, Math.abs(v)) * 1e-6);
      const far = p.kind === 'int' ? 1e9 : 1e12;
      for (const [edge, outside] of [
        [flag.min, flag.min === undefined ? -far : flag.min - step(flag.min)],
        [flag.max, flag.max === undefined ? far : flag.max + step(flag.max)],
      ] as const) {
        if (edge !== undefined) {
          t.equal(set([first, String(edge)]), edge, `${first} ${edge}: the edge is taken`);
          t.throws(() => set([first, String(outside)]), ConfigError, `${first} ${outside}: refused`);
        } else t.equal(set([first, String(outside)]), outside, `${first} ${outside}: no bound`);
      }
    }
  },
);

t.test('the sampling flags that set a request default are all in the table', async (t) => {
  const known = new Set(withFlag.flatMap(([, p]) => p.flag?.names ?? []));
  // Sampling flags of other kinds: a default constraint (not a parameter of its own), or not honoured.
  const others = ['--grammar', '--grammar-file', '-j', '--json-schema', '-jf', '--json-schema-file'];
  const sampling = serveFlagTable()
    .split('\n')
    .filter((l) => l.startsWith('| sampling params |') && !/\| (refused|accepted, no effect):/.test(l));
  for (const line of sampling) {
    const names = [...line.matchAll(/`(-[^`]+)`/g)].map((m) => m[1] ?? '');
    t.ok(
      names.every((n) => known.has(n) || others.includes(n)),
      `${names.join(', ')}: in the table (or a constraint flag)`,
    );
  }
});

t.test("generation_settings and /props: each field a parameter's, or one of the few that are not", async (t) => {
  const notParameters = (fields: readonly string[]) => fields.filter((f) => parameterOfField(f) === undefined);
  t.same(notParameters(GENERATION_SETTINGS), ['n_ctx', 'adaptive_target', 'adaptive_decay', 'stream']);
  t.same(notParameters(PROPS_SETTINGS), []);
  for (const f of PROPS_SETTINGS) {
    const name = parameterOfField(f);
    const p: GenerationParameter | undefined = name === undefined ? undefined : GENERATION_PARAMETERS[name];
    t.ok(p?.flag, `${f}: a server default`);
  }
  t.same(
    settingsReport(['n_predict', 'max_tokens', 'top_k', 'x'], (name) => name, { x: 1 }),
    { n_predict: 'nPredict', max_tokens: 'nPredict', top_k: 'topK', x: 1 },
    "a field takes its parameter's value, or the extra's",
  );
  t.throws(() => settingsReport(['nope'], () => 0), /'nope' is not a generation parameter's field/);
});

t.test("where a flag's bounds differ from a request's: llama-server's wider ones, within the sampler's", async (t) => {
  const range = (min?: number, max?: number) => `${min ?? '-inf'}..${max ?? 'inf'}`;
  const differ = withFlag
    .filter(([, p]) => p.kind === 'int' || p.kind === 'float')
    .filter(([, p]) => p.min !== p.flag?.min || p.max !== p.flag?.max)
    .map(([name, p]) => `${name}: request ${range(p.min, p.max)}, flag ${range(p.flag?.min, p.flag?.max)}`);
  // A flag with no bound would let a default through that the sampler refuses, failing every request that leaves
  // the field out (test/engine/sampling-bounds.test.ts starts a slot at each flag's edges).
  t.same(differ, [
    'nPredict: request -1..inf, flag -2..16777216',
    'temperature: request 0..2, flag 0..1000000',
    'seed: request -inf..inf, flag -1..4294967295',
    'presencePenalty: request -2..2, flag -100..100',
    'frequencyPenalty: request -2..2, flag -100..100',
    'repeatPenalty: request 1.1754943508222875e-38..10, flag 1.1754943508222875e-38..100',
  ]);
});
