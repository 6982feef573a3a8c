/**
 * Synthetic ConvLLaVA model presets: the real architectures' configs (as they appear in the official
 * checkpoints' config.json files), used to build random-weight models for benchmarks and the demo
 * without downloading 14 GB.
 *
 *   tiny            the spec fixture's sizes (ConvNeXt 16/32/48/64/96, LLaMA 64 wide, 2 layers)
 *   tiny-32         tiny with Vicuna-7B's 32 decoder layers: the real per-token structure (dispatches,
 *                   passes, recording cost) at toy width
 *   convllava-768   ConvNeXt-L + stage 5 (3072 wide, 6 deep) at 768²  →  144 visual tokens, Vicuna-7B
 *   convllava-1024  … at 1024² → 256 visual tokens
 *   convllava-1536  … at 1536² → 576 visual tokens
 * Each has a vision-only variant (`<preset>-vision`): same configs, but only the vision tower and the
 * projector have weights (the decoder is never built).
 */

export interface PresetConfigs {
  /** Root config.json (llava_llama). */
  config: Record<string, unknown>;
  /** vision_tower/config.json (ConvNextConfig, five stages listed, as in the official releases). */
  visionConfig: Record<string, unknown>;
  /** vision_tower/preprocessor_config.json (CLIPImageProcessor). */
  preprocessorConfig: Record<string, unknown>;
  /** Build only the vision tower + projector. */
  visionOnly: boolean;
}

const CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073];
const CLIP_STD = [0.26862954, 0.26130258, 0.27577711];

/** The sizes a preset is made of (and other synthetic models, e.g. bench/load.ts's). */
export interface PresetSizes {
  resolution: number;
  widths: number[]; // five stages
  depths: number[];
  hidden: number;
  intermediate: number;
  layers: number;
  heads: number;
  kvHeads: number;
  maxPositions: number;
}

/** ConvNeXt-Large (192/384/768/1536 × 3/3/27/3) + ConvLLaVA's stage 5 (3072 wide, 6 deep). */
export const CONVNEXT_L_PLUS_STAGE5 = { widths: [192, 384, 768, 1536, 3072], depths: [3, 3, 27, 3, 6] };
/** Vicuna-7B v1.5 = LLaMA-2 7B (config.json of lmsys/vicuna-7b-v1.5). */
export const VICUNA_7B = { hidden: 4096, intermediate: 11008, layers: 32, heads: 32, kvHeads: 32, maxPositions: 4096 };

/** The spec fixture's sizes. */
const TINY: PresetSizes = {
  resolution: 256,
  widths: [16, 32, 48, 64, 96],
  depths: [1, 1, 2, 1, 2],
  hidden: 64,
  intermediate: 172,
  layers: 2,
  heads: 4,
  kvHeads: 4,
  maxPositions: 2048,
};

const SIZES: Record<string, PresetSizes> = {
  tiny: TINY,
  'tiny-32': { ...TINY, layers: VICUNA_7B.layers },
  'convllava-768': { resolution: 768, ...CONVNEXT_L_PLUS_STAGE5, ...VICUNA_7B },
  'convllava-1024': { resolution: 1024, ...CONVNEXT_L_PLUS_STAGE5, ...VICUNA_7B },
  'convllava-1536': { resolution: 1536, ...CONVNEXT_L_PLUS_STAGE5, ...VICUNA_7B },
};

export const PRESET_NAMES = [...Object.keys(SIZES), ...Object.keys(SIZES).map((n) => `${n}-vision`)];

export function preset(name: string): PresetConfigs {
  const visionOnly = name.endsWith('-vision');
  const s = SIZES[visionOnly ? name.slice(0, -'-vision'.length) : name];
  if (!s) throw new Error(`unknown preset '${name}'; choose one of: ${PRESET_NAMES.join(', ')}`);
  return presetConfigs(s, visionOnly);
}

/** The three config files of an official-layout ConvLLaVA folder with these sizes. */
export function presetConfigs(s: PresetSizes, visionOnly = false): PresetConfigs {
  const config = {
    architectures: ['LlavaLlamaForCausalLM'],
    model_type: 'llava_llama',
    bos_token_id: 1,
    eos_token_id: 2,
    pad_token_id: 0,
    hidden_act: 'silu',
    hidden_size: s.hidden,
    intermediate_size: s.intermediate,
    max_position_embeddings: s.maxPositions,
    num_attention_heads: s.heads,
    num_hidden_layers: s.layers,
    num_key_value_heads: s.kvHeads,
    rms_norm_eps: 1e-5,
    rope_scaling: null,
    rope_theta: 10000.0,
    tie_word_embeddings: false,
    torch_dtype: 'float16',
    vocab_size: 32000,
    image_aspect_ratio: 'pad',
    mm_hidden_size: s.widths[4],
    mm_projector_type: 'mlp2x_gelu',
    mm_use_im_patch_token: false,
    mm_use_im_start_end: false,
    mm_vision_select_layer: -1,
    mm_vision_tower: 'vision_tower',
    mm_vision_resolution: s.resolution,
    vision_add_five_stage: s.depths[4],
    vision_five_stage_width: s.widths[4],
  };
  const visionConfig = {
    architectures: ['ConvNextModel'],
    model_type: 'convnext',
    num_channels: 3,
    patch_size: 4,
    num_stages: 5,
    hidden_sizes: s.widths,
    depths: s.depths,
    hidden_act: 'gelu',
    layer_norm_eps: 1e-12,
    layer_scale_init_value: 1e-6,
    drop_path_rate: 0.0,
    image_size: s.resolution,
  };
  const preprocessorConfig = {
    crop_size: { height: s.resolution, width: s.resolution },
    do_center_crop: true,
    do_convert_rgb: true,
    do_normalize: true,
    do_rescale: true,
    do_resize: true,
    image_mean: CLIP_MEAN,
    image_std: CLIP_STD,
    image_processor_type: 'CLIPImageProcessor',
    resample: 3,
    rescale_factor: 1 / 255,
    size: { shortest_edge: s.resolution },
  };
  return { config, visionConfig, preprocessorConfig, visionOnly };
}
