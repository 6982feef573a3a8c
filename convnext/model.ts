/**
 * ConvLLaVA's vision tower: a ConvNeXt (transformers ConvNextModel semantics) with a fifth stage,
 * turning pixel_values [3, R, R] into (R/64)² visual tokens of the last stage's width.
 *
 *   pixel_values (3, R, R) ──nchwToNhwc──▶ (R, R, 3)
 *   stem       p×p/sp conv → LayerNorm                         (R/4, R/4, C1)
 *   stage 1    blocks                                          (R/4, R/4, C1)
 *   stage s>1  LayerNorm → 2×2/s2 conv, then blocks             (R/2^(s+1), …, Cs)
 *   block      x + γ · pwconv2(GELU(pwconv1(LayerNorm(dwconv7(x)))))      nn/convnext-block.ts
 *   features   last stage (H, W, C) read row-major as tokens    (H·W, C)   — no pooler norm
 *
 * Activations are channels-last [H, W, C] throughout: every op after the depthwise conv works on
 * rows of C contiguous floats, and the final map already *is* the token matrix. The whole forward is
 * recorded into one command stream; nothing is read back until the caller reads `features`.
 * `encodeSteps` is the same forward pausing between stages, so a caller can honour an abort there.
 *
 * `VisionTower.load(gpu, …)` runs on the WGSL kernels; `VisionTower.load(cpuOps, …)` is the same
 * assembly over the ops' CPU references (nn/ops.ts) — the tower's reference.
 */
import type { Gpu } from '../runtime/gpu.js';
import type { Tensor } from '../runtime/tensor.js';
import type { Checkpoint } from '../weights/checkpoint.js';
import { expectedVisionTensors, visionNames } from '../weights/names.js';
import { runToEnd, sequential, sequentialSteps } from '../nn/chunks.js';
import { ConvNextBlock, type BlockOptions } from '../nn/convnext-block.js';
import { LayerNorm, PatchConv } from '../nn/layers.js';
import { WeightLoader, type WeightLoadOptions, type WeightReader } from '../nn/loader.js';
import { opsFor, type TensorOps } from '../nn/ops.js';
import { towerStride, visionTowerConfig, type VisionTowerConfig } from './config.js';

export type VisionTowerLoadOptions = WeightLoadOptions;

export interface EncodeOptions extends BlockOptions {
  /** Also return the stem and every stage's output map ([H, W, C]); the caller disposes them (and features). */
  keepStages?: boolean;
}

export type StageName = 'stem' | `stage${number}`;

export interface Encoded<T> {
  features: T; //                          (T, C)
  stages?: Record<StageName, T>; //       each (H, W, C), with keepStages
}

/** Stem: channels-last, p×p stride-p conv, then LayerNorm over channels.   (3, R, R) → (R, R, 3) → (R/p, R/p, C1) */
class Stem<T> {
  constructor(
    readonly conv: PatchConv<T>, //  (C1, 3, p, p)
    readonly norm: LayerNorm<T>, //  (C1)
  ) {}

  forward(pixelValues: T): T {
    const { ops } = this.conv;
    return ops.tidy(() => this.norm.forward(this.conv.forward(ops.nchwToNhwc(ops.activation(pixelValues)))));
  }
}

/** One stage: (stages 2…) LayerNorm + 2×2/s2 conv, then its blocks.   (H, W, C_{s−1}) → (H/2, W/2, C_s) */
class Stage<T> {
  constructor(
    readonly ops: TensorOps<T>,
    readonly downsample: { norm: LayerNorm<T>; conv: PatchConv<T> } | null,
    readonly blocks: ConvNextBlock<T>[],
  ) {}

  forward(x: T, opts: BlockOptions): T {
    const d = this.downsample;
    const down = d ? [(h: T) => this.ops.tidy(() => d.conv.forward(d.norm.forward(h)))] : [];
    return sequential(this.ops, x, [...down, ...this.blocks.map((block) => (h: T) => block.forward(h, opts))]);
  }
}

export class VisionTower<T = Tensor> {
  /** Visual tokens per image at the configured resolution: (R / stride)². */
  readonly tokens: number;
  /** Channels of the last stage (= mm_hidden_size). */
  readonly width: number;

  private constructor(
    readonly ops: TensorOps<T>,
    readonly config: VisionTowerConfig,
    private readonly stem: Stem<T>,
    private readonly stages: Stage<T>[],
    private readonly weights: T[],
  ) {
    const side = config.resolution / towerStride(config);
    this.tokens = side * side;
    this.width = config.widths[config.widths.length - 1];
  }

  /** The tower of a ConvLLaVA checkpoint (vision_tower/ weights). */
  static load(gpu: Gpu, ckpt: Checkpoint, opts?: VisionTowerLoadOptions): Promise<VisionTower>;
  static load<T>(ops: TensorOps<T>, ckpt: Checkpoint, opts?: VisionTowerLoadOptions): Promise<VisionTower<T>>;
  static load<T>(device: Gpu | TensorOps<T>, ckpt: Checkpoint, opts: VisionTowerLoadOptions = {}): Promise<VisionTower<T>> {
    return VisionTower.fromSource(opsFor(device), visionTowerConfig(ckpt.config, ckpt.visionConfig), ckpt.vision, opts);
  }

  /** A tower of the given shape from any weight source (checkpoint files, synthetic weights). */
  static fromSource(gpu: Gpu, config: VisionTowerConfig, source: WeightReader, opts?: VisionTowerLoadOptions): Promise<VisionTower>;
  static fromSource<T>(ops: TensorOps<T>, config: VisionTowerConfig, source: WeightReader, opts?: VisionTowerLoadOptions): Promise<VisionTower<T>>;
  static async fromSource<T>(device: Gpu | TensorOps<T>, config: VisionTowerConfig, source: WeightReader, opts: VisionTowerLoadOptions = {}): Promise<VisionTower<T>> {
    const expected = expectedVisionTensors(visionShapeConfig(config)).filter((t) => !t.optional); // the pooler norm is unused
    const w = new WeightLoader(opsFor(device), source, expected, { part: 'vision weights', config: 'vision_tower/config.json' }, opts);
    const eps = config.normEps;
    return w.build(async () => {
      const s = visionNames.stem;
      const stem = new Stem(await PatchConv.load(w, s.weight, s.bias, config.patchSize), await LayerNorm.load(w, s.normWeight, s.normBias, eps));
      const stages: Stage<T>[] = [];
      for (let i = 0; i < config.widths.length; i++) {
        const d = visionNames.downsample(i);
        const downsample =
          i === 0
            ? null
            : { norm: await LayerNorm.load(w, d.normWeight, d.normBias, eps), conv: await PatchConv.load(w, d.convWeight, d.convBias, config.downsampleSize) };
        const blocks: ConvNextBlock<T>[] = [];
        for (let l = 0; l < config.depths[i]; l++) blocks.push(await ConvNextBlock.load(w, i, l, { eps, layerScale: config.layerScale }));
        stages.push(new Stage(w.ops, downsample, blocks));
      }
      return new VisionTower(w.ops, config, stem, stages, w.tensors);
    });
  }

  /**
   * pixel_values [3, R, R] (f32, R a multiple of the stride) → features [T, C] with T = (R/stride)².
   * On the GPU this records the forward pass; read `features` (or call gpu.sync) to run it.
   */
  encode(pixelValues: T, opts: EncodeOptions = {}): Encoded<T> {
    return runToEnd(this.encodeSteps(pixelValues, opts));
  }

  /**
   * The same forward, pausing after the stem and after each stage but the last (where llm/backend.ts
   * submits the work so far and checks an abort signal). Broken off, it frees the maps it made.
   */
  *encodeSteps(pixelValues: T, opts: EncodeOptions = {}): Generator<number, Encoded<T>> {
    const { ops, config } = this;
    const [c, h, w] = ops.shape(pixelValues);
    const stride = towerStride(config);
    if (ops.shape(pixelValues).length !== 3 || c !== config.inChannels || h !== w || h % stride !== 0 || h === 0) {
      throw new Error(
        `VisionTower.encode: pixel_values must be [${config.inChannels}, R, R] with R a multiple of ${stride} ` +
          `(this model: R = ${config.resolution}), got [${ops.shape(pixelValues)}]`,
      );
    }
    const maps: Partial<Record<StageName, T>> = {};
    const named = (name: StageName, f: (x: T) => T) => (x: T) => (maps[name] = f(x));
    const x = yield* sequentialSteps(
      ops,
      pixelValues,
      [
        named('stem', (p) => this.stem.forward(p)), //                                  (3, R, R) → (R/4, R/4, C1)
        ...this.stages.map((stage, s) => named(`stage${s + 1}`, (m) => stage.forward(m, opts))), // (R/2^(s+2), …, C_s)
      ],
      () => !!opts.keepStages, // the stage maps the caller keeps are not freed
    );
    // (H, W, C) is already the token matrix (H·W, C), row-major as the reference's flatten.
    const [H, W, C] = ops.shape(x);
    const tokens = ops.reshape(x, [H * W, C]);
    if (!opts.keepStages) return { features: tokens };
    // The last map is also returned as a stage: give features its own buffer so each is disposed once.
    return { features: ops.sliceRows(tokens, 0, H * W), stages: maps as Record<StageName, T> };
  }

  /** Bytes held by the weights (their dtypes' storage, not the pool's rounded buffer sizes). */
  get bytes(): number {
    return this.weights.reduce((sum, t) => sum + this.ops.byteLength(t), 0);
  }

  /** Frees every weight. */
  dispose(): void {
    this.ops.flush(); // recorded work that reads (or, for synthetic weights, writes) a weight runs first
    for (const t of this.weights) this.ops.dispose(t);
  }
}

/** The ConvNextConfig fields the name table reads, from a tower config. */
function visionShapeConfig(c: VisionTowerConfig) {
  return {
    num_channels: c.inChannels,
    patch_size: c.patchSize,
    num_stages: c.widths.length,
    hidden_sizes: c.widths,
    depths: c.depths,
    layer_scale_init_value: c.layerScale ? 1 : 0,
  };
}
