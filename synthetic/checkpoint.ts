/**
 * Synthetic ConvLLaVA checkpoints: the real architectures (synthetic/presets.ts) with seeded random
 * weights, so the real shapes run end to end without downloading 14 GB.
 *
 *   const ckpt = syntheticCheckpoint('convllava-1536');          // weights made on the GPU, on demand
 *   await writeSyntheticCheckpoint('convllava-768-vision', dir);   // the same model as files, through
 *                                                                   // the safetensors writer (--through-disk)
 *
 * The tensor set and shapes come from the same table the loader checks (weights/names.ts), so a
 * synthetic checkpoint is, tensor for tensor, what `Checkpoint.open` expects of an official folder.
 * Initial values follow the fixture generator's recipe (spec/fixtures/tools/gen_golden.py): norm
 * scales ≈ 1, biases small, layer scales in [0.1, 0.5], matrices with std 1/√fan_in — so activations
 * stay finite through 38 ConvNeXt blocks and 32 decoder layers (the text is still meaningless).
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { randomFill, randomFillRef, seedFor } from '../ops/randomFill.js';
import type { Gpu } from '../runtime/gpu.js';
import { f32ToF16Array } from '../runtime/half.js';
import type { Tensor } from '../runtime/tensor.js';
import type { WeightSource } from '../weights/checkpoint.js';
import {
  checkConfigsAgree,
  parseConvNextConfig,
  parseLlavaConfig,
  parsePreprocessorConfig,
  type ConvNextConfig,
  type LlavaConfig,
  type PreprocessorConfig,
} from '../weights/config.js';
import { expectedLlmTensors, expectedVisionTensors, llmNames, type ExpectedTensor } from '../weights/names.js';
import { writeSafetensors, type StDType, type TensorToWrite } from '../weights/safetensors.js';
import { preset } from './presets.js';

/** Uniform distribution parameters for a tensor, from its checkpoint name and shape. */
export function initFor(name: string, shape: readonly number[]): { center: number; halfWidth: number } {
  const sqrt3 = Math.sqrt(3); // uniform [-a, a) has std a/√3
  if (name.includes('layer_scale')) return { center: 0.3, halfWidth: 0.2 };
  if (name.endsWith('bias')) return { center: 0, halfWidth: 0.1 * sqrt3 };
  if (shape.length === 1) return { center: 1, halfWidth: 0.1 * sqrt3 }; // LayerNorm / RMSNorm scales
  if (name === llmNames.embedTokens) return { center: 0, halfWidth: sqrt3 };
  const fanIn = shape.slice(1).reduce((a, b) => a * b, 1);
  const std = (name === llmNames.lmHead ? 2 : 1) / Math.sqrt(fanIn);
  return { center: 0, halfWidth: std * sqrt3 };
}

/** A WeightSource whose tensors are generated on request: on the GPU by `randomFill`, or on the CPU. */
export class SyntheticWeights implements WeightSource {
  private readonly tensors: Map<string, Pick<ExpectedTensor, 'name' | 'shape'>>;

  /** `expected`: names and shapes (weights/names.ts); optional ones (the unused pooler norm) are left out. */
  constructor(expected: readonly Pick<ExpectedTensor, 'name' | 'shape' | 'optional'>[], readonly modelSeed = 0) {
    this.tensors = new Map(expected.filter((t) => !t.optional).map((t) => [t.name, t]));
  }

  names(): string[] {
    return [...this.tensors.keys()];
  }

  has(name: string): boolean {
    return this.tensors.has(name);
  }

  private get(name: string): Pick<ExpectedTensor, 'name' | 'shape'> {
    const t = this.tensors.get(name);
    if (!t) throw new Error(`synthetic checkpoint: no tensor '${name}'`);
    return t;
  }

  shape(name: string): number[] {
    return [...this.get(name).shape];
  }

  dtype(_name: string): StDType {
    return 'F16';
  }

  /** Parameters in this source. */
  get parameters(): number {
    let n = 0;
    for (const t of this.tensors.values()) n += t.shape.reduce((a, b) => a * b, 1);
    return n;
  }

  async readF32(name: string): Promise<Float32Array> {
    const shape = this.get(name).shape;
    return randomFillRef(shape.reduce((a, b) => a * b, 1), { seed: seedFor(name, this.modelSeed), ...initFor(name, shape) });
  }

  async toGpu(gpu: Gpu, name: string, dtype: 'f32' | 'f16'): Promise<Tensor> {
    const shape = this.get(name).shape;
    return randomFill(gpu, shape, dtype, { seed: seedFor(name, this.modelSeed), ...initFor(name, shape), weight: true });
  }
}

/** What the model loaders read from a model: configs and the two weight sources (cf. Checkpoint). */
export interface SyntheticCheckpoint {
  readonly dir: string;
  readonly config: LlavaConfig;
  readonly generationConfig: Record<string, unknown> | undefined;
  readonly visionConfig: ConvNextConfig;
  readonly preprocessorConfig: PreprocessorConfig;
  readonly llm: SyntheticWeights;
  readonly vision: SyntheticWeights;
  readonly warnings: string[];
  /** Only the vision tower and projector have weights (the `-vision` presets). */
  readonly visionOnly: boolean;
  close(): Promise<void>;
}

/** A synthetic checkpoint of preset `name` whose weights are generated on the GPU when loaded. */
export function syntheticCheckpoint(name: string, seed = 0): SyntheticCheckpoint {
  const p = preset(name);
  const dir = `synthetic:${name}`;
  const config = parseLlavaConfig(p.config, `${dir}/config.json`);
  const visionConfig = parseConvNextConfig(p.visionConfig, `${dir}/vision_tower/config.json`, config);
  const preprocessorConfig = parsePreprocessorConfig(p.preprocessorConfig, `${dir}/vision_tower/preprocessor_config.json`);
  checkConfigsAgree(config, visionConfig, preprocessorConfig, dir);
  return {
    dir,
    config,
    generationConfig: undefined,
    visionConfig,
    preprocessorConfig,
    llm: new SyntheticWeights(
      expectedLlmTensors(config).filter((t) => !p.visionOnly || t.part === 'projector'),
      seed,
    ),
    vision: new SyntheticWeights(expectedVisionTensors(visionConfig), seed + 1),
    warnings: [],
    visionOnly: p.visionOnly,
    close: async () => {},
  };
}

/**
 * Writes preset `name` as an official-layout model folder (f16 safetensors, the LLM split into
 * shards of at most `shardBytes` with an index), generating each tensor on the CPU while it streams.
 */
export async function writeSyntheticCheckpoint(name: string, dir: string, options: { seed?: number; shardBytes?: number } = {}): Promise<void> {
  const ckpt = syntheticCheckpoint(name, options.seed ?? 0);
  const p = preset(name);
  await mkdir(join(dir, 'vision_tower'), { recursive: true });
  await writeFile(join(dir, 'config.json'), JSON.stringify(p.config, null, 2));
  await writeFile(join(dir, 'vision_tower', 'config.json'), JSON.stringify(p.visionConfig, null, 2));
  await writeFile(join(dir, 'vision_tower', 'preprocessor_config.json'), JSON.stringify(p.preprocessorConfig, null, 2));

  const toWrite = (source: SyntheticWeights, names: string[]): TensorToWrite[] =>
    names.map((n) => ({
      name: n,
      dtype: 'F16' as const,
      shape: source.shape(n),
      data: async function* () {
        // one tensor at a time, converted in place: memory stays at one tensor's f32 + f16 copies
        yield f32ToF16Array(await source.readF32(n));
      },
    }));

  await writeSafetensors(join(dir, 'vision_tower', 'model.safetensors'), toWrite(ckpt.vision, ckpt.vision.names()));

  const shardBytes = options.shardBytes ?? 4 << 30;
  const shards: string[][] = [[]];
  let bytes = 0;
  for (const n of ckpt.llm.names()) {
    const size = ckpt.llm.shape(n).reduce((a, b) => a * b, 1) * 2;
    if (bytes + size > shardBytes && shards[shards.length - 1].length) {
      shards.push([]);
      bytes = 0;
    }
    shards[shards.length - 1].push(n);
    bytes += size;
  }
  if (shards.length === 1) {
    await writeSafetensors(join(dir, 'model.safetensors'), toWrite(ckpt.llm, shards[0]));
    return;
  }
  const weightMap: Record<string, string> = {};
  for (let i = 0; i < shards.length; i++) {
    const file = `model-${String(i + 1).padStart(5, '0')}-of-${String(shards.length).padStart(5, '0')}.safetensors`;
    await writeSafetensors(join(dir, file), toWrite(ckpt.llm, shards[i]));
    for (const n of shards[i]) weightMap[n] = file;
  }
  await writeFile(join(dir, 'model.safetensors.index.json'), JSON.stringify({ metadata: {}, weight_map: weightMap }, null, 2));
}
