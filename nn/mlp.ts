/**
 * LLaMA's MLP with its input norm and residual: x + down_proj(silu(gate_proj(h)) · up_proj(h)), h = rmsNorm(x).
 *   x [T, H] → [T, H]; hidden I
 */
import { llmNames } from '../weights/names.js';
import { Linear, type RMSNorm } from './layers.js';
import type { WeightLoader } from './loader.js';
import type { TensorOps } from './ops.js';

export class SwiGluMlp<T> {
  constructor(
    readonly ops: TensorOps<T>,
    readonly gate: Linear<T>, //  (I, H)  mlp.gate_proj
    readonly up: Linear<T>, //    (I, H)  mlp.up_proj
    readonly down: Linear<T>, //  (H, I)  mlp.down_proj
  ) {}

  static async load<T>(w: WeightLoader<T>, n: ReturnType<typeof llmNames.layer>): Promise<SwiGluMlp<T>> {
    return new SwiGluMlp(w.ops, await Linear.load(w, n.gate), await Linear.load(w, n.up), await Linear.load(w, n.down));
  }

  /**
   * x + down_proj(silu(gate_proj(h)) · up_proj(h)) with h = norm(x): the norm, both projections and
   * SwiGLU are one op (ops/gateUpSwiglu.ts), the residual add is down_proj's epilogue.
   */
  forward(x: T, norm: RMSNorm<T>): T {
    const { ops } = this;
    return ops.tidy(() => {
      const hidden = ops.gateUpSwiglu(x, norm.gamma, norm.eps, this.gate.weight, this.up.weight); //  [T, I]
      return this.down.forward(hidden, { residual: x }); //                                           [T, H]
    });
  }
}
