/**
 * ConvLLaVA's vision tower: a ConvNeXt (transformers ConvNextModel semantics) with a fifth stage,
 * turning pixel_values [3, R, R] into (R/64)² visual tokens of the last stage's width.
 *
 *   pixel_values (3, R, R) ──nchwToNhwc──▶ (R, R, 3)
 *   stem       p×p/sp conv → LayerNorm                         (R/4, R/4, C1)
 *   stage 1    blocks                                          (R/4, R/4, C1)
 *   stage s>1  LayerNorm → 2×2/s2 conv, then blocks             (R/2^(s+1), …, Cs)
 *   block      x + γ · pwconv2(GELU(pwconv1(LayerNorm(dwconv7(x)))))
 *   features   last stage (H, W, C) read row-major as tokens    (H·W, C)   — no pooler norm
 *
 * Activations are channels-last [H, W, C] throughout: every op after the depthwise conv works on
 * rows of C contiguous floats, and the final map already *is* the token matrix. The whole forward is
 * recorded into one command stream; nothing is read back until the caller reads `features`.
 *
 * Big images: at 1536² stage 1 has 384² = 147456 pixels, whose 4C = 768-wide MLP hidden is 453 MB —
 * over one storage binding (128 MiB on lavapipe, the default elsewhere). A block therefore runs its
 * row-wise half (LayerNorm → MLP → scale + residual) over chunks of pixels sized so the hidden fits
 * one binding, writing each chunk's result back into the depthwise-conv buffer (no longer needed), so
 * a block allocates nothing the size of the image beyond that one buffer.
 */
import type { Gpu } from '../runtime/gpu.js';
import type { Tensor } from '../runtime/tensor.js';
import type { Checkpoint, WeightSource } from '../weights/checkpoint.js';
import { visionNames } from '../weights/names.js';
import { add } from '../ops/add.js';
import { dwconv7 } from '../ops/dwconv7.js';
import { layerNorm } from '../ops/layerNorm.js';
import { layerScaleResidual } from '../ops/layerScaleResidual.js';
import { linear } from '../ops/linear.js';
import { patchConv } from '../ops/patchConv.js';
import { sliceRows, writeRows } from '../ops/rows.js';
import { nchwToNhwc } from '../ops/transpose.js';
import { towerStride, visionTowerConfig, type VisionTowerConfig } from './config.js';

export interface VisionTowerLoadOptions {
  /** Storage of the conv / Linear weights (norms, biases, layer scales stay f32). Default f32. */
  dtype?: 'f32' | 'f16';
  onProgress?: (done: number, total: number) => void;
}

export interface EncodeOptions {
  /** Also return the stem and every stage's output map ([H, W, C]); the caller disposes them (and features). */
  keepStages?: boolean;
  /** Cap on pixels per row chunk in a block (default: as many as one binding allows; specs lower it). */
  maxChunkRows?: number;
}

interface Norm {
  gamma: Tensor; // (C)
  beta: Tensor; // (C)
}

interface Conv {
  weight: Tensor; // (Cout, Cin, k, k); depthwise: (C, 1, 7, 7)
  bias: Tensor; // (Cout)
}

interface Block {
  dwconv: Conv; // (C, 1, 7, 7)
  norm: Norm; // (C)
  pwconv1: Conv; // (4C, C) — a Linear
  pwconv2: Conv; // (C, 4C)
  layerScale: Tensor | null; // (C)
}

interface Stage {
  /** Stages 2…: LayerNorm over C_{s−1}, then a 2×2/s2 conv to C_s. */
  downsample: { norm: Norm; conv: Conv } | null;
  blocks: Block[];
}

export type StageName = 'stem' | `stage${number}`;

export class VisionTower {
  /** Visual tokens per image at the configured resolution: (R / stride)². */
  readonly tokens: number;
  /** Channels of the last stage (= mm_hidden_size). */
  readonly width: number;

  private constructor(
    private readonly gpu: Gpu,
    readonly config: VisionTowerConfig,
    private readonly stem: { conv: Conv; norm: Norm },
    private readonly stages: Stage[],
  ) {
    const side = config.resolution / towerStride(config);
    this.tokens = side * side;
    this.width = config.widths[config.widths.length - 1];
  }

  /** The tower of a ConvLLaVA checkpoint (vision_tower/ weights). */
  static load(gpu: Gpu, ckpt: Checkpoint, opts: VisionTowerLoadOptions = {}): Promise<VisionTower> {
    return VisionTower.fromSource(gpu, visionTowerConfig(ckpt.config, ckpt.visionConfig), ckpt.vision, opts);
  }

  /** A tower of the given shape from any weight source (checkpoint files, synthetic weights). */
  static async fromSource(gpu: Gpu, config: VisionTowerConfig, source: WeightSource, opts: VisionTowerLoadOptions = {}): Promise<VisionTower> {
    const dtype = opts.dtype ?? 'f32';
    // stem: conv + norm (4 tensors); stages 2…: norm + conv (4); blocks: dwconv, norm, pwconv1, pwconv2 (8) + layer scale
    const perBlock = config.layerScale ? 9 : 8;
    const total = 4 + config.depths.reduce((n, depth, s) => n + (s > 0 ? 4 : 0) + depth * perBlock, 0);
    const uploaded: Tensor[] = [];
    const get = async (name: string, kind: 'matrix' | 'vector'): Promise<Tensor> => {
      const t = await source.toGpu(gpu, name, kind === 'matrix' ? dtype : 'f32');
      uploaded.push(t);
      opts.onProgress?.(uploaded.length, total);
      return t;
    };
    const norm = async (w: string, b: string): Promise<Norm> => ({ gamma: await get(w, 'vector'), beta: await get(b, 'vector') });
    const conv = async (w: string, b: string): Promise<Conv> => ({ weight: await get(w, 'matrix'), bias: await get(b, 'vector') });
    try {
      const n = visionNames.stem;
      const stem = { conv: await conv(n.weight, n.bias), norm: await norm(n.normWeight, n.normBias) };
      const stages: Stage[] = [];
      for (let s = 0; s < config.widths.length; s++) {
        let downsample: Stage['downsample'] = null;
        if (s > 0) {
          const d = visionNames.downsample(s);
          downsample = { norm: await norm(d.normWeight, d.normBias), conv: await conv(d.convWeight, d.convBias) };
        }
        const blocks: Block[] = [];
        for (let l = 0; l < config.depths[s]; l++) {
          const b = visionNames.block(s, l);
          blocks.push({
            dwconv: await conv(b.dwconvWeight, b.dwconvBias),
            norm: await norm(b.normWeight, b.normBias),
            pwconv1: await conv(b.pwconv1Weight, b.pwconv1Bias),
            pwconv2: await conv(b.pwconv2Weight, b.pwconv2Bias),
            layerScale: config.layerScale ? await get(b.layerScale, 'vector') : null,
          });
        }
        stages.push({ downsample, blocks });
      }
      return new VisionTower(gpu, config, stem, stages);
    } catch (e) {
      for (const t of uploaded) t.dispose();
      throw e;
    }
  }

  /**
   * pixel_values [3, R, R] (f32, R a multiple of the stride) → features [T, C] with T = (R/stride)².
   * Records the forward pass; read `features` (or call gpu.sync) to run it.
   */
  encode(pixelValues: Tensor, opts: EncodeOptions = {}): { features: Tensor; stages?: Record<StageName, Tensor> } {
    const steps = this.encodeSteps(pixelValues, opts);
    for (;;) {
      const step = steps.next();
      if (step.done) return step.value;
    }
  }

  /**
   * The same forward, pausing after the stem and after each stage (the points where a caller may
   * submit the work recorded so far, wait for it and check an abort signal). Abandoning it with
   * `return()` disposes the map in flight.
   */
  *encodeSteps(pixelValues: Tensor, opts: EncodeOptions = {}): Generator<StageName, { features: Tensor; stages?: Record<StageName, Tensor> }> {
    const { gpu, config } = this;
    const [c, h, w] = pixelValues.shape;
    const stride = towerStride(config);
    if (pixelValues.shape.length !== 3 || c !== config.inChannels || h !== w || h % stride !== 0 || h === 0) {
      throw new Error(
        `VisionTower.encode: pixel_values must be [${config.inChannels}, R, R] with R a multiple of ${stride} ` +
          `(this model: R = ${config.resolution}), got [${pixelValues.shape}]`,
      );
    }
    const kept: Partial<Record<StageName, Tensor>> = {};
    const keep = (name: StageName, x: Tensor, previous?: Tensor) => {
      if (opts.keepStages) kept[name] = x;
      // The previous map is dead unless the caller asked to keep it.
      if (previous && !opts.keepStages) previous.dispose();
    };

    // (3, R, R) -> (R, R, 3)
    const image = nchwToNhwc(gpu, pixelValues);
    let x = this.forwardStem(image);
    image.dispose();
    keep('stem', x);
    let finished = false;
    try {
      yield 'stem';
      for (const [s, stage] of this.stages.entries()) {
        const y = this.forwardStage(stage, x, opts.maxChunkRows);
        keep(`stage${s + 1}`, y, x);
        x = y;
        if (s + 1 < this.stages.length) yield `stage${s + 1}`;
      }
      finished = true;
    } finally {
      if (!finished) for (const t of new Set([x, ...Object.values(kept)])) t?.dispose(); // abandoned mid-way
    }

    // (H, W, C) is already the token matrix (H·W, C), row-major as the reference's flatten.
    const [H, W, C] = x.shape;
    if (!opts.keepStages) return { features: x.reshape([H * W, C]) };
    // The last map is also returned as a stage: give features its own buffer so each is disposed once.
    const features = gpu.empty([H * W, C]);
    gpu.copy(x, 0, features, 0, x.byteLength);
    return { features, stages: kept as Record<StageName, Tensor> };
  }

  /** Stem: p×p stride-p conv, then LayerNorm over channels.   (R, R, 3) -> (R/p, R/p, C1) */
  private forwardStem(image: Tensor): Tensor {
    const { conv, norm } = this.stem;
    const patches = patchConv(this.gpu, image, conv.weight, conv.bias, this.config.patchSize);
    const out = layerNorm(this.gpu, patches, norm.gamma, norm.beta, this.config.normEps);
    patches.dispose();
    return out;
  }

  /** One stage: optional downsampling, then its blocks.   (H, W, C_{s−1}) -> (H/2, W/2, C_s) */
  private forwardStage(stage: Stage, input: Tensor, maxChunkRows?: number): Tensor {
    const { gpu, config } = this;
    let x = input;
    if (stage.downsample) {
      const { norm, conv } = stage.downsample;
      const normed = layerNorm(gpu, x, norm.gamma, norm.beta, config.normEps);
      x = patchConv(gpu, normed, conv.weight, conv.bias, config.downsampleSize);
      normed.dispose();
    }
    for (const block of stage.blocks) {
      const y = this.forwardBlock(block, x, maxChunkRows);
      if (x !== input) x.dispose(); // the stage input belongs to the caller
      x = y;
    }
    return x; // depths are ≥ 1 (weights/config.ts), so this is never the caller's `input`
  }

  /**
   * One ConvNeXt block.   (H, W, C) -> (H, W, C)
   *   x + γ · pwconv2(GELU(pwconv1(LayerNorm(dwconv7(x)))))
   * The part after the depthwise conv is per pixel, so it runs over chunks of pixel rows.
   */
  private forwardBlock(block: Block, x: Tensor, maxChunkRows?: number): Tensor {
    const { gpu, config } = this;
    const [H, W, C] = x.shape;
    const pixels = H * W;
    const mixed = dwconv7(gpu, x, block.dwconv.weight, block.dwconv.bias); // spatial mixing, per channel
    const hidden = block.pwconv1.weight.shape[0]; // 4C
    const perChunk = Math.max(1, Math.min(maxChunkRows ?? Infinity, Math.floor(gpu.limits.maxStorageBufferBindingSize / (hidden * 4))));

    const rowwise = (m: Tensor, residual: Tensor): Tensor => {
      const normed = layerNorm(gpu, m, block.norm.gamma, block.norm.beta, config.normEps);
      const expanded = linear(gpu, normed, block.pwconv1.weight, block.pwconv1.bias, { activation: 'gelu' }); // (n, 4C)
      normed.dispose();
      const projected = linear(gpu, expanded, block.pwconv2.weight, block.pwconv2.bias); // (n, C)
      expanded.dispose();
      const out = block.layerScale
        ? layerScaleResidual(gpu, projected, block.layerScale, residual)
        : add(gpu, projected, residual);
      projected.dispose();
      return out;
    };

    if (pixels <= perChunk) {
      const out = rowwise(mixed.reshape([pixels, C]), x.reshape([pixels, C]));
      mixed.dispose();
      return out.reshape([H, W, C]);
    }
    // Chunked: each chunk's result overwrites its rows of `mixed`, which then holds the block output.
    const mixedRows = mixed.reshape([pixels, C]);
    const xRows = x.reshape([pixels, C]);
    for (let r0 = 0; r0 < pixels; r0 += perChunk) {
      const n = Math.min(perChunk, pixels - r0);
      const m = sliceRows(gpu, mixedRows, r0, n);
      const residual = sliceRows(gpu, xRows, r0, n);
      const out = rowwise(m, residual);
      m.dispose();
      residual.dispose();
      writeRows(gpu, out, mixedRows, r0);
      out.dispose();
    }
    return mixed;
  }

  /** Frees every weight. */
  dispose(): void {
    const all: Tensor[] = [this.stem.conv.weight, this.stem.conv.bias, this.stem.norm.gamma, this.stem.norm.beta];
    for (const s of this.stages) {
      if (s.downsample) all.push(s.downsample.norm.gamma, s.downsample.norm.beta, s.downsample.conv.weight, s.downsample.conv.bias);
      for (const b of s.blocks) {
        all.push(b.dwconv.weight, b.dwconv.bias, b.norm.gamma, b.norm.beta, b.pwconv1.weight, b.pwconv1.bias, b.pwconv2.weight, b.pwconv2.bias);
        if (b.layerScale) all.push(b.layerScale);
      }
    }
    for (const t of all) t.dispose();
  }
}
