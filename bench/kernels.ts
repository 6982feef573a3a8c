/**
 * Kernel benchmark at ConvLLaVA-1536 shapes.
 *
 *   npm run bench:kernels [-- --runs 5] [--quick] [--json] [--no-compare]
 *
 * Each kernel is timed as the median of `runs` repetitions after one warm-up, with GPU timestamp
 * queries when the adapter has `timestamp-query` (else wall-clock around a full sync). Throughput is
 * GFLOP/s for compute-bound kernels and GB/s (bytes read + written once) for memory-bound ones.
 * The GEMM is also run through gpu.js 2.24 (its WGSL code generator on the same Dawn adapter, and its
 * WebAssembly backend) and through our own CPU reference: hand-written vs generated WGSL, same device.
 */
import ndarray from 'ndarray';
import { CONVNEXT_L_PLUS_STAGE5, VICUNA_7B } from '../synthetic/presets.js';
import { Gpu } from '../runtime/gpu.js';
import type { Tensor } from '../runtime/tensor.js';
import { add } from '../ops/add.js';
import { linear, linearRef } from '../ops/linear.js';
import { dwconv7 } from '../ops/dwconv7.js';
import { layerNorm } from '../ops/layerNorm.js';
import { rmsNorm } from '../ops/rmsNorm.js';
import { gelu } from '../ops/gelu.js';
import { attention } from '../ops/attention.js';
import { rope } from '../ops/rope.js';
import { uniformStream } from '../llm/generate.js';
import type { Precision } from '../ops/precision.js';

export interface KernelResult {
  kernel: string;
  /** Storage precision of the activations (ops/precision.ts); weights are named in `kernel`. */
  precision: Precision;
  shape: string;
  implementation: string;
  /** Median ms per call. */
  ms: number;
  samples_ms: number[];
  unit: 'GFLOP/s' | 'GB/s';
  throughput: number;
  timing: 'gpu-timestamps' | 'wall-clock';
}

export interface KernelBenchOptions {
  runs?: number;
  /** Activation precision of every case (default f32); run once per precision to compare them. */
  precision?: Precision;
  /** Smaller shapes (÷8 on the big dimension) for a quick look on slow adapters. */
  quick?: boolean;
  /** Also run the GEMM through gpu.js (webgpu + webasm) and the CPU reference. */
  compare?: boolean;
  log?: (line: string) => void;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** n seeded values in [−1, 1) (the sampler's PRNG, llm/generate.ts). */
function seeded(n: number, seed: number): Float32Array {
  const uniform = uniformStream(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = 2 * uniform() - 1;
  return out;
}

/** Times `op` (which records dispatches and returns tensors to dispose) on the GPU. */
async function timeOp(gpu: Gpu, op: () => Tensor | Tensor[], runs: number): Promise<{ samples: number[]; timing: KernelResult['timing'] }> {
  const once = async (): Promise<[number, boolean]> => {
    let out: Tensor | Tensor[] = [];
    const t0 = performance.now();
    const ms = await gpu.timeGpu(() => {
      out = op();
    });
    await gpu.sync();
    const wall = performance.now() - t0;
    for (const t of ([] as Tensor[]).concat(out)) t.dispose();
    return ms === null ? [wall, false] : [ms, true];
  };
  await once(); // warm-up: pipeline compilation, pool allocation
  const samples: number[] = [];
  let stamped = true;
  for (let r = 0; r < runs; r++) {
    const [ms, ok] = await once();
    samples.push(ms);
    stamped &&= ok;
  }
  return { samples, timing: stamped ? 'gpu-timestamps' : 'wall-clock' };
}

async function timeHost(fn: () => Promise<unknown> | unknown, runs: number): Promise<number[]> {
  const samples: number[] = [];
  for (let r = 0; r < runs; r++) {
    const t0 = performance.now();
    await fn();
    samples.push(performance.now() - t0);
  }
  return samples;
}

export async function runKernelBench(gpu: Gpu, opts: KernelBenchOptions = {}): Promise<KernelResult[]> {
  const runs = opts.runs ?? 5;
  const precision = opts.precision ?? 'f32';
  const ab = precision === 'f16' ? 2 : 4; // bytes per activation element
  const q = opts.quick ? 8 : 1;
  const log = opts.log ?? (() => {});
  const results: KernelResult[] = [];
  const record = (r: Omit<KernelResult, 'ms'>) => {
    const full = { ...r, ms: median(r.samples_ms) };
    results.push(full);
    log(formatRow(full));
  };
  const gpuCase = async (kernel: string, shape: string, work: number, unit: KernelResult['unit'], op: () => Tensor | Tensor[]) => {
    const { samples, timing } = await timeOp(gpu, op, runs);
    const ms = median(samples);
    record({ kernel, precision, shape, implementation: 'convllava WGSL', samples_ms: samples, unit, throughput: work / (ms * 1e6), timing });
  };
  const up = (shape: number[], seed: number, dtype: 'f32' | 'f16' = 'f32') =>
    gpu.upload(shape, seeded(shape.reduce((a, b) => a * b, 1), seed), dtype);
  const act = (shape: number[], seed: number) => up(shape, seed, precision); // an activation

  // ConvLLaVA-1536's shapes, from the preset table (synthetic/presets.ts).
  const D = VICUNA_7B.hidden, F = VICUNA_7B.intermediate, HEADS = VICUNA_7B.heads, HEAD_DIM = D / HEADS;
  const TOKENS = (1536 / 64) ** 2, STAGE1_SIDE = 1536 / 4, C1 = CONVNEXT_L_PLUS_STAGE5.widths[0];

  // --- GEMM: LLM prefill projection (576 visual tokens × 4096 → 4096) -------------------------------
  {
    const M = TOKENS / q, N = D, K = D;
    const x = act([M, K], 1);
    for (const dtype of ['f16', 'f32'] as const) {
      const w = up([N, K], 2, dtype);
      await gpuCase(`linear (${dtype} weights)`, `${M}×${N}×${K}`, 2 * M * N * K, 'GFLOP/s', () => linear(gpu, x, w));
      w.dispose();
    }
    if (opts.compare !== false && precision === 'f32') await compareGemm(gpu, M, N, K, runs, record, log);
    x.dispose();
  }
  // --- matrix-vector: decode step of the MLP (1 × 4096 → 11008, f16 weights) -----------------------
  {
    const N = F, K = D;
    const x = act([1, K], 3);
    const w = up([N, K], 4, 'f16');
    await gpuCase('linear matvec (f16 weights)', `1×${N}×${K}`, N * K * 2 + (K + N) * ab, 'GB/s', () => linear(gpu, x, w));
    x.dispose();
    w.dispose();
  }
  // --- ConvNeXt stage 1 at 1536²: depthwise 7×7 on 384×384×192, LayerNorm over 147456×192 ----------
  {
    const H = opts.quick ? 128 : STAGE1_SIDE, C = C1;
    const x = act([H, H, C], 5);
    const w = up([C, 1, 7, 7], 6);
    const b = up([C], 7);
    await gpuCase('dwconv7', `${H}×${H}×${C}`, 2 * H * H * C * 49, 'GFLOP/s', () => dwconv7(gpu, x, w, b));
    const rows = H * H;
    const g = up([C], 8);
    await gpuCase('layerNorm', `${rows}×${C}`, rows * C * 2 * ab, 'GB/s', () => layerNorm(gpu, x.reshape([rows, C]), g, b, 1e-6));
    [x, w, b, g].forEach((t) => t.dispose());
  }
  // --- elementwise / LLM row ops at prefill size -----------------------------------------------------
  {
    const T = 640;
    const h = act([T, F / q], 9);
    await gpuCase('gelu', `${T}×${F / q}`, T * (F / q) * 2 * ab, 'GB/s', () => gelu(gpu, h));
    await gpuCase('add', `${T}×${F / q}`, T * (F / q) * 3 * ab, 'GB/s', () => add(gpu, h, h));
    h.dispose();
    const x = act([T, D], 10);
    const g = up([D], 11);
    await gpuCase('rmsNorm', `${T}×${D}`, T * D * 2 * ab, 'GB/s', () => rmsNorm(gpu, x, g, 1e-5));
    await gpuCase('rope', `${T}×${D}`, T * D * 2 * ab, 'GB/s', () => rope(gpu, x, { nHeads: HEADS, headDim: HEAD_DIM, positionOffset: 0, theta: 10000 }));
    // attention: prefill over 640 tokens (causal, 32 heads × 128), and one decode query over them
    const k = act([T, D], 12);
    const v = act([T, D], 13);
    const a = { nHeads: HEADS, nKvHeads: HEADS, headDim: HEAD_DIM };
    const prefillFlops = HEADS * 2 * 2 * HEAD_DIM * ((T * (T + 1)) / 2);
    await gpuCase('attention prefill', `${T} tok, ${HEADS}×${HEAD_DIM}`, prefillFlops, 'GFLOP/s', () =>
      attention(gpu, x, k, v, { ...a, queryOffset: 0, kvLength: T }),
    );
    const q1 = act([1, D], 14);
    await gpuCase('attention decode', `1 × ${T} kv, ${HEADS}×${HEAD_DIM}`, 2 * T * D * ab, 'GB/s', () =>
      attention(gpu, q1, k, v, { ...a, queryOffset: T - 1, kvLength: T }),
    );
    [x, g, k, v, q1].forEach((t) => t.dispose());
  }
  return results;
}

/** The same GEMM through gpu.js (generated WGSL on the same adapter; WebAssembly) and our CPU reference. */
async function compareGemm(
  gpu: Gpu,
  M: number,
  N: number,
  K: number,
  runs: number,
  record: (r: Omit<KernelResult, 'ms'>) => void,
  log: (line: string) => void,
): Promise<void> {
  const a = seeded(M * K, 1);
  const w = seeded(N * K, 2);
  const flops = 2 * M * N * K;
  const g = globalThis as { navigator?: { gpu?: GPU } };
  g.navigator ??= { gpu: gpu.instance };
  g.navigator.gpu ??= gpu.instance;
  const { GPU: GpuJs, input } = (await import('gpu.js')) as unknown as {
    GPU: new (o: object) => { createKernel(f: unknown, o: object): (...args: unknown[]) => unknown; destroy(): void };
    input: (data: Float32Array, size: number[]) => unknown;
  };
  for (const mode of ['webgpu', 'webasm']) {
    try {
      const gj = new GpuJs({ mode });
      const kernel = gj.createKernel(
        function (this: { thread: { x: number; y: number }; constants: { K: number } }, x: number[][], wt: number[][]) {
          let sum = 0;
          for (let i = 0; i < this.constants.K; i++) sum += x[this.thread.y][i] * wt[this.thread.x][i];
          return sum;
        },
        { constants: { K }, output: [N, M] },
      );
      const call = () => kernel(input(a, [K, M]), input(w, [K, N]));
      await call(); // warm-up (compiles)
      const samples = await timeHost(call, mode === 'webasm' ? 1 : Math.min(runs, 3));
      record({
        kernel: 'linear (f32 weights)',
        precision: 'f32',
        shape: `${M}×${N}×${K}`,
        implementation: `gpu.js ${mode}`,
        samples_ms: samples,
        unit: 'GFLOP/s',
        throughput: flops / (median(samples) * 1e6),
        timing: 'wall-clock',
      });
    } catch (e) {
      log(`gpu.js ${mode}: skipped (${(e as Error).message})`);
    }
  }
  const xa = ndarray(a, [M, K]);
  const wa = ndarray(w, [N, K]);
  const samples = await timeHost(() => linearRef(xa, wa), 1);
  record({
    kernel: 'linear (f32 weights)',
    precision: 'f32',
    shape: `${M}×${N}×${K}`,
    implementation: 'CPU reference (JS)',
    samples_ms: samples,
    unit: 'GFLOP/s',
    throughput: flops / (median(samples) * 1e6),
    timing: 'wall-clock',
  });
}

export function formatRow(r: KernelResult): string {
  return `${r.kernel.padEnd(28)} ${r.precision.padEnd(4)} ${r.shape.padEnd(22)} ${r.implementation.padEnd(20)} ${r.ms.toFixed(3).padStart(10)} ms ${r.throughput
    .toFixed(1)
    .padStart(9)} ${r.unit}`;
}

export const TABLE_HEADER = `${'kernel'.padEnd(28)} ${'act'.padEnd(4)} ${'shape'.padEnd(22)} ${'implementation'.padEnd(20)} ${'median'.padStart(13)} ${'throughput'.padStart(17)}`;

async function main(argv: string[]): Promise<void> {
  const json = argv.includes('--json');
  const runsAt = argv.indexOf('--runs');
  const runs = runsAt >= 0 ? Number(argv[runsAt + 1]) : 5;
  if (!Number.isInteger(runs) || runs < 1) throw new Error(`--runs must be an integer ≥ 1, got '${argv[runsAt + 1]}'`);
  const gpu = await Gpu.create();
  const s = gpu.summary;
  if (!json) {
    console.log(`adapter: ${s.vendor} ${s.architecture} ${s.device} (${s.description}) via ${s.backend}`);
    console.log(TABLE_HEADER);
  }
  let results: KernelResult[];
  try {
    const precisionAt = argv.indexOf('--precision');
    const precision = precisionAt >= 0 ? argv[precisionAt + 1] : 'f32';
    if (precision !== 'f32' && precision !== 'f16') throw new Error(`--precision must be f32 or f16, got '${precision}'`);
    results = await runKernelBench(gpu, {
      runs,
      precision,
      quick: argv.includes('--quick'),
      compare: !argv.includes('--no-compare'),
      log: json ? undefined : console.log,
    });
  } finally {
    gpu.destroy();
  }
  if (json) console.log(JSON.stringify({ adapter: s, runs, results }, null, 2));
}

if (import.meta.url === `file://${process.argv[1]}`) {
  main(process.argv.slice(2)).catch((e) => {
    console.error(`bench:kernels: ${(e as Error).message}`);
    process.exitCode = 1;
  });
}
