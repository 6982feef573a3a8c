/**
 * convllava bench [--preset P | --model DIR] [--resolutions 768,1024,1536] [-p 512] [-n 128] [-r 5]
 *                 [--only encode,pp,tg,ttft] [--dtype f16|f32|q8|q4] [--precision f16,f32] [--through-disk]
 *                 [--kernels] [--profile]
 *                 [--json] [--report out.html]
 *
 * Image encode ms per resolution, prefill tok/s (pp<N>), decode tok/s (tg<N>), time to first token,
 * load time and peak GPU memory — mean ± sd over r runs after a warm-up — with the work recorded:
 * dispatches, passes and copies per image and per decode token, and the JS time spent recording;
 * with --kernels also the per-kernel table and each figure's fraction of the measured roofline;
 * with --profile the GPU time per kernel of one decode step and one image encode. --json prints one JSON
 * object (llama-bench field names where they exist: n_prompt, n_gen, avg_ts, stddev_ts, samples_ts).
 * --precision f16,f32 runs everything once per activation precision in the same process (same
 * adapter, same weights) and prints the f16 / f32 ratios side by side.
 */
import { writeFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { runKernelBench, TABLE_HEADER, formatRow, type KernelResult } from '../bench/kernels.js';
import { BENCH_TESTS, runModelBench, type BenchTest, type KernelShare, type ModelBenchResult } from '../bench/model.js';
import { renderReport, type BenchReport } from '../bench/report.js';
import { measureCopyBandwidth } from '../bench/roofline.js';
import { Gpu } from '../runtime/gpu.js';
import { defaultPrecision, type Precision } from '../ops/precision.js';
import { PRESET_NAMES } from '../synthetic/presets.js';

const HELP = `usage: convllava bench [options]

  --preset P           synthetic model: ${PRESET_NAMES.join(', ')} (default tiny)
  --model DIR          a ConvLLaVA model folder instead of a preset
  --through-disk       write the preset to a temporary folder first, so the real loader is timed
  --resolutions LIST   image sizes to encode, comma-separated (default: the model's resolution)
  -p, --n-prompt N     prefill test length (default 512; 0 skips)
  -n, --n-gen N        decode test length (default 128; 0 skips)
  -r, --repetitions N  runs per test after one warm-up (default 5)
  --only LIST          run only these tests: ${BENCH_TESTS.join(',')} (default all)
  --dtype f16|f32|q8|q4  weight storage on the GPU (default f16; q8/q4 quantize the decoder and
                       projector on load, vision f16)
  --precision LIST     activation / KV-cache precision(s), comma-separated: f16, f32 or f16,f32
                       (default: f16 where the adapter has shader-f16, else f32); two run side by
                       side and their ratios are printed
  --kernels            also run the kernel benchmark with roofline fractions
  --profile            GPU time per kernel (sum, count, share) of one decode step and one image
                       encode, each dispatch timed alone (timestamp queries where the adapter has them)
  --json               print one JSON object instead of tables
  --report FILE        write an HTML report with charts`;

function positiveInt(name: string, v: string | undefined, fallback: number, min = 0): number {
  if (v === undefined) return fallback;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) throw new Error(`${name} must be an integer ≥ ${min}, got '${v}'`);
  return n;
}

export async function run(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      preset: { type: 'string' },
      model: { type: 'string' },
      'through-disk': { type: 'boolean' },
      resolutions: { type: 'string' },
      'n-prompt': { type: 'string', short: 'p' },
      'n-gen': { type: 'string', short: 'n' },
      repetitions: { type: 'string', short: 'r' },
      only: { type: 'string' },
      dtype: { type: 'string' },
      precision: { type: 'string' },
      kernels: { type: 'boolean' },
      profile: { type: 'boolean' },
      json: { type: 'boolean' },
      report: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  if (values.preset && values.model) throw new Error('give --preset or --model, not both');
  const preset = values.model ? undefined : (values.preset ?? 'tiny');
  if (preset && !PRESET_NAMES.includes(preset)) throw new Error(`unknown preset '${preset}'; choose one of: ${PRESET_NAMES.join(', ')}`);
  const dtype = values.dtype ?? 'f16';
  if (dtype !== 'f16' && dtype !== 'f32' && dtype !== 'q8' && dtype !== 'q4') throw new Error(`--dtype must be f16, f32, q8 or q4, got '${dtype}'`);
  const runs = positiveInt('--repetitions', values.repetitions, 5, 1);
  const nPrompt = positiveInt('--n-prompt', values['n-prompt'], 512);
  const nGen = positiveInt('--n-gen', values['n-gen'], 128);
  const resolutions = values.resolutions?.split(',').map((s) => positiveInt('--resolutions', s.trim(), 0, 1));
  const json = !!values.json;
  const tests = values.only?.split(',').map((t) => t.trim()) as BenchTest[] | undefined;
  const unknownTest = tests?.find((t) => !(BENCH_TESTS as readonly string[]).includes(t));
  if (unknownTest) throw new Error(`--only: unknown test '${unknownTest}'; choose from ${BENCH_TESTS.join(', ')}`);

  const progress = (m: string) => {
    if (process.stderr.isTTY) process.stderr.write(`\r\x1b[2K${m}`);
    else if (!json) process.stderr.write(`${m}\n`);
  };
  const done = () => {
    if (process.stderr.isTTY) process.stderr.write('\r\x1b[2K');
  };

  const gpu = await Gpu.create();
  try {
    const adapter = gpu.summary;
    if (!json) console.log(`adapter: ${adapter.vendor} ${adapter.architecture} ${adapter.device} ${adapter.description} via ${adapter.backend}; features: ${adapter.features.join(', ')}`);

    const precisions = parsePrecisions(values.precision, gpu);
    const modelResults: ModelBenchResult[] = [];
    const modelResolution = await resolveModelResolution(preset, values.model);
    for (const precision of precisions) {
      const m = await runModelBench(gpu, {
        preset,
        model: values.model,
        throughDisk: !!values['through-disk'],
        resolutions: resolutions ?? [modelResolution],
        nPrompt,
        nGen,
        runs,
        dtype,
        precision,
        tests,
        profile: !!values.profile,
        progress,
      });
      done();
      if (!json) printModel(m);
      modelResults.push(m);
    }
    if (!json && modelResults.length === 2) printModelRatios(modelResults[0], modelResults[1]);

    let kernels: BenchReport['kernels'] = null;
    let roofline: BenchReport['roofline'] = null;
    if (values.kernels) {
      if (!json) console.log(`\n${TABLE_HEADER}`);
      const rows: KernelResult[] = [];
      for (const precision of precisions) rows.push(...(await runKernelBench(gpu, { runs, precision, log: json ? undefined : (l) => console.log(l) })));
      const bandwidth = await measureCopyBandwidth(gpu);
      const gemm = Math.max(...rows.filter((k) => k.unit === 'GFLOP/s' && k.implementation === 'convllava WGSL').map((k) => k.throughput));
      roofline = { bandwidth_gbs: bandwidth, gemm_gflops: gemm };
      kernels = rows.map((k: KernelResult) => ({
        ...k,
        roofline_fraction: k.implementation !== 'convllava WGSL' ? null : k.throughput / (k.unit === 'GB/s' ? bandwidth : gemm),
      }));
      if (!json) {
        console.log(`\nroofline (measured here): copy ${bandwidth.toFixed(1)} GB/s, best GEMM ${gemm.toFixed(1)} GFLOP/s`);
        for (const k of kernels) if (k.roofline_fraction !== null) console.log(`  ${formatRow(k)}  ${(k.roofline_fraction * 100).toFixed(1)} % of roofline`);
        if (precisions.length === 2) printKernelRatios(rows, precisions[0], precisions[1]);
      }
    }

    const report: BenchReport = { adapter, date: new Date().toISOString(), model: modelResults[0] ?? null, models: modelResults, kernels, roofline };
    if (values.report) {
      await writeFile(values.report, renderReport(report));
      if (!json) console.log(`\nreport written to ${values.report}`);
    }
    if (json) console.log(JSON.stringify(report));
    return 0;
  } finally {
    gpu.destroy();
  }
}

/** --precision: a comma-separated list of f16 / f32 (default: the device's default precision). */
function parsePrecisions(value: string | undefined, gpu: Gpu): Precision[] {
  const list = (value ?? defaultPrecision(gpu)).split(',').map((s) => s.trim());
  for (const p of list) {
    if (p !== 'f16' && p !== 'f32') throw new Error(`--precision: '${p}' is not f16 or f32`);
    if (p === 'f16' && !gpu.hasF16) throw new Error(`--precision f16: this adapter has no 'shader-f16' (features: ${gpu.summary.features.join(', ')})`);
  }
  if (new Set(list).size !== list.length || list.length > 2) throw new Error(`--precision: give f16, f32 or both once each, got '${value}'`);
  return list as Precision[];
}

/** Second run over first: encode, pp, tg, TTFT and memory, measured in this process. */
function printModelRatios(a: ModelBenchResult, b: ModelBenchResult): void {
  const up = (x: number) => `speed-up ${x.toFixed(2)}×`;
  console.log(`\nside by side, ${b.precision} vs ${a.precision} activations (same adapter, same ${a.dtype} weights, one process; speed-up > 1: ${b.precision} faster):`);
  for (const e of b.image_encode) {
    const other = a.image_encode.find((x) => x.resolution === e.resolution);
    if (other) console.log(`  image encode ${e.resolution}²: ${other.ms.mean.toFixed(2)} → ${e.ms.mean.toFixed(2)} ms (${up(other.ms.mean / e.ms.mean)})`);
  }
  if (a.pp && b.pp) console.log(`  pp${b.pp.n_prompt}: ${a.pp.avg_ts.toFixed(2)} → ${b.pp.avg_ts.toFixed(2)} tok/s (${up(b.pp.avg_ts / a.pp.avg_ts)})`);
  if (a.tg && b.tg) console.log(`  tg${b.tg.n_gen}: ${a.tg.avg_ts.toFixed(2)} → ${b.tg.avg_ts.toFixed(2)} tok/s (${up(b.tg.avg_ts / a.tg.avg_ts)})`);
  if (a.ttft_ms && b.ttft_ms) console.log(`  time to first token: ${a.ttft_ms.mean.toFixed(2)} → ${b.ttft_ms.mean.toFixed(2)} ms (${up(a.ttft_ms.mean / b.ttft_ms.mean)})`);
  const mib = (x: number) => `${(x / 2 ** 20).toFixed(1)} MiB`;
  console.log(`  KV cache (${b.memory.kv_cache_positions} positions): ${mib(a.memory.kv_cache)} → ${mib(b.memory.kv_cache)}; peak GPU memory ${mib(a.peak_gpu_bytes)} → ${mib(b.peak_gpu_bytes)}`);
}

/** Each kernel's time at precision b over its time at precision a (same shapes, same run). */
function printKernelRatios(rows: KernelResult[], a: Precision, b: Precision): void {
  console.log(`\nkernels, ${b} vs ${a} activations (median ms; speed-up > 1: ${b} faster):`);
  for (const x of rows.filter((k) => k.precision === b && k.implementation === 'convllava WGSL')) {
    const y = rows.find((k) => k.precision === a && k.kernel === x.kernel && k.shape === x.shape && k.implementation === x.implementation);
    if (y) console.log(`  ${x.kernel.padEnd(28)} ${x.shape.padEnd(22)} ${y.ms.toFixed(3).padStart(10)} → ${x.ms.toFixed(3).padStart(10)} ms  ${(y.ms / x.ms).toFixed(2)}×`);
  }
}

async function resolveModelResolution(preset: string | undefined, model: string | undefined): Promise<number> {
  if (model) {
    const { Checkpoint } = await import('../weights/checkpoint.js');
    const ckpt = await Checkpoint.open(model);
    await ckpt.close();
    return ckpt.config.mm_vision_resolution;
  }
  const { syntheticCheckpoint } = await import('../synthetic/checkpoint.js');
  return syntheticCheckpoint(preset!).config.mm_vision_resolution;
}

function printModel(m: ModelBenchResult): void {
  const ms = (s: { mean: number; sd: number }) => `${s.mean.toFixed(2)} ± ${s.sd.toFixed(2)} ms`;
  console.log(`\nmodel: ${m.model} (${m.dtype} weights, ${m.precision} activations and KV cache; vision ${(m.parameters.vision / 1e6).toFixed(1)} M, LLM + projector ${(m.parameters.llm / 1e6).toFixed(1)} M parameters)`);
  console.log(`load: ${m.load_ms.toFixed(0)} ms`);
  for (const e of m.image_encode) {
    console.log(
      `image encode ${e.resolution}² (${e.visual_tokens} visual tokens): ${ms(e.ms)}; ` +
        `${e.dispatches} dispatches, ${e.passes} passes, ${e.copies} copies, ${e.cpu_record_ms.toFixed(2)} ms recording`,
    );
  }
  if (m.pp) console.log(`pp${m.pp.n_prompt}: ${m.pp.avg_ts.toFixed(2)} ± ${m.pp.stddev_ts.toFixed(2)} tok/s`);
  if (m.tg) console.log(`tg${m.tg.n_gen}: ${m.tg.avg_ts.toFixed(2)} ± ${m.tg.stddev_ts.toFixed(2)} tok/s`);
  const tg = m.tg;
  if (tg?.dispatches_per_token !== undefined) {
    console.log(
      `decode, per token: ${tg.dispatches_per_token.toFixed(1)} dispatches (${(tg.dispatches_per_token / tg.n_layers!).toFixed(2)} per layer × ${tg.n_layers} layers), ` +
        `${tg.passes_per_token!.toFixed(1)} passes, ${tg.copies_per_token!.toFixed(1)} copies, ${tg.cpu_record_ms_per_token!.toFixed(3)} ms recording; ` +
        `${tg.pipelines_created} pipelines created after the first token; ` +
        `${(tg.weight_bytes_per_token! / 2 ** 20).toFixed(2)} MiB of weights read`,
    );
  }
  if (m.ttft_ms) console.log(`time to first token (image + prompt): ${ms(m.ttft_ms)}`);
  console.log(
    `GPU memory: weights ${(m.memory.weights / 2 ** 20).toFixed(1)} MiB, KV cache ${(m.memory.kv_cache / 2 ** 20).toFixed(1)} MiB ` +
      `(${m.memory.kv_cache_positions} positions, ${m.precision}); peak (pool) ${(m.peak_gpu_bytes / 2 ** 20).toFixed(1)} MiB`,
  );
  if (m.profile) {
    const how = m.profile.method === 'timestamp-query' ? 'GPU timestamps, each dispatch in its own pass' : 'wall clock, each dispatch submitted alone (no timestamp-query on this adapter)';
    const table = (title: string, rows: KernelShare[]) => {
      const total = rows.reduce((a, r) => a + r.ms, 0);
      console.log(`\n${title}: ${total.toFixed(3)} ms over ${rows.reduce((a, r) => a + r.count, 0)} dispatches (${how})`);
      const w = Math.max(6, ...rows.map((r) => r.kernel.length));
      console.log(`  ${'kernel'.padEnd(w)} ${'count'.padStart(6)} ${'ms'.padStart(10)} ${'share'.padStart(7)}`);
      for (const r of rows) console.log(`  ${r.kernel.padEnd(w)} ${String(r.count).padStart(6)} ${r.ms.toFixed(3).padStart(10)} ${(r.share * 100).toFixed(1).padStart(6)}%`);
    };
    if (m.profile.decode_step) table('profile: one decode step', m.profile.decode_step);
    if (m.profile.image_encode) table(`profile: one image encode ${m.profile.image_encode.resolution}²`, m.profile.image_encode.kernels);
  }
}
