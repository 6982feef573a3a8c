/**
 * Browser smoke test: the library's own modules, bundled for the browser, on navigator.gpu.
 *
 *   1. kernels: `add` and `linear` (f32 tiled, f16 mat-vec) against their CPU references;
 *   2. image decoding + preprocessing in the browser (PNG: RGB, grey, RGBA; JPEG through the wasm
 *      decoder) against the PyTorch/PIL pixel_values fixtures;
 *   3. the tiny fixture model, opened over HTTP through UrlFolderReader (Range requests), answers
 *      the fixture question about case0.png; its 12 greedy ids must equal golden.json's.
 *
 * The verdict goes into document.title ('convllava browser smoke: PASS' / 'FAIL'), #result, and is
 * POSTed to /__report (scripts/serve.ts prints it), so a headless browser needs no debugging channel.
 * Paths are relative to this page (browser/index.html served from the repository root).
 */
import ndarray from 'ndarray';
import { Checkpoint, ConvLlava, Gpu, UrlByteSource, UrlFolderReader } from '../index.js';
import { add, addRef } from '../ops/add.js';
import { linear, linearRef } from '../ops/linear.js';
import { loadImage, preprocess } from '../convnext/preprocess.js';
import { isFloatDType, toF32 } from '../weights/convert.js';
import { SafetensorsFile } from '../weights/safetensors.js';

const FIXTURE = new URL('../spec/fixtures/convllava-tiny/', location.href);
const PREPROCESS = new URL('../spec/fixtures/preprocess/', location.href);
const logEl = document.getElementById('log')!;
const lines: string[] = [];

function log(line: string): void {
  lines.push(line);
  logEl.textContent = lines.join('\n');
}

/** Uniform values in [-1, 1) from a fixed seed (xorshift32), so a failure reproduces. */
function randomValues(n: number, seed: number): Float32Array {
  let s = seed >>> 0 || 1;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    out[i] = ((s >>> 0) / 2 ** 32) * 2 - 1;
  }
  return out;
}

/** |gpu − ref| ≤ atol + rtol·|ref| everywhere, or an error naming the first mismatches. */
function expectClose(what: string, gpu: Float32Array, ref: Float32Array, atol: number, rtol: number): void {
  if (gpu.length !== ref.length) throw new Error(`${what}: ${gpu.length} values, reference has ${ref.length}`);
  const bad: string[] = [];
  let worst = 0;
  for (let i = 0; i < ref.length; i++) {
    const err = Math.abs(gpu[i] - ref[i]);
    worst = Math.max(worst, err);
    if (!(err <= atol + rtol * Math.abs(ref[i])) && bad.length < 5) bad.push(`[${i}] gpu ${gpu[i]} ref ${ref[i]}`);
  }
  if (bad.length) throw new Error(`${what}: mismatch at ${bad.join(', ')}`);
  log(`ok  ${what} (${ref.length} values, max |err| ${worst.toExponential(2)})`);
}

async function checkKernels(gpu: Gpu): Promise<void> {
  // add: a ragged size that is not a multiple of the workgroup.
  const n = 1000 + 33;
  const a = randomValues(n, 1);
  const b = randomValues(n, 2);
  const sum = await add(gpu, gpu.upload([n], a), gpu.upload([n], b)).read();
  expectClose('add [1033]', sum as Float32Array, addRef(ndarray(a, [n]), ndarray(b, [n])).data, 0, 0);

  // linear: the tiled path (M > 8, f32 weights) and the mat-vec path (M ≤ 8, f16 weights), with bias.
  for (const [M, N, K, dtype] of [
    [33, 70, 129, 'f32'],
    [3, 255, 96, 'f16'],
  ] as const) {
    const x = randomValues(M * K, 3 + M);
    const w = randomValues(N * K, 4 + N);
    const bias = randomValues(N, 5 + K);
    // f16 weights: the reference sees the same rounded values the GPU holds.
    const wTensor = gpu.upload([N, K], w, dtype);
    const wSeen = dtype === 'f16' ? ((await wTensor.read()) as Float32Array) : w;
    const y = await linear(gpu, gpu.upload([M, K], x), wTensor, gpu.upload([N], bias)).read();
    const ref = linearRef(ndarray(x, [M, K]), ndarray(wSeen, [N, K]), ndarray(bias, [N]));
    expectClose(`linear M=${M} N=${N} K=${K} ${dtype} weights`, y as Float32Array, ref.data, 1e-5, 1e-4);
  }
}

async function checkPreprocess(): Promise<void> {
  const config = JSON.parse(await (await fetch(new URL('model/vision_tower/preprocessor_config.json', FIXTURE))).text());
  const cases: { file: string; kind: string }[] = (await (await fetch(new URL('preprocess.json', PREPROCESS))).json()).cases;
  const golden = await SafetensorsFile.fromSource(await UrlByteSource.open(new URL('preprocess.safetensors', PREPROCESS)));
  try {
    for (const [k, c] of cases.entries()) {
      const bytes = new Uint8Array(await (await fetch(new URL(c.file, PREPROCESS))).arrayBuffer());
      const { pixelValues } = preprocess(await loadImage(bytes), config);
      const info = golden.info(`prep${k}.pixel_values`);
      if (!isFloatDType(info.dtype)) throw new Error(`prep${k}.pixel_values is ${info.dtype}`);
      const expected = toF32(info.dtype, await golden.readBytes(info.name), new Float32Array(pixelValues.length));
      expectClose(`preprocess ${c.file} (${c.kind})`, pixelValues, expected, 1e-6, 0);
    }
  } finally {
    await golden.close();
  }

  // Raw pixels, as a page gets them from a canvas (ImageData, RGBA): the same RGB as decoding the file.
  const png = await (await fetch(new URL('case0.png', FIXTURE))).blob();
  const bitmap = await createImageBitmap(png, { colorSpaceConversion: 'none', premultiplyAlpha: 'none' });
  const canvas = new OffscreenCanvas(bitmap.width, bitmap.height);
  const context = canvas.getContext('2d')!;
  context.drawImage(bitmap, 0, 0);
  const imageData = context.getImageData(0, 0, bitmap.width, bitmap.height);
  const fromCanvas = await loadImage({ width: imageData.width, height: imageData.height, data: imageData.data, channels: 4 });
  const fromBytes = await loadImage(new Uint8Array(await png.arrayBuffer()));
  let differ = 0;
  for (let i = 0; i < fromBytes.data.length; i++) if (fromCanvas.data[i] !== fromBytes.data[i]) differ++;
  if (differ) throw new Error(`case0.png: canvas ImageData differs from the decoded PNG in ${differ} of ${fromBytes.data.length} samples`);
  log(`ok  canvas ImageData of case0.png (${imageData.width}×${imageData.height} RGBA) == decoded PNG pixels`);
}

async function checkModel(gpu: Gpu): Promise<void> {
  const golden = await (await fetch(new URL('golden.json', FIXTURE))).json();

  // The whole-file fallback is only for servers without Range: say which path this run took.
  const probe = await UrlByteSource.open(new URL('model/vision_tower/model.safetensors', FIXTURE));
  log(`ok  server answers Range requests with 206: ${probe.ranged} (${probe.size} bytes)`);
  await probe.close();

  const t0 = performance.now();
  const ckpt = await Checkpoint.openFrom(new UrlFolderReader(new URL('model/', FIXTURE)));
  const model = await ConvLlava.load(ckpt, { gpu, dtype: 'f32', precision: 'f32', maxContext: 160 });
  log(`ok  model loaded over HTTP in ${(performance.now() - t0).toFixed(0)} ms (${ckpt.warnings.length} warnings)`);
  try {
    const png = new Uint8Array(await (await fetch(new URL(golden.cases[0].image, FIXTURE))).arrayBuffer());
    const r = await model.generate({ image: png, prompt: golden.question, maxNewTokens: 12 });
    const want: number[] = golden.cases[0].generated;
    log(`    ids  ${JSON.stringify(r.ids)}`);
    log(`    want ${JSON.stringify(want)}`);
    log(`    text ${JSON.stringify(r.text)}`);
    if (JSON.stringify(r.inputIds) !== JSON.stringify(golden.input_ids)) throw new Error('prompt ids differ from golden.json input_ids');
    if (JSON.stringify(r.ids) !== JSON.stringify(want)) throw new Error('generated ids differ from golden.json cases[0].generated');
    log(`ok  case0.png → 12 greedy ids equal the PyTorch golden ids (prefill ${r.timings.prefill_ms.toFixed(0)} ms)`);
  } finally {
    await model.dispose();
  }
}

async function main(): Promise<void> {
  const result = document.getElementById('result')!;
  let verdict = 'FAIL';
  try {
    log(`navigator.gpu: ${'gpu' in navigator ? 'present' : 'absent'}`);
    const gpu = await Gpu.create();
    const s = gpu.summary;
    log(`adapter: ${s.vendor} / ${s.architecture} (${s.backend}); features: ${s.features.join(', ')}`);
    try {
      await checkKernels(gpu);
      await checkPreprocess();
      await checkModel(gpu);
    } finally {
      gpu.destroy();
    }
    verdict = 'PASS';
  } catch (e) {
    log(`FAIL ${(e as Error).stack ?? e}`);
  }
  log(verdict);
  result.textContent = verdict;
  document.title = `convllava browser smoke: ${verdict}`;
  await fetch('/__report', { method: 'POST', body: lines.join('\n') }).catch(() => {});
}

main();
