// fast-check arbitraries from the JSON Schema that TypeBox writes for the routes' bodies (src/server/schemas.ts):
// values that pass the schema, for the fuzzer to send as they are or to mutate. Only the keywords those schemas
// use are read; anything else is an error here, so a new kind of field cannot be skipped without notice.
import fc from 'fast-check';

export interface JsonSchema {
  type?: string;
  anyOf?: JsonSchema[];
  enum?: unknown[];
  const?: unknown;
  properties?: Record<string, JsonSchema>;
  patternProperties?: Record<string, JsonSchema>;
  required?: string[];
  items?: JsonSchema | JsonSchema[];
  minItems?: number;
  maxItems?: number;
  minLength?: number;
  maxLength?: number;
  minimum?: number;
  maximum?: number;
  exclusiveMinimum?: number;
  exclusiveMaximum?: number;
  [key: string]: unknown;
}

export interface ArbitraryOptions {
  /** Arbitraries for named properties, wherever they appear (small max_tokens, short texts). */
  overrides?: Readonly<Record<string, fc.Arbitrary<unknown>>>;
  /** What a schema without a type (Type.Unknown) gets. Default: small JSON values. */
  unknown?: fc.Arbitrary<unknown>;
  /** Longest array drawn where the schema gives no bound. Default 4. */
  maxItems?: number;
  /** An optional property is present once in this many draws. Default 8. */
  optionalOdds?: number;
  /**
   * Named properties' own odds, wherever they appear: 'always' (drawn as if required), or present once in this many
   * draws (a field the route mostly refuses, kept rare so the storm still reaches generation).
   */
  presence?: Readonly<Record<string, 'always' | number>>;
}

const ABSENT = Symbol('absent');

/** Short texts, mostly ASCII, some of any Unicode (surrogate pairs included). */
export const text = (maxLength = 24): fc.Arbitrary<string> =>
  fc.oneof(
    { weight: 4, arbitrary: fc.string({ maxLength }) },
    { weight: 1, arbitrary: fc.string({ maxLength, unit: 'binary' }) },
  );

function numberOf(s: JsonSchema, integer: boolean): fc.Arbitrary<number> {
  if (integer) {
    const min = s.minimum ?? (s.exclusiveMinimum !== undefined ? Math.floor(s.exclusiveMinimum) + 1 : -1_000_000);
    const max = s.maximum ?? (s.exclusiveMaximum !== undefined ? Math.ceil(s.exclusiveMaximum) - 1 : 1_000_000);
    return fc.integer({ min, max });
  }
  return fc.double({
    min: s.minimum ?? s.exclusiveMinimum ?? -1e6,
    max: s.maximum ?? s.exclusiveMaximum ?? 1e6,
    minExcluded: s.minimum === undefined && s.exclusiveMinimum !== undefined,
    maxExcluded: s.maximum === undefined && s.exclusiveMaximum !== undefined,
    noNaN: true,
  });
}

export function arbitraryOf(schema: JsonSchema, options: ArbitraryOptions = {}, name?: string): fc.Arbitrary<unknown> {
  const override = name !== undefined ? options.overrides?.[name] : undefined;
  if (override !== undefined) return override;
  const maxItems = options.maxItems ?? 4;
  if (schema.anyOf !== undefined) return fc.oneof(...schema.anyOf.map((s) => arbitraryOf(s, options, name)));
  if (schema.enum !== undefined) return fc.constantFrom(...schema.enum);
  if (schema.const !== undefined) return fc.constant(schema.const);
  switch (schema.type) {
    case undefined:
      return options.unknown ?? fc.jsonValue({ maxDepth: 2 });
    case 'null':
      return fc.constant(null);
    case 'boolean':
      return fc.boolean();
    case 'integer':
      return numberOf(schema, true);
    case 'number':
      return numberOf(schema, false);
    case 'string':
      return fc.string({ minLength: schema.minLength ?? 0, maxLength: Math.min(schema.maxLength ?? 24, 24) });
    case 'array': {
      const items = schema.items;
      if (Array.isArray(items)) return fc.tuple(...items.map((s) => arbitraryOf(s, options)));
      if (items === undefined) throw new Error('an array schema without items');
      return fc.array(arbitraryOf(items, options, name), {
        minLength: schema.minItems ?? 0,
        maxLength: Math.max(schema.minItems ?? 0, Math.min(schema.maxItems ?? maxItems, maxItems)),
      });
    }
    case 'object': {
      if (schema.properties !== undefined) {
        // Each optional field is present one time in `optionalOdds`: with forty of them, most bodies would
        // otherwise carry one the route refuses, and the storm would rarely reach generation.
        const odds = options.optionalOdds ?? 8;
        const required = new Set(schema.required ?? []);
        const record: Record<string, fc.Arbitrary<unknown>> = {};
        for (const [key, s] of Object.entries(schema.properties)) {
          const value = arbitraryOf(s, options, key);
          const own = options.presence?.[key];
          record[key] =
            required.has(key) || own === 'always'
              ? value
              : fc.oneof(
                  { weight: (own ?? odds) - 1, arbitrary: fc.constant(ABSENT) },
                  { weight: 1, arbitrary: value },
                );
        }
        return fc.record(record).map((o) => Object.fromEntries(Object.entries(o).filter(([, v]) => v !== ABSENT)));
      }
      const values = Object.values(schema.patternProperties ?? {})[0];
      if (values === undefined) return fc.constant({});
      return fc.dictionary(fc.string({ maxLength: 8 }), arbitraryOf(values, options), { maxKeys: maxItems });
    }
    default:
      throw new Error(`no arbitrary for schema type '${schema.type}'`);
  }
}
