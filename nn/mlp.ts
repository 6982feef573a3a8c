/**
 * LLaMA's MLP: down_proj(silu(gate_proj(x)) · up_proj(x)).      x [T, H] → [T, H]; hidden I
 */
import { llmNames } from '../weights/names.js';
import { Linear } from './layers.js';
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

  forward(x: T): T {
    return this.ops.tidy(() => this.down.forward(this.ops.swiglu(this.gate.forward(x), this.up.forward(x)))); // [T, I] → [T, H]
  }
}
