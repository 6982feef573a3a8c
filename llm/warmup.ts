/**
 * Nothing compiles during generation: every pipeline the decode loop can need is compiled when the
 * model loads. On a GPU a pipeline compiles in milliseconds to seconds; in the middle of a stream of
 * tokens that is a visible stall (attention_decode's chunk size, a pipeline constant, changes at
 * 1025 and 2049 cached keys for Vicuna-7B).
 *
 * How: `Gpu.precompile` runs ops in compile-only mode (each dispatch compiles its pipeline; nothing
 * is recorded or run), so the warm-up is the decode loop's own code, not a second list of kernels
 * and constants that could drift from it:
 *   - one decode step (embed the id tensor → every layer → lm_head) at one cache length per
 *     attention_decode chunk variant (ops/attention.ts `decodeVariantKeyCounts`);
 *   - every way `GpuSteps.pick` (llm/generate.ts) chooses a token: `PICK_MODES` below.
 * A new fused kernel in a decode step is covered without a change here; a new way of picking a
 * token is one more entry in PICK_MODES.
 */
import { argmax } from '../ops/argmax.js';
import { decodeVariantKeyCounts } from '../ops/attention.js';
import { sample, type SampleOptions } from '../ops/sample.js';
import type { Gpu } from '../runtime/gpu.js';
import type { Tensor } from '../runtime/tensor.js';
import type { LlamaDecoder } from './llama.js';

/** The token choices the decode loop makes (temperature 0 and no penalty is argmax). */
export const PICK_MODES: (Omit<SampleOptions, 'recentIds'> & { penalised?: boolean })[] = [
  { temperature: 0, topK: 0, topP: 1, repetitionPenalty: 1, u: 0 }, //                        greedy
  { temperature: 0, topK: 0, topP: 1, repetitionPenalty: 1.1, u: 0, penalised: true }, //      greedy, repetition penalty
  { temperature: 0.7, topK: 0, topP: 1, repetitionPenalty: 1, u: 0.5 }, //                    temperature
  { temperature: 0.7, topK: 40, topP: 1, repetitionPenalty: 1, u: 0.5 }, //                    top-k
  { temperature: 0.7, topK: 0, topP: 0.9, repetitionPenalty: 1, u: 0.5 }, //                    top-p
  { temperature: 0.7, topK: 40, topP: 0.9, repetitionPenalty: 1, u: 0.5 }, //                  top-k, top-p
  { temperature: 0.7, topK: 40, topP: 0.9, repetitionPenalty: 1.1, u: 0.5, penalised: true }, // all of it
];

/** Picks a token from `logits` [1, vocab] the way mode `m` of the decode loop does (u32 [1] or [1, 1]). */
export function pickAs(gpu: Gpu, logits: Tensor, m: (typeof PICK_MODES)[number]): Tensor {
  if (m.temperature === 0 && m.repetitionPenalty === 1) return argmax(gpu, logits);
  const recentIds = m.penalised ? gpu.empty([1], 'u32') : undefined;
  try {
    return sample(gpu, logits, { ...m, recentIds });
  } finally {
    recentIds?.dispose();
  }
}

/**
 * Compiles every pipeline a decode step and a token pick can use with this decoder's KV cache size.
 * Nothing is recorded and the cache is untouched. Resolves to the number of pipelines created.
 */
export async function precompileDecode(decoder: LlamaDecoder): Promise<number> {
  const gpu = decoder.gpu;
  const { heads, maxContext } = decoder.dims;
  // Decode steps have one query: rows = heads. Keys = the cache length after the step's token.
  const keyCounts = decodeVariantKeyCounts(heads, maxContext);
  const saved = decoder.length;
  return gpu.precompile(() => {
    try {
      for (const keys of keyCounts) {
        decoder.length = keys - 1; // the step writes position keys − 1 (not in compile-only mode)
        const id = gpu.empty([1], 'u32');
        const x = decoder.embed(id); //                  [1, H]
        id.dispose();
        const hidden = decoder.forward(x);
        x.dispose();
        const logits = decoder.logits(hidden); //        [1, vocab]
        hidden.dispose();
        for (const m of PICK_MODES) pickAs(gpu, logits, m).dispose();
        logits.dispose();
      }
    } finally {
      decoder.length = saved;
    }
  });
}
