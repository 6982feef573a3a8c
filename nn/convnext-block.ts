/**
 * One ConvNeXt block (transformers ConvNextLayer), channels-last:
 *
 *   x + γ · pwconv2(GELU(pwconv1(LayerNorm(dwconv7(x)))))        (H, W, C) → (H, W, C)
 *
 * Everything after the depthwise conv is per pixel, so it runs over chunks of pixel rows when the
 * 4C-wide hidden would not fit one storage binding (1536²: 147456 × 768 floats = 453 MB).
 */
import { visionNames } from '../weights/names.js';
import { forEachRowChunk, sequential } from './chunks.js';
import { DepthwiseConv7, LayerNorm, Linear } from './layers.js';
import type { WeightLoader } from './loader.js';
import type { TensorOps } from './ops.js';

export interface BlockOptions {
  /** Cap on pixels per row chunk (default: as many as one binding allows; specs lower it). */
  maxChunkRows?: number;
}

export class ConvNextBlock<T> {
  constructor(
    readonly ops: TensorOps<T>,
    readonly dwconv: DepthwiseConv7<T>, //  (C, 1, 7, 7)
    readonly norm: LayerNorm<T>, //         (C)
    readonly pwconv1: Linear<T>, //         (4C, C)
    readonly pwconv2: Linear<T>, //         (C, 4C)
    readonly gamma: T | null, //            (C) layer_scale_parameter; null without layer scale
  ) {}

  static async load<T>(w: WeightLoader<T>, stage: number, layer: number, o: { eps: number; layerScale: boolean }): Promise<ConvNextBlock<T>> {
    const n = visionNames.block(stage, layer);
    return new ConvNextBlock(
      w.ops,
      await DepthwiseConv7.load(w, n.dwconvWeight, n.dwconvBias),
      await LayerNorm.load(w, n.normWeight, n.normBias, o.eps),
      await Linear.load(w, n.pwconv1Weight, n.pwconv1Bias),
      await Linear.load(w, n.pwconv2Weight, n.pwconv2Bias),
      o.layerScale ? await w.get(n.layerScale) : null,
    );
  }

  forward(x: T, opts: BlockOptions = {}): T {
    const { ops } = this;
    const [H, W, C] = ops.shape(x);
    const rows = (t: T) => ops.reshape(t, [H * W, C]); //                     (H, W, C) → (H·W, C)
    const perChunk = Math.min(opts.maxChunkRows ?? Infinity, ops.maxRowsPerBinding(4 * C));
    return ops.tidy(() => {
      const mixed = this.dwconv.forward(x); //                                 (H, W, C)   7×7, per channel
      // Per pixel (n rows at a time), each step's input freed once the next has used it:
      const out = forEachRowChunk(ops, rows(mixed), rows(x), perChunk, (m, residual) =>
        sequential(ops, m, [
          (h) => this.norm.forward(h), //                                      (n, C)
          (h) => this.pwconv1.forward(h, { activation: 'gelu' }), //           (n, 4C)
          (h) => this.pwconv2.forward(h, { residual, scale: this.gamma ?? undefined }), // (n, C)  residual + γ·pwconv2(h), one kernel
        ]),
      );
      return ops.reshape(out, [H, W, C]);
    });
  }
}
