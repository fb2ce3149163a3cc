// Model presets: hyperparameters, metadata keys and the full tensor list, named exactly as llama.cpp
// expects them (src/llama-arch.cpp LLM_KV_NAMES and LLM_TENSOR_NAMES, src/models/llama.cpp, gemma3.cpp and bert.cpp).
import { GgmlType, GgufValue } from './types.ts';

export const PRESET_NAMES = [
  'tiny',
  'tiny-gemma3',
  'tiny-qwen',
  'tiny-chat',
  'gemma3-1b',
  'gemma3-draft',
  'tiny-bert',
] as const;
export type PresetName = (typeof PRESET_NAMES)[number];

export interface SlidingWindowAttention {
  /** Tokens a sliding-window layer attends to. */
  window: number;
  /** Every `pattern`-th layer is global, the rest slide (llama.cpp's default for gemma3 is 6). */
  pattern: number;
  ropeFreqBaseSwa: number;
}

export interface Hyperparameters {
  contextLength: number;
  embeddingLength: number;
  blockCount: number;
  feedForwardLength: number;
  headCount: number;
  headCountKv: number;
  /** key_length = value_length = rope dimension count. */
  headDim: number;
  /** RMS norm epsilon; for bert, its layer norm's epsilon. */
  rmsEps: number;
  ropeFreqBase: number;
  slidingWindow?: SlidingWindowAttention;
  /** No output.weight: llama.cpp reuses token_embd.weight for the logits. */
  tiedOutput: boolean;
  /** An embedding model's pooling (llama_pooling_type: 1 mean, 2 cls, 3 last); bert only. */
  poolingType?: number;
}

export interface Preset {
  name: PresetName;
  arch: 'llama' | 'gemma3' | 'bert';
  /** general.name */
  modelName: string;
  /** A vocab-only GGUF in llama.cpp's models/ folder whose tokenizer.* keys we copy. */
  vocabFile: string;
  vocabSize: number;
  hparams: Hyperparameters;
  /** Empty: no tokenizer.chat_template (an embedding model has none). */
  chatTemplate: string;
  /** A template of llama.cpp's corpus (models/templates/) to embed instead of chatTemplate. */
  chatTemplateFile?: string;
  /** Tokens to rename in the copied vocabulary (id -> text), as user-defined tokens. */
  addedTokens?: Readonly<Record<number, string>>;
  /**
   * Keep only the vocabulary's first tokens (a SentencePiece one: its specials, the 256 byte tokens that spell any
   * text, then its most frequent pieces): the output layer, and what sampling with a grammar walks, shrink to it.
   */
  vocabKeep?: number;
  /**
   * false: SentencePiece adds no space before text, at the start or after a special token, as byte-level vocabularies
   * don't (tokenizer.ggml.add_space_prefix): a chat template's markers then read the same alone and in a text.
   */
  addSpacePrefix?: boolean;
}

/** How a tensor's values are made: norms hold their multiplier, weights are random. */
export type TensorInit = { kind: 'constant'; value: number } | { kind: 'normal'; std: number };

export interface TensorSpec {
  name: string;
  dims: number[];
  type: GgmlType;
  init: TensorInit;
}

// A plain ChatML template: llama.cpp's template detection recognises it by "<|im_start|>".
const CHATML_TEMPLATE =
  "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}" +
  "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

// Gemma 3's template as published with google/gemma-3-*-it (tokenizer_config.json): a system message is
// folded into the first user turn and "assistant" is renamed "model". llama.cpp detects "<start_of_turn>".
const GEMMA3_TEMPLATE = `{{ bos_token }}
{%- if messages[0]['role'] == 'system' -%}
    {%- if messages[0]['content'] is string -%}
        {%- set first_user_prefix = messages[0]['content'] + '\n\n' -%}
    {%- else -%}
        {%- set first_user_prefix = messages[0]['content'][0]['text'] + '\n\n' -%}
    {%- endif -%}
    {%- set loop_messages = messages[1:] -%}
{%- else -%}
    {%- set first_user_prefix = "" -%}
    {%- set loop_messages = messages -%}
{%- endif -%}
{%- for message in loop_messages -%}
    {%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) -%}
        {{ raise_exception("Conversation roles must alternate user/assistant/user/assistant/...") }}
    {%- endif -%}
    {%- if (message['role'] == 'assistant') -%}
        {%- set role = "model" -%}
    {%- else -%}
        {%- set role = message['role'] -%}
    {%- endif -%}
    {{ '<start_of_turn>' + role + '\n' + (first_user_prefix if loop.first else "") }}
    {%- if message['content'] is string -%}
        {{ message['content'] | trim }}
    {%- elif message['content'] is iterable -%}
        {%- for item in message['content'] -%}
            {%- if item['type'] == 'image' -%}
                {{ '<start_of_image>' }}
            {%- elif item['type'] == 'text' -%}
                {{ item['text'] | trim }}
            {%- endif -%}
        {%- endfor -%}
    {%- else -%}
        {{ raise_exception("Invalid content type") }}
    {%- endif -%}
    {{ '<end_of_turn>\n' }}
{%- endfor -%}
{%- if add_generation_prompt -%}
    {{'<start_of_turn>model\n'}}
{%- endif -%}
`;

const PRESETS: Readonly<Record<PresetName, Preset>> = {
  // n_embd and n_ff are multiples of 256 so that Q4_K_M really uses K-quants on every weight.
  tiny: {
    name: 'tiny',
    arch: 'llama',
    modelName: 'tiny-random',
    vocabFile: 'ggml-vocab-llama-spm.gguf',
    vocabSize: 32000,
    hparams: {
      contextLength: 2048,
      embeddingLength: 256,
      blockCount: 2,
      feedForwardLength: 768,
      headCount: 4,
      headCountKv: 2,
      headDim: 64,
      rmsEps: 1e-5,
      ropeFreqBase: 10000,
      tiedOutput: false,
    },
    chatTemplate: CHATML_TEMPLATE,
  },
  // Gemma 3's structure (5 sliding + 1 global layer, q/k norms, post norms, tied output) at test size.
  'tiny-gemma3': {
    name: 'tiny-gemma3',
    arch: 'gemma3',
    modelName: 'tiny-gemma3-random',
    vocabFile: 'ggml-vocab-llama-spm.gguf',
    vocabSize: 32000,
    hparams: {
      contextLength: 4096,
      embeddingLength: 256,
      blockCount: 6,
      feedForwardLength: 768,
      headCount: 2,
      headCountKv: 1,
      headDim: 128,
      rmsEps: 1e-6,
      ropeFreqBase: 1e6,
      slidingWindow: { window: 64, pattern: 6, ropeFreqBaseSwa: 1e4 },
      tiedOutput: true,
    },
    chatTemplate: GEMMA3_TEMPLATE,
  },
  // A byte-level BPE vocabulary (Qwen 2's, with <|im_start|> and <|im_end|> as control tokens) under Qwen 2.5's
  // tool-calling template: tools and structured output as a Qwen model sees them, at test size. SentencePiece
  // vocabularies can't stand in here: llama.cpp advances a tool grammar past the template's generation prompt
  // token by token, and SPM's leading-space piece breaks that.
  'tiny-qwen': {
    name: 'tiny-qwen',
    arch: 'llama',
    modelName: 'tiny-qwen-random',
    vocabFile: 'ggml-vocab-qwen2.gguf',
    vocabSize: 151936,
    hparams: {
      contextLength: 4096,
      embeddingLength: 128,
      blockCount: 2,
      feedForwardLength: 384,
      headCount: 2,
      headCountKv: 1,
      headDim: 64,
      rmsEps: 1e-6,
      ropeFreqBase: 1e6,
      tiedOutput: true,
    },
    chatTemplate: CHATML_TEMPLATE,
    chatTemplateFile: 'Qwen-Qwen2.5-7B-Instruct.jinja',
    // Qwen 2.5 made its tool-call markers whole tokens where Qwen 2 has padding (its added_tokens).
    addedTokens: { 151657: '<tool_call>', 151658: '</tool_call>' },
  },
  // The smallest model that chats: for tests that run every template of llama.cpp's corpus, each with its own
  // markers added to the vocabulary (make-model --template-special-tokens), where sampling, not the model, costs.
  'tiny-chat': {
    name: 'tiny-chat',
    arch: 'llama',
    modelName: 'tiny-chat-random',
    vocabFile: 'ggml-vocab-llama-spm.gguf',
    vocabSize: 32000,
    vocabKeep: 1024,
    addSpacePrefix: false,
    hparams: {
      contextLength: 4096,
      embeddingLength: 64,
      blockCount: 1,
      feedForwardLength: 128,
      headCount: 2,
      headCountKv: 1,
      headDim: 32,
      rmsEps: 1e-5,
      ropeFreqBase: 10000,
      tiedOutput: true,
    },
    chatTemplate: CHATML_TEMPLATE,
  },
  // Gemma-3-1B's exact shapes: 999,885,952 parameters, which llama.cpp prints as "999.89 M".
  'gemma3-1b': {
    name: 'gemma3-1b',
    arch: 'gemma3',
    modelName: 'gemma3-1b-random',
    vocabFile: 'ggml-vocab-gemma-4.gguf',
    vocabSize: 262144,
    hparams: {
      contextLength: 32768,
      embeddingLength: 1152,
      blockCount: 26,
      feedForwardLength: 6912,
      headCount: 4,
      headCountKv: 1,
      headDim: 256,
      rmsEps: 1e-6,
      ropeFreqBase: 1e6,
      slidingWindow: { window: 512, pattern: 6, ropeFreqBaseSwa: 1e4 },
      tiedOutput: true,
    },
    chatTemplate: GEMMA3_TEMPLATE,
  },
  // A draft model for gemma3-1b (speculative decoding benchmarks, -md): tiny-gemma3's structure over gemma3-1b's
  // vocabulary, context and sliding window, so llama.cpp accepts it as a draft of the same vocabulary.
  'gemma3-draft': {
    name: 'gemma3-draft',
    arch: 'gemma3',
    modelName: 'gemma3-draft-random',
    vocabFile: 'ggml-vocab-gemma-4.gguf',
    vocabSize: 262144,
    hparams: {
      contextLength: 32768,
      embeddingLength: 256,
      blockCount: 6,
      feedForwardLength: 768,
      headCount: 2,
      headCountKv: 1,
      headDim: 128,
      rmsEps: 1e-6,
      ropeFreqBase: 1e6,
      slidingWindow: { window: 512, pattern: 6, ropeFreqBaseSwa: 1e4 },
      tiedOutput: true,
    },
    chatTemplate: GEMMA3_TEMPLATE,
  },
  // An embedding model for tests: BERT's structure (learned positions, layer norms with biases, non-causal
  // attention, CLS pooling, as bge-small) with llama.cpp's bge WordPiece vocabulary, at test size.
  'tiny-bert': {
    name: 'tiny-bert',
    arch: 'bert',
    modelName: 'tiny-bert-random',
    vocabFile: 'ggml-vocab-bert-bge.gguf',
    vocabSize: 30522,
    hparams: {
      contextLength: 512,
      embeddingLength: 128,
      blockCount: 2,
      feedForwardLength: 256,
      headCount: 2,
      headCountKv: 2,
      headDim: 64,
      rmsEps: 1e-12,
      ropeFreqBase: 10000,
      tiedOutput: true,
      poolingType: 2,
    },
    chatTemplate: '',
  },
};

export function isPresetName(name: string): name is PresetName {
  return (PRESET_NAMES as readonly string[]).includes(name);
}

export function getPreset(name: PresetName): Preset {
  return PRESETS[name];
}

/** The architecture's metadata (general.* and `<arch>.*`); tokenizer keys come from the vocab file. */
export function presetMetadata(preset: Preset): [string, GgufValue][] {
  const { arch, hparams: hp } = preset;
  if (arch === 'bert') return bertMetadata(preset);
  const entries: [string, GgufValue][] = [
    ['general.architecture', GgufValue.string(arch)],
    ['general.name', GgufValue.string(preset.modelName)],
    ['general.file_type', GgufValue.uint32(1)], // LLAMA_FTYPE_MOSTLY_F16; llama_model_quantize rewrites it
    [`${arch}.context_length`, GgufValue.uint32(hp.contextLength)],
    [`${arch}.embedding_length`, GgufValue.uint32(hp.embeddingLength)],
    [`${arch}.block_count`, GgufValue.uint32(hp.blockCount)],
    [`${arch}.feed_forward_length`, GgufValue.uint32(hp.feedForwardLength)],
    [`${arch}.attention.head_count`, GgufValue.uint32(hp.headCount)],
    [`${arch}.attention.head_count_kv`, GgufValue.uint32(hp.headCountKv)],
    [`${arch}.attention.key_length`, GgufValue.uint32(hp.headDim)],
    [`${arch}.attention.value_length`, GgufValue.uint32(hp.headDim)],
    [`${arch}.attention.layer_norm_rms_epsilon`, GgufValue.float32(hp.rmsEps)],
    [`${arch}.rope.freq_base`, GgufValue.float32(hp.ropeFreqBase)],
  ];
  if (arch === 'llama') {
    entries.push([`${arch}.rope.dimension_count`, GgufValue.uint32(hp.headDim)]);
    entries.push([`${arch}.vocab_size`, GgufValue.uint32(preset.vocabSize)]);
  }
  if (hp.slidingWindow !== undefined) {
    entries.push([`${arch}.attention.sliding_window`, GgufValue.uint32(hp.slidingWindow.window)]);
    entries.push([`${arch}.attention.sliding_window_pattern`, GgufValue.uint32(hp.slidingWindow.pattern)]);
    entries.push([`${arch}.rope.freq_base_swa`, GgufValue.float32(hp.slidingWindow.ropeFreqBaseSwa)]);
  }
  return entries;
}

// BERT's keys (src/models/bert.cpp): a layer norm epsilon, non-causal attention, the pooling; no rope.
function bertMetadata(preset: Preset): [string, GgufValue][] {
  const hp = preset.hparams;
  return [
    ['general.architecture', GgufValue.string('bert')],
    ['general.name', GgufValue.string(preset.modelName)],
    ['general.file_type', GgufValue.uint32(1)],
    ['bert.context_length', GgufValue.uint32(hp.contextLength)],
    ['bert.embedding_length', GgufValue.uint32(hp.embeddingLength)],
    ['bert.block_count', GgufValue.uint32(hp.blockCount)],
    ['bert.feed_forward_length', GgufValue.uint32(hp.feedForwardLength)],
    ['bert.attention.head_count', GgufValue.uint32(hp.headCount)],
    ['bert.attention.layer_norm_epsilon', GgufValue.float32(hp.rmsEps)],
    ['bert.attention.causal', GgufValue.bool(false)],
    ['bert.pooling_type', GgufValue.uint32(hp.poolingType ?? 2)],
  ];
}

const WEIGHT_STD = 0.02;

/** Every tensor llama.cpp loads for this preset, in file order. 1-D norms are F32, matrices F16. */
export function presetTensors(preset: Preset): TensorSpec[] {
  const hp = preset.hparams;
  const nEmbd = hp.embeddingLength;
  const nQ = hp.headDim * hp.headCount;
  const nKv = hp.headDim * hp.headCountKv;
  const nFf = hp.feedForwardLength;
  // Projections that add into the residual stream get a smaller std (GPT-2's 1/sqrt(2·layers)), so the
  // stream stays well scaled through all layers.
  const residualStd = WEIGHT_STD / Math.sqrt(2 * hp.blockCount);

  const norm = (name: string, size: number): TensorSpec => ({
    name,
    dims: [size],
    type: GgmlType.F32,
    init: { kind: 'constant', value: 1 },
  });
  const weight = (name: string, dims: number[], std = WEIGHT_STD): TensorSpec => ({
    name,
    dims,
    type: GgmlType.F16,
    init: { kind: 'normal', std },
  });
  if (preset.arch === 'bert') return bertTensors(preset, norm, weight, residualStd);

  const tensors: TensorSpec[] = [weight('token_embd.weight', [nEmbd, preset.vocabSize])];
  for (let i = 0; i < hp.blockCount; i++) {
    const blk = `blk.${i}`;
    tensors.push(
      norm(`${blk}.attn_norm.weight`, nEmbd),
      weight(`${blk}.attn_q.weight`, [nEmbd, nQ]),
      weight(`${blk}.attn_k.weight`, [nEmbd, nKv]),
      weight(`${blk}.attn_v.weight`, [nEmbd, nKv]),
      weight(`${blk}.attn_output.weight`, [nQ, nEmbd], residualStd),
    );
    if (preset.arch === 'gemma3') {
      tensors.push(
        norm(`${blk}.attn_q_norm.weight`, hp.headDim),
        norm(`${blk}.attn_k_norm.weight`, hp.headDim),
        norm(`${blk}.post_attention_norm.weight`, nEmbd),
      );
    }
    tensors.push(
      norm(`${blk}.ffn_norm.weight`, nEmbd),
      weight(`${blk}.ffn_gate.weight`, [nEmbd, nFf]),
      weight(`${blk}.ffn_up.weight`, [nEmbd, nFf]),
      weight(`${blk}.ffn_down.weight`, [nFf, nEmbd], residualStd),
    );
    if (preset.arch === 'gemma3') tensors.push(norm(`${blk}.post_ffw_norm.weight`, nEmbd));
  }
  tensors.push(norm('output_norm.weight', nEmbd));
  if (!hp.tiedOutput) tensors.push(weight('output.weight', [nEmbd, preset.vocabSize]));
  return tensors;
}

type NormSpec = (name: string, size: number) => TensorSpec;
type WeightSpec = (name: string, dims: number[], std?: number) => TensorSpec;

// What llama_model_bert::load_arch_tensors requires: token, type and position embeddings, post-norm layers whose
// layer norms have biases (zero here). The optional projection biases are left out.
function bertTensors(preset: Preset, norm: NormSpec, weight: WeightSpec, residualStd: number): TensorSpec[] {
  const hp = preset.hparams;
  const nEmbd = hp.embeddingLength;
  const bias = (name: string, size: number): TensorSpec => ({
    name,
    dims: [size],
    type: GgmlType.F32,
    init: { kind: 'constant', value: 0 },
  });
  const tensors: TensorSpec[] = [
    weight('token_embd.weight', [nEmbd, preset.vocabSize]),
    // F32: the graph adds its row to F32 activations, which ggml's CPU add takes only in the same type.
    { ...weight('token_types.weight', [nEmbd, 2]), type: GgmlType.F32 },
    weight('position_embd.weight', [nEmbd, hp.contextLength]),
    norm('token_embd_norm.weight', nEmbd),
    bias('token_embd_norm.bias', nEmbd),
  ];
  for (let i = 0; i < hp.blockCount; i++) {
    const blk = `blk.${i}`;
    tensors.push(
      weight(`${blk}.attn_q.weight`, [nEmbd, nEmbd]),
      weight(`${blk}.attn_k.weight`, [nEmbd, nEmbd]),
      weight(`${blk}.attn_v.weight`, [nEmbd, nEmbd]),
      weight(`${blk}.attn_output.weight`, [nEmbd, nEmbd], residualStd),
      norm(`${blk}.attn_output_norm.weight`, nEmbd),
      bias(`${blk}.attn_output_norm.bias`, nEmbd),
      weight(`${blk}.ffn_up.weight`, [nEmbd, hp.feedForwardLength]),
      weight(`${blk}.ffn_down.weight`, [hp.feedForwardLength, nEmbd], residualStd),
      norm(`${blk}.layer_output_norm.weight`, nEmbd),
      bias(`${blk}.layer_output_norm.bias`, nEmbd),
    );
  }
  return tensors;
}

/** Total elements over all tensors, which is what llama.cpp reports as the model's parameter count. */
export function parameterCount(tensors: readonly { dims: readonly number[] }[]): number {
  return tensors.reduce((sum, t) => sum + t.dims.reduce((n, ne) => n * ne, 1), 0);
}
