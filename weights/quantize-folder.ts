/**
 * `convllava quantize SRC DST`: a float ConvLLaVA folder (official layout) → the same folder with its
 * 2-D weights stored q8 / q4 as weights/quantized.ts describes, written tensor by tensor:
 *
 *   - scope as quantize-on-load (nn/loader.ts): every 2-D tensor of the root files (decoder linears,
 *     lm_head, embed_tokens, projector); the vision tower's 2-D tensors (pointwise linears) only with
 *     `quantizeVision` — everything else (vectors, convolutions, unexpected extras) is copied byte for byte,
 *   - the codes and scales come from runtime/quant.ts `quantize` on the f32 values, read in row blocks of
 *     at most CHUNK_ELEMENTS (rows are independent, so this equals quantizing the tensor whole — and
 *     loading the result equals quantizing SRC at load, bit for bit),
 *   - root and vision_tower/ weights are split into shards of at most `shardBytes` (with
 *     model.safetensors.index.json) when they exceed it,
 *   - every other file of SRC's root and vision_tower/ (configs, tokenizer files) is copied; config.json
 *     gains "quantization_config".
 *
 * Memory: one row block of f32 values and its codes, plus one tensor's scales (1/16 of its f16 size).
 */
import { copyFile, mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { quantize, type QuantDType } from '../runtime/quant.js';
import { Checkpoint, CHUNK_ELEMENTS, type TensorSet } from './checkpoint.js';
import { isFloatDType } from './convert.js';
import { expectedLlmTensors, expectedVisionTensors } from './names.js';
import { codesToDisk, diskLayout, QUANT_METHOD, SCALES_SUFFIX, VISION_PREFIX, type QuantizationConfig } from './quantized.js';
import { writeSafetensors, type TensorToWrite } from './safetensors.js';

export interface QuantizeFolderOptions {
  dtype: QuantDType;
  quantizeVision?: boolean;
  /** Largest shard in bytes (default 2 GB = 2·10⁹). */
  shardBytes?: number;
  /** After each tensor is written (quantized or copied). */
  onProgress?: (done: number, total: number, name: string, how: string) => void;
}

export interface QuantizeFolderResult {
  tensors: number;
  quantized: number;
  /** Bytes of weights written (safetensors data, both parts). */
  bytes: number;
  shards: { llm: number; vision: number };
  copiedFiles: string[];
}

export const DEFAULT_SHARD_BYTES = 2e9;

/** Files of a weights folder that are rewritten, not copied. */
function isWeightFile(name: string): boolean {
  return name.endsWith('.safetensors') || name === 'model.safetensors.index.json';
}

export async function quantizeFolder(src: string, dst: string, options: QuantizeFolderOptions): Promise<QuantizeFolderResult> {
  const { dtype } = options;
  const shardBytes = options.shardBytes ?? DEFAULT_SHARD_BYTES;
  if (!(shardBytes > 0)) throw new Error(`quantize: the shard size must be positive, got ${shardBytes}`);
  if (await stat(join(dst, 'config.json')).catch(() => null)) throw new Error(`${dst} already holds a model (config.json); choose an empty or new folder`);
  const ckpt = await Checkpoint.open(src);
  try {
    if (ckpt.quantization) throw new Error(`${src} is already quantized (${ckpt.quantizedAs}); quantize a float (f32 / f16 / bf16) folder`);
    const llmTargets = expectedLlmTensors(ckpt.config).filter((t) => t.shape.length === 2 && ckpt.llm.has(t.name));
    const visionTargets = options.quantizeVision ? expectedVisionTensors(ckpt.visionConfig).filter((t) => t.shape.length === 2 && ckpt.vision.has(t.name)) : [];
    for (const t of [...llmTargets, ...visionTargets]) {
      const set = t.part === 'vision' ? ckpt.vision : ckpt.llm;
      if (!isFloatDType(set.dtype(t.name))) throw new Error(`${src}: tensor '${t.name}' is ${set.dtype(t.name)}; only F32, F16 and BF16 weights can be quantized`);
    }
    const total = ckpt.llm.names().length + ckpt.vision.names().length;
    let done = 0;
    const progress = (name: string, how: string) => options.onProgress?.(++done, total, name, how);

    await mkdir(join(dst, 'vision_tower'), { recursive: true });
    const llm = await writeSet(ckpt.llm, new Set(llmTargets.map((t) => t.name)), dst, dtype, shardBytes, progress);
    const vision = await writeSet(ckpt.vision, new Set(visionTargets.map((t) => t.name)), join(dst, 'vision_tower'), dtype, shardBytes, progress);

    const quantization: QuantizationConfig = {
      quant_method: QUANT_METHOD,
      bits: dtype === 'q8' ? 8 : 4,
      group_size: 32,
      scales_suffix: SCALES_SUFFIX,
      modules: [...llmTargets.map((t) => t.name), ...visionTargets.map((t) => VISION_PREFIX + t.name)],
    };
    const copiedFiles: string[] = [];
    for (const sub of ['', 'vision_tower']) {
      for (const entry of await readdir(join(src, sub), { withFileTypes: true })) {
        if (!entry.isFile() || isWeightFile(entry.name)) continue;
        const rel = sub ? `${sub}/${entry.name}` : entry.name;
        if (rel === 'config.json') {
          const config = JSON.parse(await readFile(join(src, 'config.json'), 'utf8')) as Record<string, unknown>;
          await writeFile(join(dst, 'config.json'), JSON.stringify({ ...config, quantization_config: quantization }, null, 2) + '\n');
        } else {
          await copyFile(join(src, sub, entry.name), join(dst, sub, entry.name));
        }
        copiedFiles.push(rel);
      }
    }
    return {
      tensors: total,
      quantized: quantization.modules.length,
      bytes: llm.bytes + vision.bytes,
      shards: { llm: llm.shards, vision: vision.shards },
      copiedFiles,
    };
  } finally {
    await ckpt.close();
  }
}

/** Writes one tensor set's weights into `dir`: model.safetensors, or shards + index. */
async function writeSet(
  set: TensorSet,
  targets: Set<string>,
  dir: string,
  dtype: QuantDType,
  shardBytes: number,
  progress: (name: string, how: string) => void,
): Promise<{ bytes: number; shards: number }> {
  // Each source tensor becomes one or two (codes + scales) written tensors; they stay in one shard.
  const groups: { tensors: TensorToWrite[]; bytes: number }[] = [];
  for (const name of set.names()) {
    if (targets.has(name)) groups.push(quantizedTensors(set, name, dtype, progress));
    else groups.push(copiedTensor(set, name, progress));
  }
  const shards: { tensors: TensorToWrite[]; bytes: number }[] = [];
  for (const g of groups) {
    const last = shards[shards.length - 1];
    if (!last || (last.bytes + g.bytes > shardBytes && last.tensors.length)) shards.push({ tensors: [...g.tensors], bytes: g.bytes });
    else {
      last.tensors.push(...g.tensors);
      last.bytes += g.bytes;
    }
  }
  const bytes = shards.reduce((s, x) => s + x.bytes, 0);
  if (shards.length <= 1) {
    await writeSafetensors(join(dir, 'model.safetensors'), shards[0]?.tensors ?? []);
    return { bytes, shards: 1 };
  }
  const weightMap: Record<string, string> = {};
  for (let i = 0; i < shards.length; i++) {
    const file = `model-${String(i + 1).padStart(5, '0')}-of-${String(shards.length).padStart(5, '0')}.safetensors`;
    await writeSafetensors(join(dir, file), shards[i].tensors);
    for (const t of shards[i].tensors) weightMap[t.name] = file;
  }
  await writeFile(join(dir, 'model.safetensors.index.json'), JSON.stringify({ metadata: { total_size: bytes }, weight_map: weightMap }, null, 2) + '\n');
  return { bytes, shards: shards.length };
}

/** A tensor copied as stored, in chunks of 64 MiB. */
function copiedTensor(set: TensorSet, name: string, progress: (name: string, how: string) => void): { tensors: TensorToWrite[]; bytes: number } {
  const info = set.info(name);
  const bytes = info.end - info.begin;
  return {
    bytes,
    tensors: [
      {
        name,
        dtype: info.dtype,
        shape: [...info.shape],
        data: async function* () {
          const chunk = 64 << 20;
          for (let at = 0; at < bytes; at += chunk) yield await set.readRange(name, at, Math.min(chunk, bytes - at));
          progress(name, `copied (${info.dtype})`);
        },
      },
    ],
  };
}

/**
 * The codes and scales of a 2-D float tensor. The codes are written first, quantized in row blocks;
 * the scales of each block are kept (f16 bits, [N, G]) and written right after as `name.scales`.
 */
function quantizedTensors(set: TensorSet, name: string, dtype: QuantDType, progress: (name: string, how: string) => void): { tensors: TensorToWrite[]; bytes: number } {
  const [N, K] = set.shape(name);
  const layout = diskLayout(dtype, N, K);
  const G = layout.scales.shape[1];
  let pending: Uint16Array | null = null;
  return {
    bytes: layout.codes.shape[0] * layout.codes.shape[1] + N * G * 2,
    tensors: [
      {
        name,
        dtype: layout.codes.dtype,
        shape: layout.codes.shape,
        data: async function* () {
          const all = new Uint16Array(N * G);
          const rowsPerBlock = Math.max(1, Math.floor(CHUNK_ELEMENTS / K));
          for (let row = 0; row < N; row += rowsPerBlock) {
            const rows = Math.min(rowsPerBlock, N - row);
            const q = quantize(await set.readRowsF32(name, row, rows), rows, K, dtype);
            all.set(q.scales, row * G);
            yield codesToDisk(q);
          }
          pending = all;
        },
      },
      {
        name: name + SCALES_SUFFIX,
        dtype: 'F16',
        shape: layout.scales.shape,
        data: function* () {
          if (!pending) throw new Error(`quantize: the scales of '${name}' were asked for before its codes were written`);
          const out = pending;
          pending = null;
          yield out;
          progress(name, `${dtype} [${N}, ${K}]`);
        },
      },
    ],
  };
}
