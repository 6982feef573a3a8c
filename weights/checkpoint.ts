/**
 * A ConvLLaVA model folder, opened and validated completely before any weight is read:
 *
 *   <dir>/config.json                       LlavaConfig (LLaMA + llava fields)
 *   <dir>/generation_config.json            optional
 *   <dir>/model.safetensors                 LLM + projector, or shards listed in
 *   <dir>/model.safetensors.index.json        {"weight_map": {tensor: shard file}}
 *   <dir>/vision_tower/config.json          ConvNextConfig
 *   <dir>/vision_tower/preprocessor_config.json
 *   <dir>/vision_tower/model.safetensors    ConvNeXt weights (or shards + index, same rules)
 *
 * The expected tensor set and every shape come from the configs via weights/names.ts; a missing
 * tensor or wrong shape is an error naming it, extra tensors become `warnings`. Weights are then read
 * one tensor at a time (WeightSource), streamed in bounded chunks to the GPU.
 *
 * Storage is behind a ModelFolderReader (weights/folder.ts): `Checkpoint.open(dir)` reads a folder on
 * disk (Node; node:fs is imported only then), `Checkpoint.openFrom(reader)` anything else — a base URL
 * read with HTTP Range requests or a set of File objects in a browser.
 */
import type { Gpu } from '../runtime/gpu.js';
import type { Tensor } from '../runtime/tensor.js';
import {
  checkConfigsAgree,
  parseConvNextConfig,
  parseLlavaConfig,
  parsePreprocessorConfig,
  type ConvNextConfig,
  type LlavaConfig,
  type PreprocessorConfig,
} from './config.js';
import { bytesPerElement, isFloatDType, toF16Bits, toF32, type FloatDType } from './convert.js';
import { CheckpointError, named, quote, truncated, WeightsError } from './errors.js';
import { insideFolder, joinRel, type ModelFolderReader } from './folder.js';
import { findDuplicateKey, parseJsonChecked } from './json-keys.js';
import { expectedLlmTensors, expectedVisionTensors, type ExpectedTensor } from './names.js';
import { dequantize, type QuantDType, type QuantizedMatrix } from '../runtime/quant.js';
import { diskLayout, matrixFromDisk, parseQuantizationConfig, quantDTypeOfBits, SCALES_SUFFIX, VISION_PREFIX, type QuantizationConfig } from './quantized.js';
import { SafetensorsError, SafetensorsFile, type StDType, type TensorInfo } from './safetensors.js';

/** Read access to a set of named tensors (one or more safetensors files), by checkpoint name. */
export interface WeightSource {
  has(name: string): boolean;
  shape(name: string): number[];
  dtype(name: string): StDType;
  /** The tensor's values as f32 (F32 / F16 / BF16 are converted exactly). Holds one tensor in memory. */
  readF32(name: string): Promise<Float32Array>;
  /**
   * Uploads a tensor to a new GPU tensor of the checkpoint's shape, converting in bounded chunks
   * (F16 → f16 passes bits through; F32 / BF16 → f16 round to nearest even; anything → f32 exact).
   * JS memory stays at one chunk of staging, whatever the tensor's size.
   */
  toGpu(gpu: Gpu, name: string, dtype: 'f32' | 'f16'): Promise<Tensor>;
}

/** Elements converted and uploaded per step: 4 Mi (16 MiB of f32). Even, so f16 offsets stay even. */
export const CHUNK_ELEMENTS = 4 << 20;
/** Bytes written to the GPU queue between waits, so the driver's staging memory stays bounded too. */
const DRAIN_BYTES = 64 << 20;

/** The tensors of one or more safetensors files, each name in exactly one file. */
export class TensorSet implements WeightSource {
  private bytesSinceDrain = 0;
  /** Tensors stored quantized (weights/quantized.ts): their format and logical shape [N, K]. */
  private readonly quantized = new Map<string, { dtype: QuantDType; shape: number[] }>();

  constructor(
    /** The folder (or file) this set was loaded from, for messages. */
    readonly where: string,
    readonly files: SafetensorsFile[],
    private readonly byName: Map<string, SafetensorsFile>,
  ) {}

  /** One .safetensors file as a WeightSource. */
  static async openFile(path: string): Promise<TensorSet> {
    const file = await SafetensorsFile.open(path);
    return new TensorSet(path, [file], new Map([...file.tensors.keys()].map((n) => [n, file])));
  }

  /**
   * The weights in `dir`: `model.safetensors`, or the shards named by `model.safetensors.index.json`.
   * Index problems are hard errors naming the index file.
   */
  static async openFolder(dir: string, warnings: string[]): Promise<TensorSet> {
    const { NodeFolderReader } = await import('./node-folder.js');
    return TensorSet.openFolderFrom(NodeFolderReader.at(dir), '', warnings);
  }

  /** The same as openFolder, for the sub-folder `subdir` ('' for the root) of any ModelFolderReader. */
  static async openFolderFrom(reader: ModelFolderReader, subdir: string, warnings: string[]): Promise<TensorSet> {
    const dir = reader.nameOf(subdir);
    const single = joinRel(subdir, 'model.safetensors');
    const index = joinRel(subdir, 'model.safetensors.index.json');
    const [hasSingle, hasIndex] = await Promise.all([exists(reader, single), exists(reader, index)]);
    if (hasIndex) {
      if (hasSingle) warnings.push(`${dir}: both model.safetensors and an index exist; using the index`);
      return openSharded(reader, subdir, index, warnings);
    }
    if (hasSingle) {
      const file = await openSafetensors(reader, single);
      return new TensorSet(file.path, [file], new Map([...file.tensors.keys()].map((n) => [n, file])));
    }
    const pickle =
      (await exists(reader, joinRel(subdir, 'pytorch_model.bin'))) || (await exists(reader, joinRel(subdir, 'pytorch_model.bin.index.json')));
    throw new CheckpointError(
      pickle
        ? `${dir}: has PyTorch pickle weights (pytorch_model.bin), which convllava does not read (pickles can run code); convert them to safetensors`
        : `${dir}: no model.safetensors or model.safetensors.index.json`,
      dir,
    );
  }

  names(): string[] {
    return [...this.byName.keys()];
  }

  info(name: string): TensorInfo & { file: string } {
    const file = this.byName.get(name);
    if (!file) throw new CheckpointError(`no tensor ${named(name)} in ${this.where}`, this.where, name);
    return { ...file.tensors.get(name)!, file: file.path };
  }

  has(name: string): boolean {
    return this.byName.has(name);
  }

  /** The logical shape: [N, K] for a quantized weight (its codes are stored as [N, bytes per row]). */
  shape(name: string): number[] {
    const q = this.quantized.get(name);
    return q ? [...q.shape] : [...this.info(name).shape];
  }

  /** Marks `name` as stored quantized (Checkpoint.open does, after checking it against the config). */
  markQuantized(name: string, dtype: QuantDType, shape: readonly number[]): void {
    this.quantized.set(name, { dtype, shape: [...shape] });
  }

  /** The format `name` is stored in on disk, when it is quantized. */
  quantizedAs(name: string): QuantDType | undefined {
    return this.quantized.get(name)?.dtype;
  }

  /** A quantized tensor's codes and scales as stored (no requantization). */
  async readQuantized(name: string): Promise<QuantizedMatrix> {
    const q = this.quantized.get(name);
    const info = this.info(name);
    if (!q) throw new CheckpointError(`${info.file}: tensor ${named(name)} is not stored quantized`, info.file, name);
    const scalesInfo = this.info(name + SCALES_SUFFIX);
    const codes = await this.readBytes(name);
    const scaleBytes = await this.byName.get(name + SCALES_SUFFIX)!.readBytes(name + SCALES_SUFFIX, alignedBytes(scalesInfo.end - scalesInfo.begin));
    const scales = new Uint16Array(scaleBytes.buffer, scaleBytes.byteOffset, scaleBytes.byteLength / 2);
    return matrixFromDisk(q.dtype, q.shape[0], q.shape[1], codes, scales);
  }

  /**
   * Rows [row0, row0 + rows) of a 2-D float tensor as f32 (the quantize command streams tensors in
   * row blocks this way, so a 7B embedding is never in memory whole).
   */
  async readRowsF32(name: string, row0: number, rows: number): Promise<Float32Array> {
    const { dtype, file, shape } = this.floatTensor(name);
    const K = shape.slice(1).reduce((a, b) => a * b, 1);
    const size = bytesPerElement(dtype);
    const bytes = await file.readRange(name, row0 * K * size, rows * K * size, alignedBytes(rows * K * size));
    return toF32(dtype, bytes, new Float32Array(rows * K));
  }

  dtype(name: string): StDType {
    return this.info(name).dtype;
  }

  /** `length` raw stored bytes of a tensor from byte `offset` (chunked copies). */
  readRange(name: string, offset: number, length: number): Promise<Uint8Array> {
    this.info(name);
    return this.byName.get(name)!.readRange(name, offset, length);
  }

  /** The raw stored bytes of a tensor. */
  readBytes(name: string): Promise<Uint8Array> {
    this.info(name);
    return this.byName.get(name)!.readBytes(name);
  }

  async readF32(name: string): Promise<Float32Array> {
    if (this.quantized.has(name)) return dequantize(await this.readQuantized(name)); // the values a quantized model computes with
    const { dtype, numel, file } = this.floatTensor(name);
    const bytes = await file.readBytes(name, alignedBytes(numel * bytesPerElement(dtype)));
    return toF32(dtype, bytes, new Float32Array(numel));
  }

  /** See WeightSource.toGpu. `chunkElements` (even) overrides the staging size (tests use tiny chunks). */
  async toGpu(gpu: Gpu, name: string, dtype: 'f32' | 'f16', options: { chunkElements?: number } = {}): Promise<Tensor> {
    const q = this.quantized.get(name);
    if (q) {
      const file = this.info(name).file;
      throw new CheckpointError(`${file}: tensor ${named(name)} is stored quantized (${q.dtype}); it loads only as ${q.dtype} (dtype '${q.dtype}'), not ${dtype}`, file, name);
    }
    const { dtype: src, numel, file, shape } = this.floatTensor(name);
    const maxBuffer = gpu.limits.maxBufferSize;
    const gpuBytes = dtype === 'f16' ? Math.ceil(numel / 2) * 4 : numel * 4;
    if (gpuBytes > maxBuffer) {
      throw new CheckpointError(
        `tensor ${named(name)} [${shape}] needs ${gpuBytes} bytes as ${dtype} but this adapter's maxBufferSize is ${maxBuffer}` +
          (dtype === 'f32' ? '; load the weights as f16' : ''),
        file.path,
        name,
      );
    }
    const tensor = gpu.weight(shape, dtype, name);
    const chunkElements = options.chunkElements ?? CHUNK_ELEMENTS;
    if (chunkElements < 2 || chunkElements % 2) throw new Error(`toGpu: chunkElements must be even and ≥ 2, got ${chunkElements}`);
    const chunk = Math.max(1, Math.min(numel, chunkElements));
    const srcBytes = bytesPerElement(src);
    // Two staging buffers: the next chunk is read from disk while this one is converted.
    const staging = [alignedBytes(chunk * srcBytes), alignedBytes(Math.min(numel, 2 * chunk) > chunk ? chunk * srcBytes : 0)];
    const f32 = new Float32Array(dtype === 'f32' ? chunk : 0);
    const f16 = new Uint16Array(dtype === 'f16' ? chunk : 0);
    const readChunk = (k: number) => {
      const start = k * chunk;
      const count = Math.min(chunk, numel - start);
      return file.readRange(name, start * srcBytes, count * srcBytes, staging[k % 2]);
    };
    const chunks = Math.ceil(numel / chunk);
    let pending = chunks > 0 ? readChunk(0) : null;
    try {
      for (let k = 0; k < chunks; k++) {
        const bytes = await pending!;
        pending = k + 1 < chunks ? readChunk(k + 1) : null;
        const count = bytes.byteLength / srcBytes;
        const values = dtype === 'f32' ? toF32(src, bytes, f32.subarray(0, count)) : toF16Bits(src, bytes, f16.subarray(0, count));
        gpu.write(tensor, values, k * chunk); // copies `values` now, so the staging arrays are reused
        this.bytesSinceDrain += values.byteLength;
        if (this.bytesSinceDrain >= DRAIN_BYTES) await this.drain(gpu);
      }
    } catch (e) {
      pending?.catch(() => {}); // the read in flight is abandoned
      tensor.dispose();
      throw e;
    }
    return tensor;
  }

  /**
   * Counts the NaN and ±Inf values of a float tensor, reading it in CHUNK_ELEMENTS pieces (bounded
   * memory) and testing the stored bits (an all-ones exponent), so it is exact for every dtype.
   */
  async scanValues(name: string): Promise<{ nan: number; inf: number; first: number }> {
    const { dtype, numel, file } = this.floatTensor(name);
    const size = bytesPerElement(dtype);
    const [exponent, mantissa] = dtype === 'F32' ? [0x7f800000, 0x007fffff] : dtype === 'F16' ? [0x7c00, 0x03ff] : [0x7f80, 0x007f];
    const staging = alignedBytes(Math.min(numel, CHUNK_ELEMENTS) * size);
    let nan = 0;
    let inf = 0;
    let first = -1;
    for (let start = 0; start < numel; start += CHUNK_ELEMENTS) {
      const count = Math.min(CHUNK_ELEMENTS, numel - start);
      const bytes = await file.readRange(name, start * size, count * size, staging);
      const words = size === 4 ? new Uint32Array(bytes.buffer, bytes.byteOffset, count) : new Uint16Array(bytes.buffer, bytes.byteOffset, count);
      for (let i = 0; i < count; i++) {
        const w = words[i];
        if ((w & exponent) !== exponent) continue;
        if (w & mantissa) nan++;
        else inf++;
        if (first < 0) first = start + i;
      }
    }
    return { nan, inf, first };
  }

  /** Lets the queue consume pending writes, so their staging copies are freed before we queue more. */
  private async drain(gpu: Gpu): Promise<void> {
    this.bytesSinceDrain = 0;
    gpu.device.queue.submit([]);
    await gpu.device.queue.onSubmittedWorkDone();
  }

  private floatTensor(name: string): { dtype: FloatDType; numel: number; file: SafetensorsFile; shape: number[] } {
    const info = this.info(name);
    const file = this.byName.get(name)!;
    if (!isFloatDType(info.dtype)) {
      throw new CheckpointError(`${info.file}: tensor ${named(name)} is ${info.dtype}; only F32, F16 and BF16 weights can be loaded`, info.file, name);
    }
    const numel = info.shape.reduce((a, b) => a * b, 1);
    return { dtype: info.dtype, numel, file, shape: [...info.shape] };
  }

  async close(): Promise<void> {
    await Promise.all(this.files.map((f) => f.close()));
  }
}

export class Checkpoint {
  private constructor(
    readonly dir: string,
    readonly config: LlavaConfig,
    readonly generationConfig: Record<string, unknown> | undefined,
    readonly visionConfig: ConvNextConfig,
    readonly preprocessorConfig: PreprocessorConfig,
    /** Root files: LLaMA decoder + projector (model.embed_tokens.weight, model.layers.N.…, model.mm_projector.…). */
    readonly llm: TensorSet,
    /** vision_tower/ files: ConvNeXt (embeddings.…, encoder.stages.S.…). */
    readonly vision: TensorSet,
    /** Non-fatal findings: extra tensors, unindexed tensors, index size mismatches. */
    readonly warnings: string[],
    /** config.json's quantization_config (a folder written by `convllava quantize`), if any. */
    readonly quantization?: QuantizationConfig,
  ) {}

  /** The format of a quantized folder (q8 / q4), undefined for a float one. */
  get quantizedAs(): QuantDType | undefined {
    return this.quantization ? quantDTypeOfBits(this.quantization.bits) : undefined;
  }

  /** Whether the folder stores the vision tower's linears quantized. */
  get visionQuantized(): boolean {
    return !!this.quantization?.modules.some((m) => m.startsWith(VISION_PREFIX));
  }

  /** A model folder on disk (Node). */
  static async open(dir: string): Promise<Checkpoint> {
    const { NodeFolderReader } = await import('./node-folder.js');
    const reader = NodeFolderReader.at(dir);
    const kind = await reader.kind();
    if (kind === 'missing') throw new CheckpointError(`${dir}: no such folder`, dir);
    if (kind !== 'folder') throw new CheckpointError(`${dir}: expected a model folder (config.json, weights, vision_tower/)`, dir);
    return Checkpoint.openFrom(reader);
  }

  /** A model folder behind any reader: UrlFolderReader, BlobFolderReader (browsers), NodeFolderReader. */
  static async openFrom(reader: ModelFolderReader): Promise<Checkpoint> {
    const dir = reader.where;
    const at = (rel: string) => reader.nameOf(rel);
    const rawConfig = await readJson(reader, 'config.json');
    const config = parseLlavaConfig(rawConfig, at('config.json'));
    let quantization: QuantizationConfig | undefined;
    try {
      quantization = parseQuantizationConfig(rawConfig, at('config.json'));
    } catch (e) {
      throw new CheckpointError((e as Error).message, at('config.json'));
    }
    const generationPath = 'generation_config.json';
    const generationConfig = (await exists(reader, generationPath)) ? ((await readJson(reader, generationPath)) as Record<string, unknown>) : undefined;
    const visionConfigPath = 'vision_tower/config.json';
    const visionConfig = parseConvNextConfig(await readJson(reader, visionConfigPath), at(visionConfigPath), config);
    const preprocessorPath = 'vision_tower/preprocessor_config.json';
    const preprocessorConfig = parsePreprocessorConfig(await readJson(reader, preprocessorPath), at(preprocessorPath));
    checkConfigsAgree(config, visionConfig, preprocessorConfig, dir);

    const warnings: string[] = [];
    const opened: TensorSet[] = [];
    try {
      const llm = await TensorSet.openFolderFrom(reader, '', warnings);
      opened.push(llm);
      const vision = await TensorSet.openFolderFrom(reader, 'vision_tower', warnings);
      opened.push(vision);
      const llmExpected = expectedLlmTensors(config);
      const visionExpected = expectedVisionTensors(visionConfig);
      if (quantization) markQuantized(quantization, at('config.json'), llm, llmExpected, vision, visionExpected);
      checkTensors(llm, llmExpected, warnings);
      checkTensors(vision, visionExpected, warnings);
      return new Checkpoint(dir, config, generationConfig, visionConfig, preprocessorConfig, llm, vision, warnings, quantization);
    } catch (e) {
      await Promise.all(opened.map((s) => s.close()));
      throw e;
    }
  }

  async close(): Promise<void> {
    await Promise.all([this.llm.close(), this.vision.close()]);
  }
}

/**
 * Marks the tensors quantization_config.modules lists as quantized, after checking each is a 2-D
 * tensor the config expects, stored as weights/quantized.ts says: codes `name` (I8 / U8, [N, bytes per
 * row]) and scales `name.scales` (F16 [N, ⌈K/32⌉]). Every problem is an error naming the tensor.
 */
function markQuantized(
  q: QuantizationConfig,
  configFile: string,
  llm: TensorSet,
  llmExpected: ExpectedTensor[],
  vision: TensorSet,
  visionExpected: ExpectedTensor[],
): void {
  const dtype = quantDTypeOfBits(q.bits);
  const llmShapes = new Map(llmExpected.map((e) => [e.name, e.shape]));
  const visionShapes = new Map(visionExpected.map((e) => [e.name, e.shape]));
  for (const module of q.modules) {
    const inVision = module.startsWith(VISION_PREFIX);
    const name = inVision ? module.slice(VISION_PREFIX.length) : module;
    const [set, shapes] = inVision ? [vision, visionShapes] : [llm, llmShapes];
    const shape = shapes.get(name);
    if (!shape || shape.length !== 2) {
      throw new CheckpointError(`${configFile}: quantization_config.modules lists ${named(module)}, which is not a 2-D weight this config expects`, configFile, name);
    }
    const want = diskLayout(dtype, shape[0], shape[1]);
    for (const [tensor, w] of [[name, want.codes], [name + SCALES_SUFFIX, want.scales]] as const) {
      if (!set.has(tensor)) {
        throw new CheckpointError(`${set.where}: tensor ${named(tensor)} is missing (quantized ${dtype} weight ${named(name)} [${shape}] needs its ${tensor === name ? 'codes' : 'scales'})`, set.where, tensor);
      }
      const info = set.info(tensor);
      if (info.dtype !== w.dtype || !sameShape(info.shape, w.shape)) {
        throw new CheckpointError(
          `${info.file}: tensor ${named(tensor)} is ${info.dtype} [${info.shape}] but a ${dtype} weight [${shape}] stores ${tensor === name ? 'its codes' : 'its scales'} as ${w.dtype} [${w.shape}]`,
          info.file,
          tensor,
        );
      }
    }
    set.markQuantized(name, dtype, shape);
  }
}

/**
 * Compares a tensor set with what the configs imply. Missing tensors and wrong shapes / dtypes are
 * errors naming them (up to a few at once); tensors nobody expects become warnings.
 */
export function checkTensors(set: TensorSet, expected: ExpectedTensor[], warnings: string[]): void {
  const missing: string[] = [];
  const problems: WeightsError[] = [];
  const known = new Set<string>();
  for (const e of expected) {
    known.add(e.name);
    if (!set.has(e.name)) {
      if (!e.optional) missing.push(e.name);
      continue;
    }
    if (set.quantizedAs(e.name)) {
      known.add(e.name + SCALES_SUFFIX); // codes and scales checked by markQuantized
      continue;
    }
    const info = set.info(e.name);
    const shapes = [e.shape, ...(e.alternativeShapes ?? [])];
    if (!shapes.some((s) => sameShape(s, info.shape))) {
      problems.push(
        new CheckpointError(`${info.file}: tensor '${e.name}' has shape [${info.shape}] but the config implies [${e.shape}]`, info.file, e.name),
      );
    } else if (!isFloatDType(info.dtype)) {
      problems.push(new CheckpointError(`${info.file}: tensor '${e.name}' is ${info.dtype}; weights must be F32, F16 or BF16`, info.file, e.name));
    }
  }
  if (missing.length) {
    const list = missing.slice(0, 5).map((n) => `'${n}'`).join(', ') + (missing.length > 5 ? `, … (${missing.length} in all)` : '');
    throw new CheckpointError(
      `${set.where}: missing tensor${missing.length > 1 ? 's' : ''} ${list} (required by the config; no weights are made up)`,
      set.where,
      missing[0],
    );
  }
  if (problems.length) {
    if (problems.length === 1) throw problems[0];
    throw new CheckpointError(
      `${problems.length} tensors do not match the config; first: ${problems[0].message}`,
      problems[0].file,
      problems[0].tensor,
    );
  }
  const extra = set.names().filter((n) => !known.has(n));
  if (extra.length) {
    const list = extra.slice(0, 5).map((n) => `'${n}'`).join(', ') + (extra.length > 5 ? `, … (${extra.length} in all)` : '');
    warnings.push(`${set.where}: ${extra.length} unexpected tensor${extra.length > 1 ? 's' : ''} (ignored): ${list}`);
  }
}

/** Opens the shards named by an index file and checks the index against their headers. */
async function openSharded(reader: ModelFolderReader, subdir: string, indexRel: string, warnings: string[]): Promise<TensorSet> {
  const dir = reader.nameOf(subdir);
  const indexPath = reader.nameOf(indexRel);
  const fail = (message: string, tensor?: string): never => {
    throw new CheckpointError(`${indexPath}: ${message}`, indexPath, tensor);
  };
  const text = await readText(reader, indexRel);
  let index: unknown;
  try {
    index = parseJsonChecked(text);
  } catch (e) {
    return fail((e as Error).message);
  }
  const duplicate = findDuplicateKey(text);
  if (duplicate) return fail(`lists ${named(duplicate.key)} twice`, duplicate.key);
  const weightMap = (index as { weight_map?: unknown } | null)?.weight_map;
  if (typeof weightMap !== 'object' || weightMap === null || Array.isArray(weightMap)) {
    return fail(`needs a "weight_map" object {tensor name: shard file}`);
  }

  // Every shard path must stay inside the folder and exist. Shards are keyed by their normalised
  // path, so './a' and 'sub/../a' are one shard (not "a tensor in two shards").
  const shardOf = new Map<string, string>(); // tensor → normalised shard path (relative to `subdir`)
  for (const [tensor, shard] of Object.entries(weightMap as Record<string, unknown>)) {
    if (typeof shard !== 'string' || shard === '') return fail(`tensor ${named(tensor)} maps to ${quote(shard)}, not a file name`, tensor);
    const rel = insideFolder(shard);
    if (rel === null) return fail(`shard path ${named(shard)} (for ${named(tensor)}) leaves the model folder`, tensor);
    shardOf.set(tensor, rel);
  }
  const files = new Map<string, SafetensorsFile>(); // normalised shard path → file
  try {
    for (const shard of new Set(shardOf.values())) {
      const rel = joinRel(subdir, shard);
      if (!(await exists(reader, rel))) fail(`shard ${named(shard)} is missing (${reader.nameOf(rel)} does not exist)`);
      files.set(shard, await openSafetensors(reader, rel));
    }

    // Each tensor lives in exactly one shard, and the index points at that shard.
    const holder = new Map<string, string>();
    for (const [shard, file] of files) {
      for (const name of file.tensors.keys()) {
        const other = holder.get(name);
        if (other !== undefined) fail(`tensor ${named(name)} is in two shards: ${named(other)} and ${named(shard)}`, name);
        holder.set(name, shard);
      }
    }
    const byName = new Map<string, SafetensorsFile>();
    for (const [tensor, shard] of shardOf) {
      const actual = holder.get(tensor);
      if (actual === undefined) fail(`tensor ${named(tensor)} is listed in shard ${named(shard)} but no shard contains it`, tensor);
      if (actual !== shard) fail(`tensor ${named(tensor)} is listed in shard ${named(shard)} but is in ${named(actual!)}`, tensor);
      byName.set(tensor, files.get(shard)!);
    }
    const unlisted = [...holder.keys()].filter((n) => !byName.has(n));
    if (unlisted.length) {
      warnings.push(`${indexPath}: ${unlisted.length} tensor(s) in the shards are not in the index (ignored): ${unlisted.slice(0, 5).join(', ')}`);
    }
    const totalSize = (index as { metadata?: { total_size?: unknown } }).metadata?.total_size;
    if (typeof totalSize === 'number') {
      let sum = 0;
      for (const [name, file] of byName) sum += file.tensors.get(name)!.end - file.tensors.get(name)!.begin;
      if (sum !== totalSize) warnings.push(`${indexPath}: metadata.total_size is ${totalSize} but the indexed tensors hold ${sum} bytes`);
    }
    return new TensorSet(dir, [...files.values()], byName);
  } catch (e) {
    await Promise.all([...files.values()].map((f) => f.close()));
    throw e;
  }
}

/** Opens and validates one safetensors file of a folder (SafetensorsFile.open's errors, for any reader). */
async function openSafetensors(reader: ModelFolderReader, relPath: string): Promise<SafetensorsFile> {
  let source;
  try {
    source = await reader.open(relPath);
  } catch (e) {
    const path = reader.nameOf(relPath);
    if ((e as { code?: string }).code === 'CONVLLAVA_REFUSED') throw new SafetensorsError((e as Error).message, path);
    throw new SafetensorsError(`${path}: cannot open (${truncated((e as Error).message)})`, path);
  }
  return SafetensorsFile.fromSource(source);
}

async function readJson(reader: ModelFolderReader, relPath: string): Promise<unknown> {
  const path = reader.nameOf(relPath);
  const text = await readText(reader, relPath);
  try {
    return parseJsonChecked(text);
  } catch (e) {
    throw new CheckpointError(`${path}: ${(e as Error).message}`, path);
  }
}

/** A reader refusal (code CONVLLAVA_REFUSED: outside the folder, not a regular file, over a cap) as a CheckpointError. */
function asCheckpointError(e: unknown, path: string): unknown {
  const { code, message } = e as { code?: string; message?: string };
  if (code === 'CONVLLAVA_REFUSED') return new CheckpointError(message ?? String(e), path);
  if (code && code !== 'ENOENT') return new CheckpointError(`${path}: cannot read (${truncated(message ?? String(e))})`, path);
  return null;
}

async function readText(reader: ModelFolderReader, relPath: string): Promise<string> {
  const path = reader.nameOf(relPath);
  try {
    return await reader.readText(relPath);
  } catch (e) {
    throw (
      asCheckpointError(e, path) ??
      new CheckpointError(`${path}: missing (a ConvLLaVA folder needs config.json and vision_tower/{config,preprocessor_config}.json)`, path)
    );
  }
}

async function exists(reader: ModelFolderReader, relPath: string): Promise<boolean> {
  try {
    return await reader.exists(relPath);
  } catch (e) {
    throw asCheckpointError(e, reader.nameOf(relPath)) ?? e;
  }
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

/** A byte array whose start is 4-byte aligned (new buffer), so f32 / u16 views over it are legal. */
function alignedBytes(n: number): Uint8Array {
  return new Uint8Array(new ArrayBuffer(Math.ceil(n / 4) * 4), 0, n);
}
