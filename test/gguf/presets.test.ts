import t from 'tap';
import {
  getPreset,
  isPresetName,
  PRESET_NAMES,
  parameterCount,
  presetMetadata,
  presetTensors,
} from '../../src/gguf/presets.ts';
import { GgmlType, GgufValue, tensorBytes } from '../../src/gguf/types.ts';

t.test('parameter counts', async (t) => {
  // Gemma-3-1B: llama.cpp prints "999.89 M" for the real model and for ours.
  t.equal(parameterCount(presetTensors(getPreset('gemma3-1b'))), 999_885_952);
  t.equal(parameterCount(presetTensors(getPreset('tiny'))), 17_958_144);
  t.equal(parameterCount(presetTensors(getPreset('tiny-gemma3'))), 12_918_528);
});

t.test('gemma3-1b matches the real model tensor for tensor', async (t) => {
  const tensors = presetTensors(getPreset('gemma3-1b'));
  t.equal(tensors.length, 2 + 26 * 13);
  const byName = new Map(tensors.map((x) => [x.name, x]));
  t.same(byName.get('token_embd.weight')?.dims, [1152, 262144]);
  t.same(byName.get('blk.0.attn_q.weight')?.dims, [1152, 1024]);
  t.same(byName.get('blk.0.attn_k.weight')?.dims, [1152, 256]);
  t.same(byName.get('blk.0.attn_v.weight')?.dims, [1152, 256]);
  t.same(byName.get('blk.0.attn_output.weight')?.dims, [1024, 1152]);
  t.same(byName.get('blk.25.ffn_down.weight')?.dims, [6912, 1152]);
  t.same(byName.get('blk.25.attn_k_norm.weight')?.dims, [256]);
  t.ok(byName.has('blk.7.post_attention_norm.weight'));
  t.ok(byName.has('blk.7.post_ffw_norm.weight'));
  t.notOk(byName.has('output.weight'), 'tied output');
  // F16 size on disk, as llama.cpp reports it: 1907.39 MiB.
  const bytes = tensors.reduce((sum, x) => sum + tensorBytes(x.type, x.dims), 0);
  t.equal((bytes / 2 ** 20).toFixed(2), '1907.39');
});

t.test('every preset: norms are 1-D F32 ones, biases F32 zeros, weights 2-D F16, names unique', async (t) => {
  for (const name of PRESET_NAMES) {
    const tensors = presetTensors(getPreset(name));
    t.equal(new Set(tensors.map((x) => x.name)).size, tensors.length, `${name}: unique names`);
    for (const tensor of tensors) {
      const isNorm = tensor.name.includes('norm');
      // BERT's layer norms have biases (zeros), and its token-type table is F32 (ggml adds it to F32 activations).
      const isBias = tensor.name.endsWith('.bias');
      const f32Table = tensor.name === 'token_types.weight';
      const ok = isBias
        ? tensor.dims.length === 1 &&
          tensor.type === GgmlType.F32 &&
          tensor.init.kind === 'constant' &&
          tensor.init.value === 0
        : isNorm
          ? tensor.dims.length === 1 &&
            tensor.type === GgmlType.F32 &&
            tensor.init.kind === 'constant' &&
            tensor.init.value === 1
          : tensor.dims.length === 2 &&
            tensor.type === (f32Table ? GgmlType.F32 : GgmlType.F16) &&
            tensor.init.kind === 'normal' &&
            tensor.init.std > 0 &&
            tensor.init.std <= 0.02;
      if (!ok) t.fail(`${name}: ${tensor.name} ${JSON.stringify(tensor)}`);
    }
  }
});

t.test('tiny presets can be K-quantized: every matrix row is whole 256-element blocks', async (t) => {
  for (const name of ['tiny', 'tiny-gemma3', 'gemma3-draft'] as const) {
    const rows = presetTensors(getPreset(name)).filter((x) => x.dims.length === 2);
    t.ok(
      rows.every((x) => x.dims[0]! % 256 === 0),
      name,
    );
  }
});

t.test('metadata uses llama.cpp key names', async (t) => {
  const gemma = new Map(presetMetadata(getPreset('gemma3-1b')));
  t.same(gemma.get('general.architecture'), GgufValue.string('gemma3'));
  t.same(gemma.get('general.file_type'), GgufValue.uint32(1));
  t.same(gemma.get('gemma3.block_count'), GgufValue.uint32(26));
  t.same(gemma.get('gemma3.attention.key_length'), GgufValue.uint32(256));
  t.same(gemma.get('gemma3.attention.sliding_window'), GgufValue.uint32(512));
  t.same(gemma.get('gemma3.attention.sliding_window_pattern'), GgufValue.uint32(6));
  t.same(gemma.get('gemma3.rope.freq_base'), GgufValue.float32(1e6));
  t.same(gemma.get('gemma3.rope.freq_base_swa'), GgufValue.float32(1e4));
  t.same(gemma.get('gemma3.context_length'), GgufValue.uint32(32768));
  t.notOk(gemma.has('general.quantization_version'), 'set by llama_model_quantize, not by us');

  const tiny = new Map(presetMetadata(getPreset('tiny')));
  t.same(tiny.get('llama.attention.head_count_kv'), GgufValue.uint32(2));
  t.same(tiny.get('llama.rope.dimension_count'), GgufValue.uint32(64));
  t.notOk(tiny.has('llama.attention.sliding_window'));
});

t.test('chat templates are recognised by llama.cpp', async (t) => {
  t.match(getPreset('tiny').chatTemplate, '<|im_start|>');
  const gemma = getPreset('gemma3-1b').chatTemplate;
  t.match(gemma, '<start_of_turn>');
  t.match(gemma, '<end_of_turn>');
  t.match(gemma, 'set role = "model"');
  t.equal(getPreset('tiny-gemma3').chatTemplate, gemma);
});

t.test("gemma3-draft: a tiny gemma3 over gemma3-1b's vocabulary, context and window (a draft for it)", async (t) => {
  const draft = getPreset('gemma3-draft');
  const target = getPreset('gemma3-1b');
  t.equal(draft.arch, 'gemma3');
  t.equal(draft.vocabFile, target.vocabFile);
  t.equal(draft.vocabSize, target.vocabSize);
  t.equal(draft.chatTemplate, target.chatTemplate);
  t.match(draft.hparams, { embeddingLength: 256, blockCount: 6, contextLength: target.hparams.contextLength });
  t.same(draft.hparams.slidingWindow, target.hparams.slidingWindow);
  const byName = new Map(presetTensors(draft).map((x) => [x.name, x]));
  t.same(byName.get('token_embd.weight')?.dims, [256, 262144]);
  t.notOk(byName.has('blk.6.attn_q.weight'), 'six layers');
});

t.test('isPresetName', async (t) => {
  t.ok(isPresetName('tiny'));
  t.notOk(isPresetName('huge'));
});

t.test("tiny-bert: what llama.cpp's BERT loader requires, with the bge vocabulary", async (t) => {
  const bert = getPreset('tiny-bert');
  t.equal(bert.vocabFile, 'ggml-vocab-bert-bge.gguf');
  t.equal(bert.chatTemplate, '', 'an embedding model has no chat template');
  const meta = new Map(presetMetadata(bert));
  t.same(meta.get('general.architecture'), GgufValue.string('bert'));
  t.same(meta.get('bert.attention.causal'), GgufValue.bool(false));
  t.same(meta.get('bert.pooling_type'), GgufValue.uint32(2), 'CLS, as bge');
  t.ok(meta.has('bert.attention.layer_norm_epsilon'));
  t.notOk(meta.has('bert.rope.freq_base'), 'learned positions, no rope');
  const byName = new Map(presetTensors(bert).map((x) => [x.name, x]));
  t.same(byName.get('position_embd.weight')?.dims, [128, 512], 'one row per position of the training context');
  t.same(byName.get('token_types.weight')?.dims, [128, 2]);
  for (const name of ['token_embd_norm', 'blk.1.attn_output_norm', 'blk.1.layer_output_norm']) {
    t.ok(byName.has(`${name}.weight`) && byName.has(`${name}.bias`), name);
  }
  t.notOk(byName.has('output_norm.weight'), 'no output head');
});
