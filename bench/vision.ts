/**
 * Vision-tower benchmark at real ConvLLaVA scale, with no checkpoint on disk:
 *
 *   npm run bench:vision -- [--res 768,1536] [--dtype f32|f16] [--runs 1] [--seed 1]
 *
 * Builds the ConvLLaVA-768 / -1536 tower (ConvNeXt-L 192/384/768/1536 × 3/3/27/3 + stage 5 of width
 * 3072, depth 6; ≈ 670 M parameters) and the mlp2x_gelu projector (3072 → 4096 → 4096), fills every
 * weight with seeded uniform noise scaled like PyTorch's default init (values written straight into GPU
 * buffers, chunk by chunk), and encodes one random image per run. Reports, per resolution: wall time of
 * `encode + project` until the GPU has finished (first run includes pipeline compilation; later runs
 * are steady state), visual tokens, and peak GPU memory (buffer pool high-water mark, weights included).
 *
 * References on one H200 (PyTorch): 768² fp16 6.3 ms / fp32 29.7 ms; 1536² fp16 19.3 ms / fp32 97.5 ms.
 * On lavapipe (software Vulkan on the CPU) the numbers only show that the shapes run end to end.
 */
import { parseArgs } from 'node:util';
import { Gpu } from '../runtime/gpu.js';
import type { Tensor } from '../runtime/tensor.js';
import type { WeightSource } from '../weights/checkpoint.js';
import type { ConvNextConfig, LlavaConfig } from '../weights/config.js';
import { expectedVisionTensors, projectorLinears } from '../weights/names.js';
import { convLLaVAPreset, type VisionTowerConfig } from '../convnext/config.js';
import { VisionTower } from '../convnext/model.js';
import { Projector } from '../llm/projector.js';

/** Seeded weights of the given shapes, generated chunk by chunk straight into GPU buffers. */
class SyntheticWeights implements WeightSource {
  private readonly shapes = new Map<string, number[]>();
  constructor(
    tensors: { name: string; shape: number[] }[],
    private readonly seed: number,
  ) {
    for (const t of tensors) this.shapes.set(t.name, t.shape);
  }
  has(name: string): boolean {
    return this.shapes.has(name);
  }
  shape(name: string): number[] {
    const s = this.shapes.get(name);
    if (!s) throw new Error(`synthetic weights: no tensor '${name}'`);
    return [...s];
  }
  dtype(): 'F32' {
    return 'F32';
  }
  async readF32(name: string): Promise<Float32Array> {
    const out = new Float32Array(this.shape(name).reduce((a, b) => a * b, 1));
    this.fill(name, out, 0);
    return out;
  }
  async toGpu(gpu: Gpu, name: string, dtype: 'f32' | 'f16'): Promise<Tensor> {
    const shape = this.shape(name);
    const n = shape.reduce((a, b) => a * b, 1);
    const t = gpu.empty(shape, dtype, name);
    const chunk = new Float32Array(Math.min(n, 1 << 22));
    for (let start = 0; start < n; start += chunk.length) {
      const part = chunk.subarray(0, Math.min(chunk.length, n - start));
      this.fill(name, part, start);
      gpu.write(t, part, start);
    }
    await gpu.device.queue.onSubmittedWorkDone(); // bound the driver's staging memory
    return t;
  }
  /** PyTorch-like init: norms ≈ 1, biases small, layer scales 0.1…0.5, matrices U(±1/√fan_in). */
  private fill(name: string, out: Float32Array, offset: number): void {
    const shape = this.shape(name);
    let s = (hash(name) ^ this.seed ^ Math.imul(offset, 0x9e3779b1)) >>> 0;
    const next = () => {
      s ^= s << 13;
      s ^= s >>> 17;
      s ^= s << 5;
      return (s >>> 0) / 4294967296 - 0.5; // U(−½, ½)
    };
    let scale: number;
    let base = 0;
    if (name.includes('layer_scale')) [base, scale] = [0.3, 0.4];
    else if (name.endsWith('bias')) scale = 0.2;
    else if (shape.length === 1) [base, scale] = [1, 0.2]; // LayerNorm weight
    else scale = 2 / Math.sqrt(shape.slice(1).reduce((a, b) => a * b, 1));
    for (let i = 0; i < out.length; i++) out[i] = base + scale * next();
  }
}

function gib(bytes: number): string {
  return (bytes / 2 ** 30).toFixed(2);
}

function hash(text: string): number {
  let h = 2166136261;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 16777619);
  return h >>> 0 || 1;
}

/** The ConvNextConfig / LlavaConfig fields the name table needs, for a preset tower. */
function configsFor(tower: VisionTowerConfig): { vision: ConvNextConfig; llava: LlavaConfig } {
  const vision: ConvNextConfig = {
    num_channels: tower.inChannels,
    patch_size: tower.patchSize,
    num_stages: tower.widths.length,
    hidden_sizes: tower.widths,
    depths: tower.depths,
    hidden_act: 'gelu',
    layer_norm_eps: 1e-12,
    layer_scale_init_value: 1e-6,
    image_size: tower.resolution,
    five_stage_from_llava: true,
  };
  // Only the projector fields are read from this (Vicuna-7B hidden size).
  const llava = { mm_projector_type: 'mlp2x_gelu', mm_hidden_size: tower.widths[tower.widths.length - 1], hidden_size: 4096 } as LlavaConfig;
  return { vision, llava };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      res: { type: 'string', default: '768,1536' },
      dtype: { type: 'string', default: 'f32' },
      runs: { type: 'string', default: '1' },
      seed: { type: 'string', default: '1' },
    },
  });
  const dtype = values.dtype === 'f16' ? 'f16' : 'f32';
  const runs = Math.max(1, Number(values.runs));
  const seed = Number(values.seed);
  const gpu = await Gpu.create();
  console.log(`device: ${gpu.summary.vendor} ${gpu.summary.description || gpu.summary.device} (${gpu.summary.backend}); weights ${dtype}`);

  for (const res of values.res.split(',').map(Number)) {
    if (res !== 768 && res !== 1024 && res !== 1536) throw new Error(`--res: ${res} is not a ConvLLaVA resolution (768, 1024, 1536)`);
    const config = convLLaVAPreset(res);
    const { vision, llava } = configsFor(config);
    const tensors = [...expectedVisionTensors(vision).filter((t) => !t.optional), ...projectorLinears(llava).flatMap((l) => [
      { name: l.weight, shape: l.shape },
      { name: l.bias, shape: [l.shape[0]] },
    ])];
    const weights = new SyntheticWeights(tensors, seed);
    const params = tensors.reduce((n, t) => n + t.shape.reduce((a, b) => a * b, 1), 0);

    let t0 = performance.now();
    const tower = await VisionTower.fromSource(gpu, config, weights, { dtype });
    const projector = await Projector.fromSource(gpu, llava, weights, { dtype });
    await gpu.sync();
    const loadMs = performance.now() - t0;
    console.log(`ConvLLaVA-${res}: ${(params / 1e6).toFixed(0)} M parameters generated + uploaded in ${(loadMs / 1000).toFixed(1)} s`);

    const image = new Float32Array(3 * res * res);
    for (let i = 0; i < image.length; i++) image[i] = Math.sin(i * 0.618) * 1.5;
    const pixels = gpu.upload([3, res, res], image);
    for (let r = 0; r < runs; r++) {
      gpu.pool.peakBytes = gpu.pool.liveBytes;
      t0 = performance.now();
      const { features } = tower.encode(pixels);
      const projected = projector.forward(features);
      await gpu.sync();
      const ms = performance.now() - t0;
      const values = (await projected.read()) as Float32Array;
      const finite = values.every(Number.isFinite);
      console.log(
        `  run ${r + 1}: ${ms.toFixed(1)} ms wall (encode + project, ${r === 0 ? 'incl. pipeline compilation' : 'steady state'}); ` +
          `${features.shape[0]} tokens × ${features.shape[1]} → ${projected.shape[1]}; ` +
          `peak GPU memory ${gib(gpu.pool.peakBytes)} GiB in use (${gib(gpu.pool.heldBytes)} GiB held by the pool); ` +
          `outputs ${finite ? 'finite' : 'NOT FINITE'}`,
      );
      features.dispose();
      projected.dispose();
    }
    pixels.dispose();
    tower.dispose();
    projector.dispose();
    gpu.pool.trim();
  }
  gpu.destroy();
}

main().catch((e) => {
  console.error(`bench:vision: ${process.env.CONVLLAVA_DEBUG ? (e as Error).stack : (e as Error).message}`);
  process.exitCode = 1;
});
