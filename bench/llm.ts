/**
 * A synthetic Vicuna-7B-shaped decoder (LLaMA-2 7B: 32 layers, hidden 4096, MLP 11008, 32 heads,
 * vocab 32000; synthetic/presets.ts) with seeded random f16 weights generated on the GPU
 * (synthetic/checkpoint.ts; no checkpoint, no disk), timed through the same code as real generation:
 *
 *   prefill   P random token ids through every layer at once → last logits → argmax → read back
 *   decode    N steps of generateTokens (greedy): pick on the GPU, read the id, embed it, one step
 *
 *   npm run bench:llm -- [--layers 32] [--prefill 640] [--decode 32] [--runs 3]
 *
 * On lavapipe (no GPU, host RAM) use a few layers: the full model is 13.5 GB of f16 weights.
 * Reported next to H200 reference figures (see README, Benchmarks): PyTorch prefill of 640 tokens 23 ms; transformers'
 * eager decode 16 tok/s; the memory-bandwidth bound for 13.5 GB of f16 weights ≈ 350 tok/s.
 */
import { parseArgs } from 'node:util';
import { Gpu } from '../runtime/gpu.js';
import { argmax } from '../ops/argmax.js';
import { decoderTensors, LlamaDecoder } from '../llm/llama.js';
import { SyntheticWeights, syntheticCheckpoint } from '../synthetic/checkpoint.js';
import { VICUNA_7B } from '../synthetic/presets.js';
import { collect, generateTokens, uniformStream } from '../llm/generate.js';
import { precompileDecode } from '../llm/warmup.js';
import { LlamaTokenizer } from '../llm/tokenizer.js';

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      layers: { type: 'string', default: '32' },
      prefill: { type: 'string', default: '640' },
      decode: { type: 'string', default: '32' },
      runs: { type: 'string', default: '3' },
      seed: { type: 'string', default: '1' },
    },
  });
  const layers = Number(values.layers);
  const prefill = Number(values.prefill);
  const decodeSteps = Number(values.decode);
  const runs = Number(values.runs);
  // Vicuna-7B from the one preset table, with a configurable depth.
  const config = { ...syntheticCheckpoint('convllava-768').config, num_hidden_layers: layers };

  const gpu = await Gpu.create();
  console.log(`device: ${gpu.summary.vendor} ${gpu.summary.architecture} ${gpu.summary.description} (${gpu.summary.backend}); shader-f16 ${gpu.hasF16}`);
  const c = config;
  console.log(
    `model: Vicuna-7B shape, ${layers} of ${VICUNA_7B.layers} layers, hidden ${c.hidden_size}, MLP ${c.intermediate_size}, ` +
      `${c.num_attention_heads} heads, vocab ${c.vocab_size}, f16 weights, f32 KV cache`,
  );

  let t = performance.now();
  const weights = new SyntheticWeights(decoderTensors(config), Number(values.seed));
  const decoder = await LlamaDecoder.load(gpu, weights, config, {
    dtype: 'f16',
    maxContext: prefill + decodeSteps + 1,
    onProgress: (done, total) => {
      if (done === total || done % 16 === 0) process.stderr.write(`\rweights ${done}/${total}`);
    },
  });
  await precompileDecode(decoder); // as ConvLlava.load does
  await gpu.sync();
  const bytes = decoder.bytes;
  process.stderr.write('\n');
  console.log(`weights ${(bytes.weights / 2 ** 30).toFixed(2)} GiB, KV cache ${(bytes.kvCache / 2 ** 20).toFixed(0)} MiB, made + uploaded in ${((performance.now() - t) / 1000).toFixed(1)} s`);

  const u = uniformStream(Number(values.seed));
  const ids = Array.from({ length: prefill }, () => 1 + Math.floor(u() * (config.vocab_size - 1)));
  const tokenizer = new LlamaTokenizer();

  const prefillMs: number[] = [];
  const decodeTokS: number[] = [];
  // Run 0 is a warm-up (pipeline compilation); the others are timed.
  for (let run = 0; run <= runs; run++) {
    decoder.truncate(0);
    t = performance.now();
    const x = decoder.embed(ids); //                    [P, 4096]
    const hidden = decoder.forward(x);
    x.dispose();
    const logits = decoder.lastLogits(hidden); //       [1, 32000]
    hidden.dispose();
    const first = argmax(gpu, logits);
    await first.read();
    first.dispose();
    const ms = performance.now() - t;
    // Decode from the same prompt: re-run the last position's logits through generateTokens.
    decoder.truncate(prefill - 1);
    const lastX = decoder.embed(ids.slice(-1));
    const lastHidden = decoder.forward(lastX);
    lastX.dispose();
    const lastLogits = decoder.logits(lastHidden);
    lastHidden.dispose();
    let atFirst: ReturnType<Gpu['counters']> | null = null;
    const result = await collect(generateTokens(decoder, tokenizer, lastLogits, { maxNewTokens: decodeSteps + 1 }, []), () => {
      atFirst ??= gpu.counters();
    });
    const end = gpu.counters();
    const perToken = (k: 'dispatches' | 'passes' | 'copies' | 'recordMs') => (end[k] - atFirst![k]) / Math.max(1, result.ids.length - 1);
    if (run === 0) {
      console.log(`warm-up: prefill ${ms.toFixed(0)} ms, decode ${result.decodeTokPerS.toFixed(2)} tok/s`);
      continue;
    }
    prefillMs.push(ms);
    decodeTokS.push(result.decodeTokPerS);
    console.log(
      `run ${run}: prefill ${prefill} tokens ${ms.toFixed(0)} ms (${((prefill / ms) * 1000).toFixed(1)} tok/s); decode ${decodeSteps} steps ${result.decodeTokPerS.toFixed(2)} tok/s; ` +
        `per token ${perToken('dispatches').toFixed(1)} dispatches, ${perToken('passes').toFixed(1)} passes, ${perToken('copies').toFixed(1)} copies, ` +
        `${perToken('recordMs').toFixed(2)} ms recording; ${end.pipelines - atFirst!.pipelines} pipelines created after the first token`,
    );
  }
  const p = median(prefillMs);
  const d = median(decodeTokS);
  const scale = VICUNA_7B.layers / layers;
  console.log(
    `median: prefill ${prefill} tokens ${p.toFixed(0)} ms = ${((prefill / p) * 1000).toFixed(1)} tok/s; decode ${d.toFixed(2)} tok/s` +
      (layers < VICUNA_7B.layers ? ` (${layers} layers; ×${scale} layers ≈ ${(p * scale).toFixed(0)} ms prefill, ${(d / scale).toFixed(2)} tok/s decode for ${VICUNA_7B.layers}, ignoring embed/lm_head)` : ''),
  );
  console.log('references (H200, README Benchmarks): PyTorch prefill 640 tokens 23 ms; transformers eager decode 16 tok/s; f16 bandwidth bound ≈ 350 tok/s');
  decoder.dispose();
  gpu.destroy();
}

if (import.meta.url === `file://${process.argv[1]}`) {
  main().catch((e) => {
    console.error(`bench:llm: ${process.env.CONVLLAVA_DEBUG ? (e as Error).stack : (e as Error).message}`);
    process.exitCode = 1;
  });
}
