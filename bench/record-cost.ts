/**
 * The CPU cost of recording a decode step, per dispatch:
 *
 *   node --expose-gc --import tsx bench/record-cost.ts [--preset tiny] [--layers L] [--steps 200] [--warmup 20]
 *
 * Loads a synthetic preset's decoder (seeded weights generated on the GPU), then runs greedy decode
 * steps the way the decode loop does (embed the id tensor → every layer → lm_head → argmax) and
 * times, on the CPU clock, only the recording of each step: from the embed call until argmax has
 * returned, before anything is submitted. The step is then read back (submitted and waited for)
 * outside that time. JS record µs per dispatch = record time / dispatches recorded (`gpu.dispatchCount`);
 * it includes the ops' own JS (argument checks, tensors, tidy). Also printed: the time inside
 * `gpu.dispatch` alone per call (median and mean), by wrapping it.
 *
 * With --expose-gc the garbage left by waiting for the GPU (Dawn's Node bindings poll while a read
 * is pending) is collected between steps, outside the timed recording; without it, those GC pauses
 * fall into the next step's first dispatch and dominate the mean on a small model.
 *
 * It uses only APIs that the commit before the recording work (61e996e) also has, so the same
 * script measures both side by side; where the Gpu has `recordMs` (the time inside `dispatch`
 * alone) and bind-group statistics it prints them too.
 */
import { parseArgs } from 'node:util';
import { Gpu } from '../runtime/gpu.js';
import { argmax } from '../ops/argmax.js';
import { decoderTensors, LlamaDecoder } from '../llm/llama.js';
import { SyntheticWeights, syntheticCheckpoint } from '../synthetic/checkpoint.js';

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      preset: { type: 'string', default: 'tiny' },
      layers: { type: 'string' },
      steps: { type: 'string', default: '200' },
      warmup: { type: 'string', default: '20' },
    },
  });
  const steps = Number(values.steps);
  const warmup = Number(values.warmup);
  const ckpt = syntheticCheckpoint(values.preset);
  const config = values.layers ? { ...ckpt.config, num_hidden_layers: Number(values.layers) } : ckpt.config;
  const gpu = await Gpu.create();
  // The preset's decoder, or (--layers) the same layer shapes at another depth, as bench/llm.ts does.
  const weights = values.layers ? new SyntheticWeights(decoderTensors(config), 1) : ckpt.llm;
  const decoder = await LlamaDecoder.load(gpu, weights, config, {
    dtype: 'f16',
    maxContext: warmup + steps + 2,
  });
  await gpu.sync();
  const withCounters = gpu as Gpu & { recordMs?: number; bindGroupStats?: { cached: number; hits: number; misses: number } };

  // Time inside gpu.dispatch alone, per call, by wrapping it (works on both commits).
  const inner: number[] = [];
  const dispatch = gpu.dispatch.bind(gpu);
  let measuring = false;
  gpu.dispatch = (d) => {
    const t = performance.now();
    dispatch(d);
    if (measuring) inner.push(performance.now() - t);
  };
  let id = gpu.upload([1], [1], 'u32');
  let recordMs = 0;
  let dispatches = 0;
  let insideDispatchMs = 0;
  let wallMs = 0;
  for (let s = 0; s < warmup + steps; s++) {
    measuring = s >= warmup;
    const d0 = gpu.dispatchCount;
    const r0 = withCounters.recordMs ?? 0;
    const t0 = performance.now();
    const x = decoder.embed(id); //                [1, H]
    id.dispose();
    const hidden = decoder.forward(x); //          one step through the KV cache
    x.dispose();
    const logits = decoder.logits(hidden); //      [1, vocab]
    hidden.dispose();
    id = argmax(gpu, logits).reshape([1]);
    logits.dispose();
    const t1 = performance.now();
    await id.read(); //                            submits the step and waits for it
    const t2 = performance.now();
    // Waiting for the GPU, Dawn's Node bindings poll and leave garbage (tens of MB per second on
    // lavapipe) whose collection would otherwise land in the next step's first dispatch.
    (globalThis as { gc?: () => void }).gc?.();
    if (s >= warmup) {
      recordMs += t1 - t0;
      wallMs += t2 - t0;
      dispatches += gpu.dispatchCount - d0;
      insideDispatchMs += (withCounters.recordMs ?? 0) - r0;
    }
  }
  id.dispose();
  const perDispatchUs = (recordMs * 1000) / dispatches;
  if (!(globalThis as { gc?: unknown }).gc) console.log('(run with node --expose-gc --import tsx to keep GC pauses out of the recording times)');
  console.log(
    `record-cost: preset ${values.preset}, ${config.num_hidden_layers} layers, ${steps} decode steps after ${warmup} warm-up steps; ` +
      `adapter ${gpu.summary.vendor} ${gpu.summary.architecture} ${gpu.summary.description}`,
  );
  console.log(`  dispatches per step          ${(dispatches / steps).toFixed(1)}`);
  console.log(`  JS record time per step      ${((recordMs * 1000) / steps).toFixed(0)} µs`);
  console.log(`  JS record µs per dispatch    ${perDispatchUs.toFixed(2)}  (ops, tidy and dispatch() together)`);
  inner.sort((a, b) => a - b);
  const median = inner[Math.floor(inner.length / 2)] * 1000;
  const mean = (inner.reduce((a, b) => a + b, 0) * 1000) / inner.length;
  console.log(`  inside gpu.dispatch          median ${median.toFixed(2)} µs, mean ${mean.toFixed(2)} µs per dispatch`);
  if (withCounters.recordMs !== undefined) console.log(`  gpu.recordMs per dispatch    ${((insideDispatchMs * 1000) / dispatches).toFixed(2)} µs`);
  if (withCounters.bindGroupStats) {
    const b = withCounters.bindGroupStats;
    console.log(`  bind groups: ${b.cached} cached, ${b.hits} reused, ${b.misses} created since load`);
  }
  console.log(`  wall time per step           ${(wallMs / steps).toFixed(2)} ms (record + submit + GPU + read back)`);
  console.log(JSON.stringify({ preset: values.preset, layers: config.num_hidden_layers, steps, dispatches_per_step: dispatches / steps, record_us_per_dispatch: perDispatchUs, record_us_per_step: (recordMs * 1000) / steps, dispatch_median_us: median, dispatch_mean_us: mean, wall_ms_per_step: wallMs / steps }));
  decoder.dispose();
  gpu.destroy();
}

main().catch((e) => {
  console.error(`record-cost: ${(e as Error).stack}`);
  process.exitCode = 1;
});
