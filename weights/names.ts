/**
 * THE name table: every checkpoint tensor name and the shape the configs imply for it. Model code
 * looks weights up through these builders (never by hand-built strings), and `Checkpoint.open` checks
 * the files against `expectedLlmTensors` / `expectedVisionTensors`, which are built from the same
 * builders — so a name can only be wrong in one place.
 *
 * Shapes are PyTorch's: Linear weights are [out, in], convolutions [out, in/groups, kh, kw].
 */
import type { ConvNextConfig, LlavaConfig } from './config.js';

// ---- LLaMA decoder (root files) ----------------------------------------------------------------

export const llmNames = {
  embedTokens: 'model.embed_tokens.weight', //   (vocab, hidden)
  finalNorm: 'model.norm.weight', //             (hidden)
  lmHead: 'lm_head.weight', //                   (vocab, hidden); absent with tie_word_embeddings
  layer(i: number) {
    const p = `model.layers.${i}`;
    return {
      inputNorm: `${p}.input_layernorm.weight`, //          (hidden)
      q: `${p}.self_attn.q_proj.weight`, //                 (heads·head_dim, hidden)
      k: `${p}.self_attn.k_proj.weight`, //                 (kv_heads·head_dim, hidden)
      v: `${p}.self_attn.v_proj.weight`, //                 (kv_heads·head_dim, hidden)
      o: `${p}.self_attn.o_proj.weight`, //                 (hidden, heads·head_dim)
      qBias: `${p}.self_attn.q_proj.bias`, //               only with attention_bias
      kBias: `${p}.self_attn.k_proj.bias`,
      vBias: `${p}.self_attn.v_proj.bias`,
      oBias: `${p}.self_attn.o_proj.bias`,
      postAttentionNorm: `${p}.post_attention_layernorm.weight`, // (hidden)
      gate: `${p}.mlp.gate_proj.weight`, //                 (intermediate, hidden)
      up: `${p}.mlp.up_proj.weight`, //                     (intermediate, hidden)
      down: `${p}.mlp.down_proj.weight`, //                 (hidden, intermediate)
    };
  },
};

/** The tensor holding the output projection: lm_head, or the embedding table when tied. */
export function lmHeadName(cfg: Pick<LlavaConfig, 'tie_word_embeddings'>): string {
  return cfg.tie_word_embeddings ? llmNames.embedTokens : llmNames.lmHead;
}

// ---- projector (root files) -------------------------------------------------------------------

/**
 * The projector's Linear layers in order. `mlpNx_gelu` is nn.Sequential(Linear, GELU, Linear, GELU, …),
 * so its Linears sit at Sequential indices 0, 2, 4, …; `linear` is a bare nn.Linear (no index).
 */
export function projectorLinears(cfg: Pick<LlavaConfig, 'mm_projector_type' | 'mm_hidden_size' | 'hidden_size'>): { weight: string; bias: string; shape: [number, number] }[] {
  const type = cfg.mm_projector_type;
  if (type === 'identity') return [];
  if (type === 'linear') {
    return [{ weight: 'model.mm_projector.weight', bias: 'model.mm_projector.bias', shape: [cfg.hidden_size, cfg.mm_hidden_size] }];
  }
  const mlp = /^mlp(\d+)x_gelu$/.exec(type);
  if (!mlp) throw new Error(`unsupported mm_projector_type '${type}' (expected linear, identity or mlpNx_gelu)`);
  const depth = Number(mlp[1]);
  return Array.from({ length: depth }, (_, i) => ({
    weight: `model.mm_projector.${2 * i}.weight`,
    bias: `model.mm_projector.${2 * i}.bias`,
    shape: [cfg.hidden_size, i === 0 ? cfg.mm_hidden_size : cfg.hidden_size] as [number, number],
  }));
}

// ---- ConvNeXt vision tower (vision_tower/ files) ----------------------------------------------

export const visionNames = {
  /** Stem: 4×4 stride-4 conv, (C0, 3, 4, 4), then a channels-first LayerNorm (C0). */
  stem: {
    weight: 'embeddings.patch_embeddings.weight',
    bias: 'embeddings.patch_embeddings.bias',
    normWeight: 'embeddings.layernorm.weight',
    normBias: 'embeddings.layernorm.bias',
  },
  /** Stages 1…: LayerNorm (C_{s-1}) then a 2×2 stride-2 conv (C_s, C_{s-1}, 2, 2). Stage 0 has none. */
  downsample(stage: number) {
    const p = `encoder.stages.${stage}.downsampling_layer`;
    return { normWeight: `${p}.0.weight`, normBias: `${p}.0.bias`, convWeight: `${p}.1.weight`, convBias: `${p}.1.bias` };
  },
  /** One ConvNeXt block: dwconv 7×7 → LayerNorm → pwconv1 (4C) → GELU → pwconv2 (C) → layer scale → + x. */
  block(stage: number, layer: number) {
    const p = `encoder.stages.${stage}.layers.${layer}`;
    return {
      dwconvWeight: `${p}.dwconv.weight`, //   (C, 1, 7, 7)
      dwconvBias: `${p}.dwconv.bias`, //       (C)
      normWeight: `${p}.layernorm.weight`, //  (C)
      normBias: `${p}.layernorm.bias`,
      pwconv1Weight: `${p}.pwconv1.weight`, // (4C, C) — a Linear
      pwconv1Bias: `${p}.pwconv1.bias`, //     (4C)
      pwconv2Weight: `${p}.pwconv2.weight`, // (C, 4C)
      pwconv2Bias: `${p}.pwconv2.bias`, //     (C)
      layerScale: `${p}.layer_scale_parameter`, // (C); only when layer_scale_init_value > 0
    };
  },
  /** ConvNextModel's pooler LayerNorm: present in the files, unused by ConvLLaVA (it takes stage maps). */
  poolerNorm: { weight: 'layernorm.weight', bias: 'layernorm.bias' },
};

// ---- the expected tensor sets -----------------------------------------------------------------

export type ModelPart = 'llm' | 'projector' | 'vision';

export interface ExpectedTensor {
  name: string;
  shape: number[];
  part: ModelPart;
  /** Checked if present, but may be absent (unused by the model). */
  optional?: boolean;
  /** Other shapes that are also accepted (see the pooler norm). */
  alternativeShapes?: number[][];
}

/** The config fields that fix the LLaMA decoder's tensor set and shapes. */
export type DecoderShapeConfig = Pick<
  LlavaConfig,
  | 'hidden_size'
  | 'intermediate_size'
  | 'num_hidden_layers'
  | 'num_attention_heads'
  | 'num_key_value_heads'
  | 'head_dim'
  | 'vocab_size'
  | 'tie_word_embeddings'
  | 'attention_bias'
>;

/** The LLaMA decoder's tensors (root files), in load order, with their shapes; `attentionBias` marks the q/k/v/o biases. */
export function decoderTensorShapes(cfg: DecoderShapeConfig): { name: string; shape: number[]; attentionBias?: true }[] {
  const h = cfg.hidden_size;
  const qDim = cfg.num_attention_heads * cfg.head_dim;
  const kvDim = cfg.num_key_value_heads * cfg.head_dim;
  const ff = cfg.intermediate_size;
  const out: { name: string; shape: number[]; attentionBias?: true }[] = [];
  const llm = (name: string, shape: number[]) => out.push({ name, shape });
  const bias = (name: string, shape: number[]) => out.push({ name, shape, attentionBias: true });
  llm(llmNames.embedTokens, [cfg.vocab_size, h]);
  for (let i = 0; i < cfg.num_hidden_layers; i++) {
    const n = llmNames.layer(i);
    llm(n.inputNorm, [h]);
    llm(n.q, [qDim, h]);
    llm(n.k, [kvDim, h]);
    llm(n.v, [kvDim, h]);
    llm(n.o, [h, qDim]);
    if (cfg.attention_bias) {
      bias(n.qBias, [qDim]);
      bias(n.kBias, [kvDim]);
      bias(n.vBias, [kvDim]);
      bias(n.oBias, [h]);
    }
    llm(n.postAttentionNorm, [h]);
    llm(n.gate, [ff, h]);
    llm(n.up, [ff, h]);
    llm(n.down, [h, ff]);
  }
  llm(llmNames.finalNorm, [h]);
  if (!cfg.tie_word_embeddings) llm(llmNames.lmHead, [cfg.vocab_size, h]);
  return out;
}

/** Every tensor the root files must hold: the LLaMA decoder and the projector. */
export function expectedLlmTensors(cfg: LlavaConfig): ExpectedTensor[] {
  const out: ExpectedTensor[] = decoderTensorShapes(cfg).map(({ name, shape }) => ({ name, shape, part: 'llm' }));
  for (const lin of projectorLinears(cfg)) {
    out.push({ name: lin.weight, shape: lin.shape, part: 'projector' });
    out.push({ name: lin.bias, shape: [lin.shape[0]], part: 'projector' });
  }
  return out;
}

/** Every tensor the vision_tower files must hold, for all stages (the fifth included). */
export function expectedVisionTensors(
  cfg: Pick<ConvNextConfig, 'hidden_sizes' | 'num_channels' | 'patch_size' | 'num_stages' | 'depths' | 'layer_scale_init_value'>,
): ExpectedTensor[] {
  const C = cfg.hidden_sizes;
  const out: ExpectedTensor[] = [];
  const vision = (name: string, shape: number[], extra: Partial<ExpectedTensor> = {}) => out.push({ name, shape, part: 'vision', ...extra });
  const stem = visionNames.stem;
  vision(stem.weight, [C[0], cfg.num_channels, cfg.patch_size, cfg.patch_size]);
  vision(stem.bias, [C[0]]);
  vision(stem.normWeight, [C[0]]);
  vision(stem.normBias, [C[0]]);
  for (let s = 0; s < cfg.num_stages; s++) {
    if (s > 0) {
      const d = visionNames.downsample(s);
      vision(d.normWeight, [C[s - 1]]);
      vision(d.normBias, [C[s - 1]]);
      vision(d.convWeight, [C[s], C[s - 1], 2, 2]);
      vision(d.convBias, [C[s]]);
    }
    for (let l = 0; l < cfg.depths[s]; l++) {
      const b = visionNames.block(s, l);
      vision(b.dwconvWeight, [C[s], 1, 7, 7]);
      vision(b.dwconvBias, [C[s]]);
      vision(b.normWeight, [C[s]]);
      vision(b.normBias, [C[s]]);
      vision(b.pwconv1Weight, [4 * C[s], C[s]]);
      vision(b.pwconv1Bias, [4 * C[s]]);
      vision(b.pwconv2Weight, [C[s], 4 * C[s]]);
      vision(b.pwconv2Bias, [C[s]]);
      if (cfg.layer_scale_init_value > 0) vision(b.layerScale, [C[s]]);
    }
  }
  // The pooler norm is sized for the tower before ConvLLaVA appended its fifth stage, so either the
  // last or the second-to-last width is legitimate. ConvLLaVA never uses it.
  const last = C[C.length - 1];
  const alternatives = C.length > 1 ? [[C[C.length - 2]]] : [];
  vision(visionNames.poolerNorm.weight, [last], { optional: true, alternativeShapes: alternatives });
  vision(visionNames.poolerNorm.bias, [last], { optional: true, alternativeShapes: alternatives });
  return out;
}
