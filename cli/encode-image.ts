/**
 * `convllava encode-image --model DIR --image FILE --out OUT.safetensors [--dtype f32|f16]`
 *
 * Runs one image through preprocessing, the vision tower and the projector, and writes every
 * intermediate as float32, named and laid out as the reference's golden file:
 *   pixel_values [1,3,R,R], stem, stage1 … stageN [1,C,H,W] (NCHW), image_features [1,T,C], projected [1,T,D]
 * Prints the visual-token count and the time of each step.
 */
import { parseArgs } from 'node:util';
import { Gpu } from '../runtime/gpu.js';
import type { Tensor } from '../runtime/tensor.js';
import { Checkpoint } from '../weights/checkpoint.js';
import { writeSafetensors, type TensorToWrite } from '../weights/safetensors.js';
import { stat } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { loadImage, preprocess, preprocessorFor } from '../convnext/preprocess.js';
import { VisionTower } from '../convnext/model.js';
import { Projector } from '../nn/projector.js';
import { gpuOps } from '../nn/ops.js';
import { nhwcToNchw } from '../ops/transpose.js';

const USAGE = `usage: convllava encode-image --model DIR --image FILE --out OUT.safetensors [--dtype f32|f16] [--precision f32|f16]

  --model DIR     ConvLLaVA folder (config.json, weights, vision_tower/)
  --image FILE    PNG or JPEG (EXIF orientation is not applied, as in the reference)
  --out FILE      .safetensors with pixel_values, stem, stage1…, image_features, projected (float32)
  --dtype         storage of the tower/projector weights on the GPU (default f32)
  --precision     activations between kernels (default f32, the reference's; f16 needs shader-f16);
                  the dumps are float32 either way`;

export async function run(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      model: { type: 'string' },
      image: { type: 'string' },
      out: { type: 'string' },
      dtype: { type: 'string', default: 'f32' },
      precision: { type: 'string', default: 'f32' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  });
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  if (!values.model || !values.image || !values.out) {
    console.error(`encode-image: --model, --image and --out are required\n\n${USAGE}`);
    return 2;
  }
  const dtype = values.dtype;
  if (dtype !== 'f32' && dtype !== 'f16') {
    console.error(`encode-image: --dtype must be f32 or f16, got '${dtype}'`);
    return 2;
  }
  const precision = values.precision;
  if (precision !== 'f32' && precision !== 'f16') {
    console.error(`encode-image: --precision must be f32 or f16, got '${precision}'`);
    return 2;
  }

  const times: [string, number][] = [];
  let t0 = performance.now();
  const lap = (label: string) => {
    const now = performance.now();
    times.push([label, now - t0]);
    t0 = now;
  };

  // Everything that can fail on user input is checked before the GPU and weights are touched.
  const outStat = await stat(values.out).catch(() => null);
  if (outStat?.isDirectory()) throw new Error(`--out ${values.out} is a directory; give the path of the .safetensors file to write`);
  if (!(await stat(dirname(resolve(values.out))).catch(() => null))?.isDirectory()) {
    throw new Error(`--out ${values.out}: the folder ${dirname(resolve(values.out))} does not exist`);
  }
  const ckpt = await Checkpoint.open(values.model);
  const image = await loadImage(values.image);
  const { pixelValues, size } = preprocess(image, preprocessorFor(ckpt.preprocessorConfig, ckpt.config.mm_vision_resolution));
  lap(`decode + preprocess (${image.width}×${image.height} → ${size}²)`);

  const gpu = await Gpu.create();
  try {
    const ops = gpuOps(gpu, precision);
    const tower = await VisionTower.load(ops, ckpt, { dtype });
    const projector = await Projector.load(ops, ckpt, { dtype });
    await gpu.sync();
    lap(`load weights (${dtype}; ${precision} activations)`);

    const pixels = gpu.upload([3, size, size], pixelValues);
    const { features, stages } = tower.encode(pixels, { keepStages: true });
    const projected = projector.forward(features);
    await gpu.sync();
    lap('vision tower + projector');

    // NCHW dumps, as the reference stores them.
    const tensors: TensorToWrite[] = [f32('pixel_values', [1, 3, size, size], pixelValues)];
    for (const [name, map] of Object.entries(stages!)) {
      const nchw = nhwcToNchw(gpu, map);
      const [h, w, c] = map.shape;
      tensors.push(f32(name, [1, c, h, w], (await nchw.read()) as Float32Array));
      nchw.dispose();
    }
    const [T, C] = features.shape;
    tensors.push(f32('image_features', [1, T, C], (await features.read()) as Float32Array));
    tensors.push(f32('projected', [1, T, projected.shape[1]], (await projected.read()) as Float32Array));
    await writeSafetensors(values.out, tensors, { producer: 'convllava encode-image' });
    lap(`read back + write ${values.out}`);

    for (const t of [pixels, features, projected, ...Object.values(stages!)] as Tensor[]) t.dispose();
    tower.dispose();
    projector.dispose();

    console.log(`visual tokens: ${T} (${Math.sqrt(T)}×${Math.sqrt(T)}) × ${C} → projected × ${projected.shape[1]}`);
    for (const [label, ms] of times) console.log(`  ${label.padEnd(48)} ${ms.toFixed(1).padStart(9)} ms`);
    console.log(`  peak GPU memory ${(gpu.pool.peakBytes / 2 ** 20).toFixed(1)} MiB`);
  } finally {
    gpu.destroy();
    await ckpt.close();
  }
  return 0;
}

function f32(name: string, shape: number[], data: Float32Array): TensorToWrite {
  return { name, dtype: 'F32', shape, data };
}
