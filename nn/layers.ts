/**
 * The leaf modules. Each owns its weights (loaded by name through nn/loader.ts) and has `forward`;
 * on cpuOps the same `forward` is its CPU reference (the ops' `<op>Ref`). Shapes are PyTorch's.
 *
 *   Linear          y = x·Wᵀ + b (optional fused exact GELU)      x [..., in] → [..., out]; W (out, in)
 *   LayerNorm       over the last dim, with γ and β                 [..., C] → [..., C]
 *   RMSNorm         LLaMA's, with γ                                 [..., C] → [..., C]
 *   DepthwiseConv7  ConvNeXt's 7×7 per-channel conv, pad 3          (H, W, C) → (H, W, C); W (C, 1, 7, 7)
 *   PatchConv       k×k stride-k conv (stem, downsampling)          (H, W, Cin) → (H/k, W/k, Cout)
 *   Embedding       table lookup                                    ids [T] → [T, D]; table (V, D)
 */
import type { LinearOptions } from '../ops/linear.js';
import type { WeightLoader } from './loader.js';
import type { TensorOps } from './ops.js';

export class Linear<T> {
  constructor(
    readonly ops: TensorOps<T>,
    readonly weight: T, //  (out, in)
    readonly bias?: T, //   (out)
  ) {}

  static async load<T>(w: WeightLoader<T>, weight: string, bias?: string): Promise<Linear<T>> {
    return new Linear(w.ops, await w.get(weight), bias === undefined ? undefined : await w.optional(bias));
  }

  forward(x: T, opts?: LinearOptions<T>): T {
    return this.ops.linear(x, this.weight, this.bias, opts);
  }
}

export class LayerNorm<T> {
  constructor(
    readonly ops: TensorOps<T>,
    readonly gamma: T, //  (C)
    readonly beta: T, //   (C)
    readonly eps: number,
  ) {}

  static async load<T>(w: WeightLoader<T>, weight: string, bias: string, eps: number): Promise<LayerNorm<T>> {
    return new LayerNorm(w.ops, await w.get(weight), await w.get(bias), eps);
  }

  forward(x: T): T {
    return this.ops.layerNorm(x, this.gamma, this.beta, this.eps);
  }
}

export class RMSNorm<T> {
  constructor(
    readonly ops: TensorOps<T>,
    readonly gamma: T, //  (C)
    readonly eps: number,
  ) {}

  static async load<T>(w: WeightLoader<T>, weight: string, eps: number): Promise<RMSNorm<T>> {
    return new RMSNorm(w.ops, await w.get(weight), eps);
  }

  forward(x: T): T {
    return this.ops.rmsNorm(x, this.gamma, this.eps);
  }
}

export class DepthwiseConv7<T> {
  constructor(
    readonly ops: TensorOps<T>,
    readonly weight: T, //  (C, 1, 7, 7)
    readonly bias: T, //    (C)
  ) {}

  static async load<T>(w: WeightLoader<T>, weight: string, bias: string): Promise<DepthwiseConv7<T>> {
    return new DepthwiseConv7(w.ops, await w.get(weight), await w.get(bias));
  }

  forward(x: T): T {
    return this.ops.dwconv7(x, this.weight, this.bias);
  }
}

export class PatchConv<T> {
  constructor(
    readonly ops: TensorOps<T>,
    readonly weight: T, //  (Cout, Cin, k, k)
    readonly bias: T, //    (Cout)
    readonly k: number,
  ) {}

  static async load<T>(w: WeightLoader<T>, weight: string, bias: string, k: number): Promise<PatchConv<T>> {
    return new PatchConv(w.ops, await w.get(weight), await w.get(bias), k);
  }

  forward(x: T): T {
    return this.ops.patchConv(x, this.weight, this.bias, this.k);
  }
}

export class Embedding<T> {
  constructor(
    readonly ops: TensorOps<T>,
    readonly table: T, //  (V, D)
  ) {}

  static async load<T>(w: WeightLoader<T>, table: string): Promise<Embedding<T>> {
    return new Embedding(w.ops, await w.get(table));
  }

  /** ids: numbers (checked against the vocabulary), or on the GPU a u32 tensor of ids. */
  forward(ids: readonly number[] | T): T {
    return this.ops.embedding(ids, this.table);
  }
}
