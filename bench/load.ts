/**
 * Checkpoint loading benchmark: writes a synthetic ConvLLaVA folder of ≥ 2 GB with the safetensors
 * writer (LLM as two BF16 shards + index, vision tower in F32), then loads it in a fresh child
 * process and reports throughput and peak RSS:
 *
 *   npm run bench:load [-- --gib 2.2] [--keep-dir] [--json]
 *
 * Load modes (each in its own process, so `maxRSS` is the peak of that load alone):
 *   open      Checkpoint.open: configs, index, every header, the whole name/shape table
 *   read-f32  readF32 of every tensor (one whole tensor in memory at a time)
 *   gpu-f16   toGpu(…, 'f16') of every tensor, each disposed after upload: the loader's own
 *             footprint (on lavapipe GPU buffers live in process memory, so keeping all of them
 *             would add the model's size to RSS; on a real GPU they would be device memory)
 *
 * The files were just written, so reads come from the page cache: this measures parsing,
 * conversion and upload, not the disk. The temporary folder under /tmp is deleted at the end.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Checkpoint } from '../weights/checkpoint.js';
import { expectedLlmTensors, expectedVisionTensors } from '../weights/names.js';
import { writeSafetensors, type StDType, type TensorToWrite } from '../weights/safetensors.js';
import { parseConvNextConfig, parseLlavaConfig } from '../weights/config.js';
import { f32ToF16Bits } from '../runtime/half.js';
import { presetConfigs } from '../synthetic/presets.js';

type Mode = 'open' | 'read-f32' | 'gpu-f16';

interface LoadResult {
  mode: Mode;
  seconds: number;
  /** User + system CPU seconds of the load (all threads): less sensitive to a busy machine than wall time. */
  cpuSeconds: number;
  bytes: number;
  mbPerSecond: number;
  peakRssMiB: number;
  baselineRssMiB: number;
}

// ---- the synthetic model ----------------------------------------------------------------------

/** A LLaMA sized to about `gib` GiB at 2 bytes/param, with a 5-stage ConvNeXt at ~0.5 GiB in F32 (synthetic/presets.ts builds the configs). */
function syntheticConfigs(gib: number) {
  const hidden = 2048;
  const ffn = 5504;
  const vocab = 32000;
  const perLayer = 4 * hidden * hidden + 3 * hidden * ffn + 2 * hidden;
  const visionBytes = 0.5 * 2 ** 30;
  const layers = Math.max(1, Math.ceil((gib * 2 ** 30 - visionBytes - 2 * vocab * hidden * 2) / (perLayer * 2)));
  const { config, visionConfig, preprocessorConfig } = presetConfigs({
    resolution: 1536,
    widths: [128, 256, 512, 1024, 1536],
    depths: [3, 3, 27, 3, 3],
    hidden,
    intermediate: ffn,
    layers,
    heads: 16,
    kvHeads: 16,
    maxPositions: 4096,
  });
  return { llava: { ...config, torch_dtype: 'bfloat16' }, vision: visionConfig, preprocessor: preprocessorConfig };
}

/** 16 MiB of plausible weights (small normal-ish values) reused for every chunk: no RNG per byte. */
function patternChunk(dtype: StDType): Uint8Array {
  const n = 4 << 20;
  const f32 = Float32Array.from({ length: n }, (_, i) => Math.sin(i * 0.7853) * 0.02 * (1 + (i % 7)));
  if (dtype === 'F32') return new Uint8Array(f32.buffer);
  const bits = new Uint16Array(n);
  const u32 = new Uint32Array(f32.buffer);
  for (let i = 0; i < n; i++) bits[i] = dtype === 'BF16' ? u32[i] >>> 16 : f32ToF16Bits(f32[i]);
  return new Uint8Array(bits.buffer);
}

function streamed(name: string, dtype: StDType, shape: number[], pattern: Uint8Array): TensorToWrite {
  const bytes = shape.reduce((a, b) => a * b, 1) * (dtype === 'F32' ? 4 : 2);
  return {
    name,
    dtype,
    shape,
    data: function* () {
      for (let at = 0; at < bytes; at += pattern.length) yield pattern.subarray(0, Math.min(pattern.length, bytes - at));
    },
  };
}

async function writeSyntheticCheckpoint(dir: string, gib: number): Promise<{ bytes: number; seconds: number }> {
  const { llava, vision, preprocessor } = syntheticConfigs(gib);
  await writeFile(join(dir, 'config.json'), JSON.stringify(llava, null, 2));
  await rm(join(dir, 'vision_tower'), { recursive: true, force: true });
  await import('node:fs/promises').then((fs) => fs.mkdir(join(dir, 'vision_tower')));
  await writeFile(join(dir, 'vision_tower/config.json'), JSON.stringify(vision, null, 2));
  await writeFile(join(dir, 'vision_tower/preprocessor_config.json'), JSON.stringify(preprocessor, null, 2));

  const cfg = parseLlavaConfig(llava, 'config.json');
  const visionCfg = parseConvNextConfig(vision, 'vision_tower/config.json', cfg);
  const bf16 = patternChunk('BF16');
  const f32 = patternChunk('F32');
  const llm = expectedLlmTensors(cfg).map((t) => streamed(t.name, 'BF16', t.shape, bf16));
  const visionTensors = expectedVisionTensors(visionCfg)
    .filter((t) => !t.optional)
    .map((t) => streamed(t.name, 'F32', t.shape, f32));

  const start = performance.now();
  const half = Math.ceil(llm.length / 2);
  const shards = [llm.slice(0, half), llm.slice(half)];
  const weightMap: Record<string, string> = {};
  let bytes = 0;
  for (let s = 0; s < shards.length; s++) {
    const file = `model-0000${s + 1}-of-00002.safetensors`;
    await writeSafetensors(join(dir, file), shards[s], { format: 'pt' });
    for (const t of shards[s]) {
      weightMap[t.name] = file;
      bytes += t.shape.reduce((a, b) => a * b, 1) * 2;
    }
  }
  await writeFile(join(dir, 'model.safetensors.index.json'), JSON.stringify({ metadata: { total_size: bytes }, weight_map: weightMap }, null, 2));
  await writeSafetensors(join(dir, 'vision_tower/model.safetensors'), visionTensors, { format: 'pt' });
  for (const t of visionTensors) bytes += t.shape.reduce((a, b) => a * b, 1) * 4;
  return { bytes, seconds: (performance.now() - start) / 1000 };
}

// ---- one load, in a child process ----------------------------------------------------------------

async function loadOnce(dir: string, mode: Mode): Promise<LoadResult> {
  const mib = (b: number) => Math.round((b / 2 ** 20) * 10) / 10;
  let gpu: import('../runtime/gpu.js').Gpu | null = null;
  if (mode === 'gpu-f16') {
    const { Gpu } = await import('../runtime/gpu.js');
    gpu = await Gpu.create();
  }
  const baseline = process.memoryUsage().rss;
  const start = performance.now();
  const cpuStart = process.cpuUsage();
  const ckpt = await Checkpoint.open(dir);
  let bytes = 0;
  for (const set of [ckpt.llm, ckpt.vision]) {
    for (const name of set.names()) {
      const info = set.info(name);
      if (mode === 'open') {
        bytes += info.end - info.begin;
      } else if (mode === 'read-f32') {
        bytes += (await set.readF32(name)).length * 0 + (info.end - info.begin);
      } else {
        const t = await set.toGpu(gpu!, name, 'f16');
        bytes += info.end - info.begin;
        t.dispose();
        gpu!.pool.trim();
      }
    }
  }
  if (gpu) await gpu.sync();
  const seconds = (performance.now() - start) / 1000;
  const cpu = process.cpuUsage(cpuStart);
  await ckpt.close();
  gpu?.destroy();
  return {
    mode,
    seconds: Math.round(seconds * 100) / 100,
    cpuSeconds: Math.round((cpu.user + cpu.system) / 1e4) / 100,
    bytes,
    mbPerSecond: Math.round(bytes / 1e6 / seconds),
    peakRssMiB: mib(process.resourceUsage().maxRSS * 1024),
    baselineRssMiB: mib(baseline),
  };
}

function runChild(dir: string, mode: Mode): Promise<LoadResult> {
  const self = fileURLToPath(import.meta.url);
  return new Promise((done, fail) => {
    execFile(process.execPath, ['--import', 'tsx', self, '--child', dir, mode], { maxBuffer: 1 << 20, env: { ...process.env, XDG_RUNTIME_DIR: process.env.XDG_RUNTIME_DIR ?? '/tmp' } }, (err, stdout, stderr) => {
      if (err) fail(new Error(`load (${mode}) failed: ${stderr || err.message}`));
      else done(JSON.parse(stdout.trim().split('\n').pop()!));
    });
  });
}

// ---- main -------------------------------------------------------------------------------------

async function main(argv: string[]): Promise<void> {
  if (argv[0] === '--child') {
    console.log(JSON.stringify(await loadOnce(argv[1], argv[2] as Mode)));
    return;
  }
  const gibAt = argv.indexOf('--gib');
  const gib = gibAt >= 0 ? Number(argv[gibAt + 1]) : 2.2;
  const json = argv.includes('--json');
  const dir = await mkdtemp(join(tmpdir(), 'convllava-bench-load-'));
  const cleanup = () => (argv.includes('--keep-dir') ? Promise.resolve() : rm(dir, { recursive: true, force: true }));
  process.once('SIGINT', () => void cleanup().then(() => process.exit(130)));
  try {
    const written = await writeSyntheticCheckpoint(dir, gib);
    const results = [];
    for (const mode of ['open', 'read-f32', 'gpu-f16'] as Mode[]) results.push(await runChild(dir, mode));
    const report = {
      checkpointBytes: written.bytes,
      checkpointGiB: Math.round((written.bytes / 2 ** 30) * 100) / 100,
      writeMBPerSecond: Math.round(written.bytes / 1e6 / written.seconds),
      loads: results,
    };
    if (json) {
      console.log(JSON.stringify(report, null, 2));
    } else {
      console.log(`synthetic checkpoint: ${report.checkpointGiB} GiB (LLM BF16 in 2 shards, vision F32) written at ${report.writeMBPerSecond} MB/s`);
      console.log('mode       seconds  CPU s    MB/s   peak RSS   (RSS before loading)');
      for (const r of results) {
        console.log(
          `${r.mode.padEnd(9)} ${String(r.seconds).padStart(8)} ${String(r.cpuSeconds).padStart(6)} ${String(r.mbPerSecond).padStart(7)} ` +
            `${`${r.peakRssMiB} MiB`.padStart(10)}   (${r.baselineRssMiB} MiB)`,
        );
      }
    }
  } finally {
    await cleanup();
  }
}

main(process.argv.slice(2)).catch((e) => {
  console.error(`bench:load: ${(e as Error).message}`);
  process.exitCode = 1;
});
