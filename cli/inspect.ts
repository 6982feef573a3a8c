/**
 * `convllava inspect PATH [--json] [--no-gpu]`
 *
 * PATH is a .safetensors file (validated and listed) or a ConvLLaVA model folder (validated
 * completely — configs, index, shards, every expected tensor and shape — then summarised: vision
 * widths/depths, resolution and visual tokens, LLM size, parameters per part, GPU memory for the
 * weights at f16/f32, and whether this machine's WebGPU adapter can hold them).
 * Exit 0 when valid; 1 with one message (no stack trace) when not; 2 on a usage error.
 */
import { quantBytes, type QuantDType } from '../runtime/quant.js';
import { stat } from 'node:fs/promises';
import { totalmem } from 'node:os';
import { totalStride, visualTokens } from '../weights/config.js';
import { Checkpoint, TensorSet } from '../weights/checkpoint.js';
import { named, WeightsError } from '../weights/errors.js';
import { SCALES_SUFFIX } from '../weights/quantized.js';
import { isFloatDType } from '../weights/convert.js';
import { expectedLlmTensors, expectedVisionTensors, type ModelPart } from '../weights/names.js';
import type { TensorInfo } from '../weights/safetensors.js';

const USAGE = `usage: convllava inspect PATH [--json] [--no-gpu] [--check-values]

  PATH            a .safetensors file, or a ConvLLaVA model folder (config.json, weights, vision_tower/)
  --json          print one JSON object (machine-readable) instead of text
  --no-gpu        do not open the WebGPU adapter (skips the "does it fit" check)
  --check-values  also read every float tensor and refuse NaN / ±Inf values (reads all the weights)`;

type Part = ModelPart | 'other';

interface TensorRow {
  name: string;
  dtype: string;
  shape: number[];
  bytes: number;
  params: number;
  file: string;
  part?: Part;
  /** Stored quantized (a folder written by `convllava quantize`). */
  quantized?: QuantDType;
}

interface AdapterReport {
  available: boolean;
  description?: string;
  maxBufferSize?: number;
  maxStorageBufferBindingSize?: number;
  /** For weights stored as f16 and as f32: can this adapter hold them? */
  fits?: Record<'f16' | 'f32', { verdict: 'yes' | 'no' | 'probably'; reason: string }>;
  error?: string;
}

export async function run(argv: string[]): Promise<number> {
  const flags = new Set(argv.filter((a) => a.startsWith('--')));
  const paths = argv.filter((a) => !a.startsWith('--'));
  const unknown = [...flags].filter((f) => !['--json', '--no-gpu', '--help', '--check-values'].includes(f));
  if (flags.has('--help')) {
    console.log(USAGE);
    return 0;
  }
  if (paths.length !== 1 || unknown.length) {
    console.error(unknown.length ? `convllava inspect: unknown option ${unknown[0]}\n\n${USAGE}` : USAGE);
    return 2;
  }
  const [path] = paths;
  const json = flags.has('--json');
  const useGpu = !flags.has('--no-gpu');
  try {
    const isDir = (await stat(path).catch(() => null))?.isDirectory() ?? false;
    const report = isDir ? await inspectFolder(path, useGpu, flags.has('--check-values')) : await inspectFile(path, flags.has('--check-values'));
    console.log(json ? JSON.stringify(report, null, 2) : report.text);
    return 0;
  } catch (e) {
    if (!(e instanceof WeightsError)) throw e; // a bug, not a bad file: let main print it
    if (json) console.log(JSON.stringify({ path, valid: false, error: e.message, file: e.file, tensor: e.tensor ?? null }, null, 2));
    else console.error(`convllava inspect: INVALID — ${e.message}`);
    return 1;
  }
}

/** Reads every float tensor; throws a WeightsError naming the tensors that hold NaN or ±Inf. */
async function checkFiniteValues(sets: TensorSet[]): Promise<void> {
  const bad: { name: string; file: string; nan: number; inf: number; first: number }[] = [];
  for (const set of sets) {
    for (const name of set.names()) {
      if (!isFloatDType(set.dtype(name))) continue;
      const { nan, inf, first } = await set.scanValues(name);
      if (nan || inf) bad.push({ name, file: set.info(name).file, nan, inf, first });
    }
  }
  if (!bad.length) return;
  const list = bad
    .slice(0, 5)
    .map((b) => `${named(b.name)} (${b.nan} NaN, ${b.inf} ±Inf; first at element ${b.first})`)
    .join(', ');
  throw new WeightsError(
    `${bad.length} tensor${bad.length > 1 ? 's hold' : ' holds'} non-finite values: ${list}${bad.length > 5 ? ', …' : ''} (in ${bad[0].file})`,
    bad[0].file,
    bad[0].name,
  );
}

// ---- a single .safetensors file ----------------------------------------------------------------

async function inspectFile(path: string, checkValues: boolean) {
  const set = await TensorSet.openFile(path);
  try {
    if (checkValues) await checkFiniteValues([set]);
    const file = set.files[0];
    const rows = [...file.tensors.values()].sort((a, b) => a.begin - b.begin).map((t) => row(t, path));
    const totals = totalsOf(rows);
    const lines = [
      `${path}: valid safetensors file`,
      `  ${rows.length} tensors, ${totals.params.toLocaleString('en-US')} elements, ${human(totals.bytes)} of data`,
      `  by dtype: ${Object.entries(totals.byDtype).map(([d, v]) => `${d} ${v.count} (${human(v.bytes)})`).join(', ') || '—'}`,
      `  metadata: ${JSON.stringify(file.metadata)}`,
      '',
      tensorTable(rows, false),
    ];
    return { kind: 'file', path, valid: true, metadata: file.metadata, totals, tensors: rows, text: lines.join('\n') };
  } finally {
    await set.close();
  }
}

// ---- a model folder ---------------------------------------------------------------------------

async function inspectFolder(dir: string, useGpu: boolean, checkValues: boolean) {
  const ckpt = await Checkpoint.open(dir);
  try {
    if (checkValues) await checkFiniteValues([ckpt.llm, ckpt.vision]);
    const { config: c, visionConfig: v } = ckpt;
    const partOf = new Map<string, Part>();
    for (const t of [...expectedLlmTensors(c), ...expectedVisionTensors(v)]) partOf.set(t.name, t.part);
    const rows: TensorRow[] = [];
    for (const set of [ckpt.llm, ckpt.vision]) {
      for (const name of set.names()) {
        const info = set.info(name);
        if (name.endsWith(SCALES_SUFFIX) && set.quantizedAs(name.slice(0, -SCALES_SUFFIX.length))) continue; // folded into its weight's row
        const q = set.quantizedAs(name);
        if (q) {
          // A quantized weight (weights/quantized.ts): one row, its logical shape, codes + scales bytes.
          const scales = set.info(name + SCALES_SUFFIX);
          const shape = set.shape(name);
          rows.push({ ...row(info, info.file), dtype: q, shape, params: shape[0] * shape[1], bytes: info.end - info.begin + scales.end - scales.begin, part: partOf.get(name) ?? 'other', quantized: q });
          continue;
        }
        rows.push({ ...row(info, info.file), part: partOf.get(name) ?? 'other' });
      }
    }
    const order: Part[] = ['vision', 'projector', 'llm', 'other'];
    rows.sort((a, b) => order.indexOf(a.part!) - order.indexOf(b.part!) || a.name.localeCompare(b.name, 'en', { numeric: true }));
    const params: Record<Part, number> = { vision: 0, projector: 0, llm: 0, other: 0 };
    for (const r of rows) params[r.part!] += r.params;
    const used = rows.filter((r) => r.part !== 'other');
    const gpuBytes = {
      f16: used.reduce((s, r) => s + Math.ceil(r.params / 2) * 4, 0),
      f32: used.reduce((s, r) => s + r.params * 4, 0),
    };
    // --dtype q8 / q4: the 2-D tensors of the decoder and projector quantized (runtime/quant.ts), the rest f16.
    const quantized = (dtype: QuantDType, part?: Part) =>
      used
        .filter((r) => !part || r.part === part)
        .reduce((s, r) => s + (r.shape.length === 2 && r.part !== 'vision' ? quantBytes(dtype, r.shape) : Math.ceil(r.params / 2) * 4), 0);
    const quantMemory = {
      q8: { total: quantized('q8'), llm: quantized('q8', 'llm') },
      q4: { total: quantized('q4'), llm: quantized('q4', 'llm') },
    };
    // A quantized folder loads only in its own format: its weights as stored (quantized ones in the
    // GPU layout of runtime/quant.ts, the others f16), per part.
    const storedAs = (part?: Part) =>
      used.filter((r) => !part || r.part === part).reduce((s, r) => s + (r.quantized ? quantBytes(r.quantized, r.shape) : Math.ceil(r.params / 2) * 4), 0);
    const asStored = ckpt.quantization
      ? {
          dtype: ckpt.quantizedAs!,
          total: storedAs(),
          vision: storedAs('vision'),
          projector: storedAs('projector'),
          llm: storedAs('llm'),
          quantizedTensors: rows.filter((r) => r.quantized).length,
          visionQuantized: ckpt.visionQuantized,
        }
      : null;
    const largest = used.reduce((a, b) => (b.params > a.params ? b : a), used[0]);
    const adapter = useGpu ? await probeAdapter(gpuBytes, largest.params) : { available: false, error: 'not checked (--no-gpu)' };

    const stride = totalStride(v);
    const side = c.mm_vision_resolution / stride;
    const tokens = visualTokens(c, v);
    // Activations by precision (--precision): the KV cache at the model's context, and the tower's
    // largest activation, stage 1's MLP hidden ((R/patch)² × 4·C1) at the model's resolution.
    const kvPerPosition = 2 * c.num_hidden_layers * c.num_key_value_heads * c.head_dim; // keys + values, elements
    const side1 = c.mm_vision_resolution / v.patch_size;
    const mlp1 = [side1, side1, 4 * v.hidden_sizes[0]];
    const mlp1Elements = mlp1[0] * mlp1[1] * mlp1[2];
    const activationMemory = {
      kvCachePositions: c.max_position_embeddings,
      kvCache: { f32: kvPerPosition * c.max_position_embeddings * 4, f16: kvPerPosition * c.max_position_embeddings * 2 },
      kvCachePerPosition: { f32: kvPerPosition * 4, f16: kvPerPosition * 2 },
      largestVisionActivation: { what: 'stage 1 MLP hidden', shape: mlp1, f32: mlp1Elements * 4, f16: mlp1Elements * 2 },
    };
    const summary = {
      vision: {
        stages: v.num_stages,
        widths: v.hidden_sizes,
        depths: v.depths,
        fifthStageFrom: v.num_stages === 5 ? (v.five_stage_from_llava ? 'config.json (vision_add_five_stage)' : 'vision_tower/config.json') : null,
        resolution: c.mm_vision_resolution,
        stride,
        visualTokens: tokens,
      },
      projector: { type: c.mm_projector_type, in: c.mm_hidden_size, out: c.hidden_size },
      llm: {
        layers: c.num_hidden_layers,
        hidden: c.hidden_size,
        heads: c.num_attention_heads,
        kvHeads: c.num_key_value_heads,
        headDim: c.head_dim,
        intermediate: c.intermediate_size,
        vocab: c.vocab_size,
        tiedEmbeddings: c.tie_word_embeddings,
        ropeTheta: c.rope_theta,
        maxPositions: c.max_position_embeddings,
      },
      params: { ...params, total: params.vision + params.projector + params.llm },
      storedBytes: rows.reduce((s, r) => s + r.bytes, 0),
      files: [...ckpt.llm.files, ...ckpt.vision.files].map((f) => f.path),
      quantization: ckpt.quantization ? { ...ckpt.quantization, modules: ckpt.quantization.modules.length } : null,
      activationMemory,
      gpuMemory: { ...gpuBytes, ...quantMemory, asStored, largestTensor: { name: largest.name, shape: largest.shape, f16: Math.ceil(largest.params / 2) * 4, f32: largest.params * 4 } },
      adapter,
    };

    const dtypes = [...new Set(rows.map((r) => r.dtype))].join('/');
    const fits = adapter.fits;
    const lines = [
      `${dir}: valid ConvLLaVA model folder`,
      `  ${summary.files.length} weight files, ${rows.length} tensors (${dtypes}), ${human(summary.storedBytes)}`,
      '',
      'Vision tower (ConvNeXt)',
      `  stages   ${v.num_stages}${summary.vision.fifthStageFrom ? ` (fifth stage from ${summary.vision.fifthStageFrom})` : ''}`,
      `  widths   ${v.hidden_sizes.join(' ')}`,
      `  depths   ${v.depths.join(' ')}`,
      `  input    ${c.mm_vision_resolution}×${c.mm_vision_resolution} px, stride ${stride} → ${side}×${side} = ${tokens} visual tokens`,
      `Projector  ${c.mm_projector_type}: ${c.mm_hidden_size} → ${c.hidden_size}`,
      'LLM (LLaMA)',
      `  ${c.num_hidden_layers} layers, hidden ${c.hidden_size}, ${c.num_attention_heads} heads (${c.num_key_value_heads} kv, head_dim ${c.head_dim}), ` +
        `ffn ${c.intermediate_size}, vocab ${c.vocab_size}, rope θ ${c.rope_theta}, tied embeddings ${c.tie_word_embeddings ? 'yes' : 'no'}`,
      'Parameters',
      ...(['vision', 'projector', 'llm', 'other'] as const)
        .filter((p) => p !== 'other' || params.other > 0)
        .map((p) => `  ${(p === 'other' ? 'unused' : p).padEnd(10)} ${count(params[p]).padStart(9)}  (${params[p].toLocaleString('en-US')})`),
      `  ${'total'.padEnd(10)} ${count(summary.params.total).padStart(9)}`,
      `GPU memory for the weights (activations and KV cache extra)`,
      `  f16 ${human(gpuBytes.f16)}, f32 ${human(gpuBytes.f32)}; largest tensor ${largest.name} [${largest.shape}]`,
      ...(asStored
        ? [
            `  as stored (${asStored.dtype}, loads only with --dtype ${asStored.dtype}): ${human(asStored.total)} — LLM ${human(asStored.llm)}, projector ${human(asStored.projector)}, ` +
              `vision ${human(asStored.vision)} (${asStored.visionQuantized ? `linears ${asStored.dtype}` : 'f16'}); ${asStored.quantizedTensors} tensors quantized`,
          ]
        : [
            `  q8 ${human(quantMemory.q8.total)} (LLM ${human(quantMemory.q8.llm)}), q4 ${human(quantMemory.q4.total)} (LLM ${human(quantMemory.q4.llm)}) — decoder and projector quantized, vision f16`,
          ]),
      `GPU memory for activations and the KV cache, by precision (--precision f16|f32)`,
      `  KV cache (${activationMemory.kvCachePositions} positions): f16 ${human(activationMemory.kvCache.f16)}, f32 ${human(activationMemory.kvCache.f32)} ` +
        `(${human(activationMemory.kvCachePerPosition.f16)} / ${human(activationMemory.kvCachePerPosition.f32)} per position)`,
      `  largest vision activation (${activationMemory.largestVisionActivation.what}, ${mlp1.join('×')}): f16 ${human(activationMemory.largestVisionActivation.f16)}, f32 ${human(activationMemory.largestVisionActivation.f32)}`,
      adapter.available
        ? `Adapter    ${adapter.description} (maxBufferSize ${human(adapter.maxBufferSize!)}, max binding ${human(adapter.maxStorageBufferBindingSize!)})\n` +
          `  f16: ${fits!.f16.verdict} — ${fits!.f16.reason}\n  f32: ${fits!.f32.verdict} — ${fits!.f32.reason}`
        : `Adapter    ${adapter.error}`,
      ...(ckpt.warnings.length ? ['Warnings', ...ckpt.warnings.map((w) => `  ! ${w}`)] : []),
      '',
      tensorTable(rows, true),
    ];
    return { kind: 'folder', path: dir, valid: true, warnings: ckpt.warnings, summary, tensors: rows, text: lines.join('\n') };
  } finally {
    await ckpt.close();
  }
}

/**
 * Opens the WebGPU adapter and judges whether the weights fit. WebGPU does not expose device memory,
 * so: every tensor must fit one buffer (maxBufferSize), and for CPU adapters (lavapipe, SwiftShader)
 * the total must fit system RAM; for real GPUs the total can only be compared with what the user knows.
 */
async function probeAdapter(gpuBytes: { f16: number; f32: number }, largestParams: number): Promise<AdapterReport> {
  const { Gpu } = await import('../runtime/gpu.js');
  let gpu;
  try {
    gpu = await Gpu.create();
  } catch (e) {
    return { available: false, error: `no WebGPU adapter: ${(e as Error).message.split('\n')[0]}` };
  }
  try {
    const s = gpu.summary;
    const description = s.description || [s.vendor, s.architecture, s.device].filter(Boolean).join(' ') || 'unknown adapter';
    const isCpu = /llvmpipe|lavapipe|swiftshader|\bcpu\b/i.test([s.vendor, s.architecture, s.device, s.description].join(' '));
    const maxBuffer = gpu.limits.maxBufferSize;
    const verdict = (dtype: 'f16' | 'f32') => {
      const largest = dtype === 'f16' ? Math.ceil(largestParams / 2) * 4 : largestParams * 4;
      if (largest > maxBuffer) return { verdict: 'no' as const, reason: `the largest tensor needs ${human(largest)} > maxBufferSize ${human(maxBuffer)}` };
      if (isCpu) {
        const ram = totalmem();
        return gpuBytes[dtype] < ram * 0.8
          ? { verdict: 'yes' as const, reason: `CPU adapter: ${human(gpuBytes[dtype])} of weights in ${human(ram)} of RAM` }
          : { verdict: 'no' as const, reason: `CPU adapter: ${human(gpuBytes[dtype])} of weights exceeds 80 % of ${human(ram)} RAM` };
      }
      return { verdict: 'probably' as const, reason: `every tensor fits a buffer; needs ${human(gpuBytes[dtype])} of GPU memory (WebGPU cannot report how much there is)` };
    };
    return {
      available: true,
      description,
      maxBufferSize: maxBuffer,
      maxStorageBufferBindingSize: gpu.limits.maxStorageBufferBindingSize,
      fits: { f16: verdict('f16'), f32: verdict('f32') },
    };
  } finally {
    gpu.destroy();
  }
}

// ---- formatting -------------------------------------------------------------------------------

function row(t: TensorInfo, file: string): TensorRow {
  return { name: t.name, dtype: t.dtype, shape: t.shape, bytes: t.end - t.begin, params: t.shape.reduce((a, b) => a * b, 1), file };
}

function totalsOf(rows: TensorRow[]) {
  const byDtype: Record<string, { count: number; bytes: number }> = {};
  for (const r of rows) {
    byDtype[r.dtype] ??= { count: 0, bytes: 0 };
    byDtype[r.dtype].count++;
    byDtype[r.dtype].bytes += r.bytes;
  }
  return { count: rows.length, params: rows.reduce((s, r) => s + r.params, 0), bytes: rows.reduce((s, r) => s + r.bytes, 0), byDtype };
}

function tensorTable(rows: TensorRow[], withPart: boolean): string {
  const width = Math.max(4, ...rows.map((r) => r.name.length));
  const header = `${withPart ? 'part      ' : ''}${'name'.padEnd(width)}  dtype  ${'shape'.padEnd(18)} bytes`;
  const lines = rows.map(
    (r) => `${withPart ? (r.part === 'other' ? 'unused' : r.part!).padEnd(10) : ''}${r.name.padEnd(width)}  ${r.dtype.padEnd(5)}  ${`[${r.shape.join(', ')}]`.padEnd(18)} ${r.bytes}`,
  );
  return [`Tensors (${rows.length})`, header, ...lines].join('\n');
}

function human(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = bytes;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${u === 0 ? v : v.toFixed(v < 10 ? 2 : 1)} ${units[u]}`;
}

function count(n: number): string {
  if (n >= 1e9) return `${(n / 1e9).toFixed(2)} B`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(2)} M`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)} K`;
  return String(n);
}
