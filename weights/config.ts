/**
 * Typed model configs, read from the JSON files of a ConvLLaVA folder and checked field by field:
 *
 *   config.json                            → LlavaConfig   (LLaMA fields + llava mm_* fields)
 *   vision_tower/config.json               → ConvNextConfig (HF ConvNextModel, possibly with 5 stages)
 *   vision_tower/preprocessor_config.json  → PreprocessorConfig (CLIPImageProcessor)
 *
 * Optional fields get the defaults of the reference code (transformers' LlamaConfig / ConvNextConfig),
 * so model code reads every hyperparameter from here and never hard-codes one.
 */
import { CheckpointError, quote } from './errors.js';
import { preprocessorFor } from '../convnext/preprocess.js';

export interface LlavaConfig {
  architectures?: string[];
  model_type: string;
  bos_token_id: number;
  eos_token_id: number;
  pad_token_id?: number;
  hidden_act: string;
  hidden_size: number;
  intermediate_size: number;
  max_position_embeddings: number;
  num_attention_heads: number;
  num_hidden_layers: number;
  /** Defaults to num_attention_heads (no grouped-query attention). */
  num_key_value_heads: number;
  /** Defaults to hidden_size / num_attention_heads. */
  head_dim: number;
  rms_norm_eps: number;
  rope_scaling: Record<string, unknown> | null;
  rope_theta: number;
  tie_word_embeddings: boolean;
  torch_dtype?: string;
  vocab_size: number;
  attention_bias: boolean;
  // --- llava ---
  /** 'pad' (expand2square with the mean colour) or other LLaVA modes. */
  image_aspect_ratio: string;
  /** Width of the vision features entering the projector (the last vision stage's width). */
  mm_hidden_size: number;
  /** 'mlp2x_gelu' (Linear → GELU → Linear), 'mlpNx_gelu', 'linear' or 'identity'. */
  mm_projector_type: string;
  mm_use_im_patch_token: boolean;
  mm_use_im_start_end: boolean;
  mm_vision_select_layer: number;
  mm_vision_tower?: string;
  /** Input image side in pixels (ConvLLaVA: 768 / 1024 / 1536). */
  mm_vision_resolution: number;
  /** Depth of a fifth ConvNeXt stage added to a 4-stage tower (0: none). */
  vision_add_five_stage: number;
  /** Width of that fifth stage. */
  vision_five_stage_width: number;
  tokenizer_model_max_length?: number;
  tokenizer_padding_side?: string;
}

export interface ConvNextConfig {
  num_channels: number;
  patch_size: number;
  /** Number of stages, including an added fifth stage (see `normalizeVisionConfig`). */
  num_stages: number;
  /** Channels per stage (length num_stages). */
  hidden_sizes: number[];
  /** Blocks per stage (length num_stages). */
  depths: number[];
  hidden_act: string;
  layer_norm_eps: number;
  /** > 0: every block has a `layer_scale_parameter` [C]. */
  layer_scale_init_value: number;
  image_size: number;
  /** True when the fifth stage came from the llava config rather than the vision config. */
  five_stage_from_llava: boolean;
}

export interface PreprocessorConfig {
  crop_size: { height: number; width: number };
  do_center_crop: boolean;
  do_convert_rgb: boolean;
  do_normalize: boolean;
  do_rescale: boolean;
  do_resize: boolean;
  image_mean: [number, number, number];
  image_std: [number, number, number];
  /** PIL resample filter id (3 = bicubic). */
  resample: number;
  rescale_factor: number;
  size: { shortest_edge: number };
  image_processor_type?: string;
}

type Json = Record<string, unknown>;

/** Reads fields of one config file, failing with the file and field named. */
class Fields {
  constructor(
    private readonly json: Json,
    private readonly file: string,
  ) {}

  private fail(key: string, want: string): never {
    throw new CheckpointError(`${this.file}: '${key}' must be ${want}, got ${quote(this.json[key])}`, this.file);
  }

  has(key: string): boolean {
    return this.json[key] !== undefined && this.json[key] !== null;
  }

  int(key: string, fallback?: number, min = 1): number {
    const v = this.json[key] ?? fallback;
    if (!Number.isSafeInteger(v) || (v as number) < min) this.fail(key, `an integer ≥ ${min}`);
    return v as number;
  }

  num(key: string, fallback?: number): number {
    const v = this.json[key] ?? fallback;
    if (typeof v !== 'number' || !Number.isFinite(v)) this.fail(key, 'a number');
    return v as number;
  }

  /** A finite number > 0 (epsilons, rope_theta, scale factors: 0 or a negative gives NaN or nonsense). */
  positive(key: string, fallback?: number): number {
    const v = this.json[key] ?? fallback;
    if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) this.fail(key, 'a finite number > 0');
    return v as number;
  }

  str(key: string, fallback?: string): string {
    const v = this.json[key] ?? fallback;
    if (typeof v !== 'string') this.fail(key, 'a string');
    return v as string;
  }

  bool(key: string, fallback?: boolean): boolean {
    const v = this.json[key] ?? fallback;
    if (typeof v !== 'boolean') this.fail(key, 'true or false');
    return v as boolean;
  }

  ints(key: string, length?: number): number[] {
    const v = this.json[key];
    if (!Array.isArray(v) || !v.every((x) => Number.isSafeInteger(x) && x > 0) || (length !== undefined && v.length !== length)) {
      this.fail(key, `an array of ${length ?? ''} positive integers`.replace('of  ', 'of '));
    }
    return [...(v as number[])];
  }

  nums(key: string, length: number): number[] {
    const v = this.json[key];
    if (!Array.isArray(v) || v.length !== length || !v.every((x) => typeof x === 'number' && Number.isFinite(x))) {
      this.fail(key, `an array of ${length} numbers`);
    }
    return [...(v as number[])];
  }

  /** `length` finite non-zero numbers (divisors: a std of 0 would turn every pixel into ±Inf/NaN). */
  nonZeros(key: string, length: number): number[] {
    const v = this.nums(key, length);
    if (v.some((x) => x === 0)) this.fail(key, `an array of ${length} non-zero numbers`);
    return v;
  }

  object(key: string): Fields {
    const v = this.json[key];
    if (typeof v !== 'object' || v === null || Array.isArray(v)) this.fail(key, 'an object');
    return new Fields(v as Json, `${this.file} (${key})`);
  }
}

function asObject(json: unknown, file: string): Json {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    throw new CheckpointError(`${file}: expected a JSON object`, file);
  }
  return json as Json;
}

export function parseLlavaConfig(json: unknown, file: string): LlavaConfig {
  const f = new Fields(asObject(json, file), file);
  const heads = f.int('num_attention_heads');
  const hidden = f.int('hidden_size');
  const kvHeads = f.int('num_key_value_heads', heads);
  const defaultHeadDim = hidden / heads;
  if (!f.has('head_dim') && !Number.isInteger(defaultHeadDim)) {
    throw new CheckpointError(`${file}: hidden_size ${hidden} is not divisible by num_attention_heads ${heads}`, file);
  }
  if (heads % kvHeads !== 0) {
    throw new CheckpointError(`${file}: num_attention_heads ${heads} is not a multiple of num_key_value_heads ${kvHeads}`, file);
  }
  const raw = json as Json;
  const rope = raw.rope_scaling ?? null;
  if (rope !== null && (typeof rope !== 'object' || Array.isArray(rope))) {
    throw new CheckpointError(`${file}: 'rope_scaling' must be null or an object`, file);
  }
  const architectures = raw.architectures;
  return {
    architectures: Array.isArray(architectures) ? architectures.map(String) : undefined,
    model_type: f.str('model_type', 'llava_llama'),
    bos_token_id: f.int('bos_token_id', 1, 0),
    eos_token_id: f.int('eos_token_id', 2, 0),
    pad_token_id: f.has('pad_token_id') ? f.int('pad_token_id', undefined, 0) : undefined,
    hidden_act: f.str('hidden_act', 'silu'),
    hidden_size: hidden,
    intermediate_size: f.int('intermediate_size'),
    max_position_embeddings: f.int('max_position_embeddings', 2048),
    num_attention_heads: heads,
    num_hidden_layers: f.int('num_hidden_layers'),
    num_key_value_heads: kvHeads,
    head_dim: f.int('head_dim', defaultHeadDim),
    rms_norm_eps: f.positive('rms_norm_eps', 1e-6),
    rope_scaling: rope as Record<string, unknown> | null,
    rope_theta: f.positive('rope_theta', 10000),
    tie_word_embeddings: f.bool('tie_word_embeddings', false),
    torch_dtype: f.has('torch_dtype') ? f.str('torch_dtype') : undefined,
    vocab_size: f.int('vocab_size'),
    attention_bias: f.bool('attention_bias', false),
    image_aspect_ratio: f.str('image_aspect_ratio', 'pad'),
    mm_hidden_size: f.int('mm_hidden_size'),
    mm_projector_type: f.str('mm_projector_type', 'linear'),
    mm_use_im_patch_token: f.bool('mm_use_im_patch_token', false),
    mm_use_im_start_end: f.bool('mm_use_im_start_end', false),
    mm_vision_select_layer: f.int('mm_vision_select_layer', -1, -1e9),
    mm_vision_tower: f.has('mm_vision_tower') ? f.str('mm_vision_tower') : undefined,
    mm_vision_resolution: f.int('mm_vision_resolution'),
    vision_add_five_stage: f.int('vision_add_five_stage', 0, 0),
    vision_five_stage_width: f.int('vision_five_stage_width', 0, 0),
    tokenizer_model_max_length: f.has('tokenizer_model_max_length') ? f.int('tokenizer_model_max_length') : undefined,
    tokenizer_padding_side: f.has('tokenizer_padding_side') ? f.str('tokenizer_padding_side') : undefined,
  };
}

/**
 * The vision tower config. ConvLLaVA adds a fifth stage to a 4-stage ConvNeXt: the vision config may
 * already list five stages (as the fixture does), or list four, with the llava config's
 * `vision_add_five_stage` (depth) and `vision_five_stage_width` (width) describing the fifth. Either
 * way the result lists every stage that has weights.
 */
export function parseConvNextConfig(json: unknown, file: string, llava?: LlavaConfig): ConvNextConfig {
  const f = new Fields(asObject(json, file), file);
  const numStages = f.int('num_stages', 4);
  const hidden = f.ints('hidden_sizes', numStages);
  const depths = f.ints('depths', numStages);
  let fromLlava = false;
  if (llava && llava.vision_add_five_stage > 0 && numStages === 4) {
    if (llava.vision_five_stage_width <= 0) {
      throw new CheckpointError(`config.json: vision_add_five_stage is ${llava.vision_add_five_stage} but vision_five_stage_width is missing`, 'config.json');
    }
    hidden.push(llava.vision_five_stage_width);
    depths.push(llava.vision_add_five_stage);
    fromLlava = true;
  }
  return {
    num_channels: f.int('num_channels', 3),
    patch_size: f.int('patch_size', 4),
    num_stages: hidden.length,
    hidden_sizes: hidden,
    depths,
    hidden_act: f.str('hidden_act', 'gelu'),
    layer_norm_eps: f.positive('layer_norm_eps', 1e-12),
    layer_scale_init_value: f.num('layer_scale_init_value', 1e-6),
    image_size: f.int('image_size', 224),
    five_stage_from_llava: fromLlava,
  };
}

export function parsePreprocessorConfig(json: unknown, file: string): PreprocessorConfig {
  const f = new Fields(asObject(json, file), file);
  const crop = f.object('crop_size');
  const size = f.object('size');
  return {
    crop_size: { height: crop.int('height'), width: crop.int('width') },
    do_center_crop: f.bool('do_center_crop', true),
    do_convert_rgb: f.bool('do_convert_rgb', true),
    do_normalize: f.bool('do_normalize', true),
    do_rescale: f.bool('do_rescale', true),
    do_resize: f.bool('do_resize', true),
    image_mean: f.nums('image_mean', 3) as [number, number, number],
    image_std: f.nonZeros('image_std', 3) as [number, number, number],
    resample: f.int('resample', 3, 0),
    rescale_factor: f.positive('rescale_factor', 1 / 255),
    size: { shortest_edge: size.int('shortest_edge') },
    image_processor_type: f.has('image_processor_type') ? f.str('image_processor_type') : undefined,
  };
}

/**
 * Checks that the three configs describe one model: the projector input width is the last vision
 * stage's width, and the input resolution is a multiple of the tower's total stride.
 */
export function checkConfigsAgree(llava: LlavaConfig, vision: ConvNextConfig, prep: PreprocessorConfig, dir: string): void {
  const last = vision.hidden_sizes[vision.num_stages - 1];
  if (llava.mm_hidden_size !== last) {
    throw new CheckpointError(
      `${dir}: config.json mm_hidden_size ${llava.mm_hidden_size} ≠ the last vision stage width ${last} (vision_tower/config.json hidden_sizes)`,
      dir,
    );
  }
  const stride = totalStride(vision);
  if (llava.mm_vision_resolution % stride !== 0) {
    throw new CheckpointError(`${dir}: mm_vision_resolution ${llava.mm_vision_resolution} is not a multiple of the tower's stride ${stride}`, dir);
  }
  if (prep.crop_size.height !== prep.crop_size.width) {
    throw new CheckpointError(`${dir}: vision_tower/preprocessor_config.json crop_size must be square`, dir);
  }
  // The reference encodes whatever crop its processor makes (set to mm_vision_resolution only above
  // 256 px) and splices every resulting row; the visual-token count and the context check here are
  // sized from mm_vision_resolution, so the two must agree.
  const crop = preprocessorFor(prep, llava.mm_vision_resolution).crop_size.height;
  if (crop !== llava.mm_vision_resolution) {
    throw new CheckpointError(
      `${dir}: vision_tower/preprocessor_config.json crop_size ${crop} ≠ config.json mm_vision_resolution ${llava.mm_vision_resolution} ` +
        `(the image would be encoded at ${crop}² into ${(crop / stride) ** 2} visual tokens, not ${(llava.mm_vision_resolution / stride) ** 2}); make them equal`,
      dir,
    );
  }
}

/** Pixels per output feature: the patch stem times 2 per downsampling stage. */
export function totalStride(vision: ConvNextConfig): number {
  return vision.patch_size * 2 ** (vision.num_stages - 1);
}

/** Visual tokens per image: (resolution / stride)², e.g. (1536/64)² = 576 for ConvLLaVA-1536. */
export function visualTokens(llava: LlavaConfig, vision: ConvNextConfig): number {
  const side = llava.mm_vision_resolution / totalStride(vision);
  return side * side;
}
