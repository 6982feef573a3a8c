/**
 * Vision-tower benchmark at real ConvLLaVA scale, with no checkpoint on disk:
 *
 *   npm run bench:vision -- [--res 768,1536] [--dtype f32|f16] [--runs 1] [--seed 1]
 *
 * Builds the ConvLLaVA-768 / -1536 tower (ConvNeXt-L 192/384/768/1536 × 3/3/27/3 + stage 5 of width
 * 3072, depth 6; ≈ 670 M parameters) and the mlp2x_gelu projector (3072 → 4096 → 4096) from the
 * preset table (synthetic/presets.ts), with seeded weights generated on the GPU
 * (synthetic/checkpoint.ts), and encodes one random image per run. Reports, per resolution: wall time of
 * `encode + project` until the GPU has finished (first run includes pipeline compilation; later runs
 * are steady state), visual tokens, and peak GPU memory (buffer pool high-water mark, weights included).
 *
 * References on one H200 (PyTorch): 768² fp16 6.3 ms / fp32 29.7 ms; 1536² fp16 19.3 ms / fp32 97.5 ms.
 * On lavapipe (software Vulkan on the CPU) the numbers only show that the shapes run end to end.
 */
import { parseArgs } from 'node:util';
import { Gpu } from '../runtime/gpu.js';
import { syntheticCheckpoint } from '../synthetic/checkpoint.js';
import { visionTowerConfig } from '../convnext/config.js';
import { VisionTower } from '../convnext/model.js';
import { Projector } from '../nn/projector.js';

function gib(bytes: number): string {
  return (bytes / 2 ** 30).toFixed(2);
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
    // The tower and projector of the preset (synthetic/presets.ts), weights generated on the GPU.
    const ckpt = syntheticCheckpoint(`convllava-${res}-vision`, seed);
    const params = ckpt.vision.parameters + ckpt.llm.parameters;

    let t0 = performance.now();
    const tower = await VisionTower.fromSource(gpu, visionTowerConfig(ckpt.config, ckpt.visionConfig), ckpt.vision, { dtype });
    const projector = await Projector.fromSource(gpu, ckpt.config, ckpt.llm, { dtype });
    await gpu.sync();
    const loadMs = performance.now() - t0;
    console.log(`ConvLLaVA-${res}: ${(params / 1e6).toFixed(0)} M parameters generated + uploaded in ${(loadMs / 1000).toFixed(1)} s`);

    const image = new Float32Array(3 * res * res);
    for (let i = 0; i < image.length; i++) image[i] = Math.sin(i * 0.618) * 1.5;
    const pixels = gpu.upload([3, res, res], image);
    for (let r = 0; r < runs; r++) {
      gpu.pool.peakBytes = gpu.pool.liveBytes;
      t0 = performance.now();
      const before = gpu.counters();
      const { features } = tower.encode(pixels);
      const projected = projector.forward(features);
      const work = gpu.counters();
      await gpu.sync();
      const ms = performance.now() - t0;
      const values = (await projected.read()) as Float32Array;
      const finite = values.every(Number.isFinite);
      console.log(
        `  run ${r + 1}: ${ms.toFixed(1)} ms wall (encode + project, ${r === 0 ? 'incl. pipeline compilation' : 'steady state'}); ` +
          `${features.shape[0]} tokens × ${features.shape[1]} → ${projected.shape[1]}; ` +
          `peak GPU memory ${gib(gpu.pool.peakBytes)} GiB in use (${gib(gpu.pool.heldBytes)} GiB held by the pool); ` +
          `outputs ${finite ? 'finite' : 'NOT FINITE'}; ${work.dispatches - before.dispatches} dispatches, ${work.passes - before.passes} passes, ` +
          `${work.copies - before.copies} copies, ${(work.recordMs - before.recordMs).toFixed(1)} ms recording`,
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
