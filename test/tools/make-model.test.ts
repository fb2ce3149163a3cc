import { createHash } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import t from 'tap';
import { markerTokens } from '../../src/gguf/generate.ts';
import { getPreset, presetTensors } from '../../src/gguf/presets.ts';
import { getString, getStringArray, getUint, readGguf } from '../../src/gguf/reader.ts';
import { GgmlType } from '../../src/gguf/types.ts';
import { llamaCppDir } from '../../src/paths.ts';
import {
  MAKE_MODEL_USAGE,
  makeModel,
  parseMakeModelArgs,
  runMakeModel,
  templateMarkerTokens,
} from '../../src/tools/make-model.ts';

const dir = t.testdir({});

async function sha256(path: string): Promise<string> {
  return createHash('sha256')
    .update(await readFile(path))
    .digest('hex');
}

t.test('tiny F16: deterministic per seed, valid, complete', async (t) => {
  const a = join(dir, 'a.gguf');
  const b = join(dir, 'b.gguf');
  const c = join(dir, 'c.gguf');
  const fractions: number[] = [];
  const started = performance.now();
  await makeModel({
    preset: 'tiny',
    quant: 'F16',
    seed: 1,
    out: a,
    onProgress: (fraction) => fractions.push(fraction),
  });
  t.comment(`tiny F16 generated in ${(performance.now() - started).toFixed(0)} ms`);
  await makeModel({ preset: 'tiny', quant: 'F16', seed: 1, out: b });
  await makeModel({ preset: 'tiny', quant: 'F16', seed: 2, out: c });
  t.equal(await sha256(a), await sha256(b), 'same seed, same bytes');
  t.not(await sha256(a), await sha256(c), 'different seed, different bytes');
  t.equal(fractions.at(-1), 1);
  t.ok(
    fractions.every((x, i) => i === 0 || x >= fractions[i - 1]!),
    'progress only grows',
  );
  t.same((await readdir(dir)).sort(), ['a.gguf', 'b.gguf', 'c.gguf'], 'no temporary files left behind');

  const file = await readGguf(a);
  const preset = getPreset('tiny');
  t.same(
    file.tensors.map((x) => [x.name, x.dims, x.type]),
    presetTensors(preset).map((x) => [x.name, x.dims, x.type]),
  );
  t.equal(getString(file, 'general.architecture'), 'llama');
  t.equal(getString(file, 'general.name'), 'tiny-random');
  t.equal(getUint(file, 'general.file_type'), 1);
  t.equal(getUint(file, 'llama.block_count'), 2);
  t.equal(getString(file, 'tokenizer.ggml.model'), 'llama');
  t.equal(getStringArray(file, 'tokenizer.ggml.tokens')?.length, 32000);
  t.equal(getString(file, 'tokenizer.chat_template'), preset.chatTemplate);

  // Norms hold 1.0; weights are small and finite.
  const bytes = await readFile(a);
  const norm = file.tensors.find((x) => x.name === 'blk.0.attn_norm.weight')!;
  const normValues = new Float32Array(
    bytes.buffer.slice(
      bytes.byteOffset + file.dataOffset + norm.offset,
      bytes.byteOffset + file.dataOffset + norm.offset + norm.nbytes,
    ),
  );
  t.ok(normValues.every((x) => x === 1));
  const weight = file.tensors.find((x) => x.name === 'blk.1.ffn_up.weight')!;
  t.equal(weight.type, GgmlType.F16);
  const at = file.dataOffset + weight.offset;
  let maxExponent = 0;
  for (let i = 0; i < weight.nbytes; i += 2)
    maxExponent = Math.max(maxExponent, (bytes.readUInt16LE(at + i) >> 10) & 0x1f);
  t.ok(maxExponent > 0 && maxExponent < 15, 'every weight is below 1 in magnitude');
});

t.test('tiny-gemma3 F16 has the gemma3 layout', async (t) => {
  const out = join(dir, 'gemma.gguf');
  await makeModel({ preset: 'tiny-gemma3', quant: 'F16', seed: 1, out });
  const file = await readGguf(out);
  t.equal(getString(file, 'general.architecture'), 'gemma3');
  t.equal(getUint(file, 'gemma3.attention.sliding_window'), 64);
  t.match(getString(file, 'tokenizer.chat_template'), '<start_of_turn>');
  t.notOk(file.tensors.some((x) => x.name === 'output.weight'));
  t.equal(file.tensors.length, 2 + 6 * 13);
});

t.test('bad options are refused before anything is written', async (t) => {
  const out = join(dir, 'never.gguf');
  await t.rejects(makeModel({ preset: 'huge' as 'tiny', quant: 'F16', seed: 1, out }), /unknown preset 'huge'/);
  await t.rejects(makeModel({ preset: 'tiny', quant: 'Q3' as 'F16', seed: 1, out }), /unknown quantization 'Q3'/);
  await t.rejects(makeModel({ preset: 'tiny', quant: 'F16', seed: -1, out }), /seed/);
  t.notOk((await readdir(dir)).includes('never.gguf'));
});

t.test('parseMakeModelArgs', async (t) => {
  t.same(parseMakeModelArgs(['--preset', 'tiny', '--out', 'm.gguf']), {
    preset: 'tiny',
    quant: 'F16',
    seed: 1,
    out: 'm.gguf',
  });
  t.same(parseMakeModelArgs(['--preset=gemma3-1b', '--quant=Q4_K_M', '--seed=42', '--out=x/y.gguf']), {
    preset: 'gemma3-1b',
    quant: 'Q4_K_M',
    seed: 42,
    out: 'x/y.gguf',
  });
  const errors: [string[], RegExp][] = [
    [['--out', 'm.gguf'], /--preset is required/],
    [['--preset', 'tiny'], /--out is required/],
    [
      ['--preset', 'huge', '--out', 'm'],
      /--preset must be one of tiny, tiny-gemma3, tiny-qwen, tiny-chat, gemma3-1b, gemma3-draft, tiny-bert, got 'huge'/,
    ],
    [['--preset', 'tiny', '--quant', 'Q5_K', '--out', 'm'], /--quant must be one of F16, Q8_0, Q4_K_M, got 'Q5_K'/],
    [['--preset', 'tiny', '--seed', 'abc', '--out', 'm'], /--seed must be an integer, got 'abc'/],
    [['--preset', 'tiny', '--seed', '-3', '--out', 'm'], /--seed must be between 0 and 4294967295, got -3/],
    [
      ['--preset', 'tiny', '--seed', '4294967296', '--out', 'm'],
      /--seed must be between 0 and 4294967295, got 4294967296/,
    ],
    [['--preset', 'tiny', '--seed', '1.5', '--out', 'm'], /--seed must be an integer, got '1.5'/],
    [['--preset', 'tiny', '--out'], /--out needs a value/],
    [['--preset', '--out', 'm'], /--preset needs a value/],
    [['--preset=', '--out', 'm'], /--preset needs a value/],
    [['--preset', 'tiny', '--out', 'm', '--threads', '4'], /unknown option '--threads'/],
    [['--preset', 'tiny', '--out', 'm', 'extra'], /unexpected argument 'extra'/],
    [['--preset', 'tiny', '--preset', 'tiny', '--out', 'm'], /--preset is given twice/],
  ];
  for (const [argv, message] of errors) t.throws(() => parseMakeModelArgs(argv), message, argv.join(' '));
});

class Capture extends Writable {
  text = '';
  isTTY = false;
  override _write(chunk: Buffer, _encoding: BufferEncoding, done: () => void): void {
    this.text += chunk.toString();
    done();
  }
}

function capture(): { stdout: Capture; stderr: Capture & NodeJS.WriteStream } {
  return { stdout: new Capture(), stderr: new Capture() as Capture & NodeJS.WriteStream };
}

t.test('runMakeModel', async (t) => {
  const bad = capture();
  t.equal(await runMakeModel(['--preset', 'nope', '--out', 'x'], bad), 2);
  t.match(bad.stderr.text, /^make-model: --preset must be one of .*, got 'nope'/);
  t.match(bad.stderr.text, MAKE_MODEL_USAGE);

  const help = capture();
  t.equal(await runMakeModel(['--help'], help), 0);
  t.equal(help.stdout.text, MAKE_MODEL_USAGE);

  const ok = capture();
  const out = join(dir, 'cli.gguf');
  t.equal(await runMakeModel(['--preset', 'tiny', '--out', out, '--seed', '1'], ok), 0);
  t.match(ok.stderr.text, /make-model tiny F16: 0%/);
  t.match(ok.stderr.text, /make-model tiny F16: done in [\d.]+s/);
  t.equal(await sha256(out), await sha256(join(dir, 'a.gguf')));
});

t.test('--chat-template-file embeds any template; a missing file is an error naming it', async (t) => {
  const templateFile = join(llamaCppDir(), 'models', 'templates', 'google-gemma-4-31B-it.jinja');
  t.same(parseMakeModelArgs(['--preset', 'tiny', '--out', 'm.gguf', '--chat-template-file', templateFile]), {
    preset: 'tiny',
    quant: 'F16',
    seed: 1,
    out: 'm.gguf',
    chatTemplateFile: templateFile,
  });
  const out = join(dir, 'gemma4-template.gguf');
  const ok = capture();
  t.equal(await runMakeModel(['--preset', 'tiny', '--out', out, '--chat-template-file', templateFile], ok), 0);
  const embedded = (await readGguf(out)).metadata.get('tokenizer.chat_template');
  t.equal(embedded?.value, await readFile(templateFile, 'utf8'));

  const missing = capture();
  t.equal(
    await runMakeModel(['--preset', 'tiny', '--out', out, '--chat-template-file', join(dir, 'none.jinja')], missing),
    1,
  );
  t.match(missing.stderr.text, /cannot read --chat-template-file .*none\.jinja/);
});

t.test("tiny-chat: SentencePiece's first 1,024 tokens, no space prefix, a tied output", async (t) => {
  const out = join(dir, 'tiny-chat.gguf');
  await makeModel({ preset: 'tiny-chat', quant: 'F16', seed: 1, out });
  const file = await readGguf(out);
  const tokens = getStringArray(file, 'tokenizer.ggml.tokens') ?? [];
  t.equal(tokens.length, 1024);
  t.equal(tokens[3], '<0x00>', 'the byte tokens that spell any text');
  const scores = file.metadata.get('tokenizer.ggml.scores')?.value;
  t.equal(scores instanceof Float32Array ? scores.length : 0, 1024, 'scores cut with the tokens');
  t.equal(file.metadata.get('tokenizer.ggml.add_space_prefix')?.value, false);
  t.same(file.tensors.find((x) => x.name === 'token_embd.weight')?.dims, [64, 1024]);
  t.notOk(file.tensors.some((x) => x.name === 'output.weight'));
});

t.test('special tokens: a text the vocabulary lacks is added as a control token, one it has becomes one', async (t) => {
  const out = join(dir, 'special.gguf');
  await makeModel({ preset: 'tiny', quant: 'F16', seed: 1, out, specialTokens: ['<tool_call>', '</s>', 'the'] });
  const file = await readGguf(out);
  const tokens = getStringArray(file, 'tokenizer.ggml.tokens') ?? [];
  const types = file.metadata.get('tokenizer.ggml.token_type')?.value as Int32Array;
  t.equal(tokens.length, 32001, 'one token added');
  t.equal(tokens[32000], '<tool_call>');
  t.equal(types[32000], 3, 'as a control token');
  t.equal(types[tokens.indexOf('</s>')], 3, 'a control token stays one');
  t.equal(types[tokens.indexOf('the')], 3, 'an ordinary token with the text becomes one');
  t.equal(getUint(file, 'llama.vocab_size'), 32001);
  t.same(file.tensors.find((x) => x.name === 'token_embd.weight')?.dims, [256, 32001], 'embeddings for it');
});

t.test('--vocab takes the tokenizer of another of llama.cpp vocab files; an unknown one is named', async (t) => {
  const out = join(dir, 'vocab.gguf');
  await makeModel({ preset: 'tiny-chat', quant: 'F16', seed: 1, out, vocab: 'qwen2', specialTokens: ['<think>'] });
  const file = await readGguf(out);
  t.equal(getString(file, 'tokenizer.ggml.model'), 'gpt2');
  t.equal(getStringArray(file, 'tokenizer.ggml.tokens')?.length, 151936 + 1, "qwen2's, whole, and <think>");
  t.notOk(file.metadata.has('tokenizer.ggml.add_space_prefix'), "the preset's SentencePiece setting is not carried");
  await t.rejects(
    makeModel({ preset: 'tiny', quant: 'F16', seed: 1, out, vocab: 'nope' }),
    /no vocabulary 'nope'.*qwen2/,
  );
});

t.test("markerTokens: a template's markers that are tokens of their own", async (t) => {
  t.same(markerTokens(['<|channel|>', '<|channel|>analysis<|message|>', '<|message|>', '>', '<seed:think>', '']), [
    '<|channel|>',
    '<|message|>',
    '<seed:think>',
  ]);
  const gemma4 = await templateMarkerTokens(
    await readFile(join(llamaCppDir(), 'models', 'templates', 'google-gemma-4-31B-it.jinja'), 'utf8'),
  );
  for (const m of ['<|tool_call>', '<tool_call|>', '<|channel>', '<channel|>']) t.ok(gemma4.includes(m), m);
  t.notOk(gemma4.includes('<|channel>thought'), 'the thinking tag is <|channel> then thought');
});

t.test('make-model --special-token / --template-special-tokens / --vocab', async (t) => {
  const templateFile = join(llamaCppDir(), 'models', 'templates', 'Qwen-Qwen3-0.6B.jinja');
  t.same(
    parseMakeModelArgs(['--preset', 'tiny-chat', '--out', 'm', '--special-token', 'a', '--special-token', 'b,c']),
    { preset: 'tiny-chat', quant: 'F16', seed: 1, out: 'm', specialTokens: ['a', 'b,c'] },
  );
  const out = join(dir, 'cli-markers.gguf');
  const ok = capture();
  const argv = [
    '--preset',
    'tiny-chat',
    '--out',
    out,
    '--chat-template-file',
    templateFile,
    '--template-special-tokens',
  ];
  t.equal(await runMakeModel([...argv, '--special-token', '<extra>'], ok), 0, ok.stderr.text);
  const tokens = getStringArray(await readGguf(out), 'tokenizer.ggml.tokens') ?? [];
  t.same(tokens.slice(1024), ['<extra>', '<think>', '</think>', '<tool_call>', '</tool_call>']);
  const bad = capture();
  t.equal(await runMakeModel(['--preset', 'tiny-bert', '--out', out, '--template-special-tokens'], bad), 1);
  t.match(bad.stderr.text, /--template-special-tokens: the preset has no chat template/);
});
