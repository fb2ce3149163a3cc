// llama-server's sampler chain: its names, its one-letter spelling (--sampling-seq, `samplers` as a string) and
// the chain a request gets when it names none.

/** common_sampler_types_from_chars' letters, for the samplers this server runs. */
export const SAMPLER_LETTERS: Readonly<Record<string, string>> = {
  d: 'dry',
  k: 'top_k',
  y: 'typ_p',
  p: 'top_p',
  s: 'top_n_sigma',
  m: 'min_p',
  t: 'temperature',
  x: 'xtc',
  e: 'penalties',
};

/** llama-server's default order (common_params_sampling::samplers). */
export const DEFAULT_SAMPLERS: readonly string[] = [
  'penalties',
  'dry',
  'top_n_sigma',
  'top_k',
  'typ_p',
  'top_p',
  'min_p',
  'xtc',
  'temperature',
];

/** Sampler names from their letters; throws an Error naming the first letter it does not know. */
export function samplersFromLetters(letters: string): string[] {
  return [...letters].map((c) => {
    const name = SAMPLER_LETTERS[c];
    if (name === undefined) throw new Error(`unknown sampler letter '${c}'`);
    return name;
  });
}
