/**
 * The vision tower's shape, taken only from the checkpoint's configs (weights/config.ts parses them):
 *
 *   vision_tower/config.json (ConvNextConfig)  hidden_sizes, depths, patch_size, num_channels,
 *                                              layer_scale_init_value — already including ConvLLaVA's
 *                                              fifth stage (listed there, or appended from config.json's
 *                                              vision_add_five_stage / vision_five_stage_width)
 *   config.json (LlavaConfig)                  mm_vision_resolution, mm_hidden_size
 *
 * Stage 5 is alibaba/conv-llava's `add_stage`: a transformers ConvNextStage with in = stage-4 width,
 * out = vision_five_stage_width, depth = vision_add_five_stage — i.e. built exactly like stages 2–4.
 */
import type { ConvNextConfig, LlavaConfig } from '../weights/config.js';

export interface VisionTowerConfig {
  /** Image channels (3). */
  inChannels: number;
  /** Stem: patch_size × patch_size conv with stride patch_size. */
  patchSize: number;
  /** Channels of each stage (the stem outputs stage 1's width). */
  widths: number[];
  /** Blocks per stage. */
  depths: number[];
  /** Stages 2… start with a k×k stride-k conv; transformers' ConvNextStage uses k = 2. */
  downsampleSize: number;
  /**
   * eps of every LayerNorm inside the tower (stem, blocks, downsampling). transformers hardcodes
   * 1e-6 there; config.layer_norm_eps (1e-12 in ConvLLaVA's configs) only reaches the pooler norm,
   * which ConvLLaVA does not use. The golden activations confirm 1e-6.
   */
  normEps: number;
  /** Blocks end with `gamma · x + residual` (layer_scale_init_value > 0), else a plain residual add. */
  layerScale: boolean;
  /** Square input side the model was trained for (pixel_values are [3, resolution, resolution]). */
  resolution: number;
}

/** transformers' ConvNextLayerNorm / ConvNextEmbeddings / ConvNextStage constants (not in the config). */
export const CONVNEXT_NORM_EPS = 1e-6;
export const CONVNEXT_DOWNSAMPLE = 2;

/** The tower of a checkpoint. */
export function visionTowerConfig(llava: LlavaConfig, vision: ConvNextConfig): VisionTowerConfig {
  if (vision.hidden_act !== 'gelu') throw new Error(`vision_tower/config.json: hidden_act '${vision.hidden_act}' is unsupported (ConvNeXt uses gelu)`);
  if (llava.mm_vision_select_layer !== -1) {
    throw new Error(`config.json: mm_vision_select_layer ${llava.mm_vision_select_layer} is unsupported (ConvLLaVA takes the last stage, -1)`);
  }
  return {
    inChannels: vision.num_channels,
    patchSize: vision.patch_size,
    widths: [...vision.hidden_sizes],
    depths: [...vision.depths],
    downsampleSize: CONVNEXT_DOWNSAMPLE,
    normEps: CONVNEXT_NORM_EPS,
    layerScale: vision.layer_scale_init_value > 0,
    resolution: llava.mm_vision_resolution,
  };
}

/** Total stride of the tower: patch × 2^(stages − 1). Visual tokens = (resolution / stride)². */
export function towerStride(c: VisionTowerConfig): number {
  return c.patchSize * c.downsampleSize ** (c.widths.length - 1);
}
