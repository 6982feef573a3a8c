import { expect } from 'chai';
import { argmaxRef } from '../../ops/argmax.js';
import { sample, sampleRef, samplingDistribution, type SampleOptions } from '../../ops/sample.js';
import ndarray from 'ndarray';
import { randomArray, rng, testGpu } from '../helpers.js';
import type { Gpu } from '../../runtime/gpu.js';

type RefOptions = Omit<SampleOptions, 'recentIds'> & { recentIds?: number[] };

async function gpuSample(gpu: Gpu, logits: Float32Array, o: RefOptions): Promise<number> {
  const tl = gpu.upload([logits.length], logits);
  const recent = o.recentIds ? gpu.upload([o.recentIds.length], o.recentIds, 'u32') : undefined;
  const token = sample(gpu, tl, { ...o, recentIds: recent });
  expect(token.shape).to.deep.equal([1]);
  const [id] = await token.read();
  [tl, token, recent].forEach((t) => t?.dispose());
  return id;
}

/**
 * True when nudging u by ±δu and topP by ±δp does not change the reference's answer, so f32
 * summation order on the GPU cannot either.
 */
function unambiguous(logits: Float32Array, o: RefOptions, du = 2e-6, dp = 1e-4): boolean {
  const base = sampleRef(logits, o);
  for (const sign of [-1, 1]) {
    const u = Math.min(Math.max(o.u + sign * du, 0), 1 - 1e-9);
    const topP = o.topP >= 1 ? 1 : Math.min(o.topP + sign * dp, 1);
    if (sampleRef(logits, { ...o, u, topP }) !== base) return false;
  }
  return true;
}

describe('sample (kernels/sample.wgsl)', () => {
  const N = 32000;
  const logits = randomArray(N, 11, -4, 4);
  const settings: [string, Omit<RefOptions, 'u'>][] = [
    ['plain softmax', { temperature: 1, topK: 0, topP: 1, repetitionPenalty: 1 }],
    ['top-k 40, T 0.7', { temperature: 0.7, topK: 40, topP: 1, repetitionPenalty: 1 }],
    ['top-p 0.9, T 0.5', { temperature: 0.5, topK: 0, topP: 0.9, repetitionPenalty: 1 }],
    ['top-k 50 + top-p 0.8 + penalty 1.3', { temperature: 0.8, topK: 50, topP: 0.8, repetitionPenalty: 1.3, recentIds: [5, 17, 17, 31999, 400] }],
  ];
  for (const [name, o] of settings) {
    it(`draws the reference's token for seeded u (${name}, N=${N})`, async () => {
      const gpu = await testGpu();
      const draw = rng(name.length);
      let checked = 0;
      for (let k = 0; k < 6; k++) {
        const opts = { ...o, u: draw() };
        if (!unambiguous(logits, opts)) continue;
        expect(await gpuSample(gpu, logits, opts), `u = ${opts.u}`).to.equal(sampleRef(logits, opts));
        checked++;
      }
      expect(checked).to.be.at.least(4);
    });
  }

  it('follows the inverse CDF over the kept tokens in index order (small vocabulary)', async () => {
    const gpu = await testGpu();
    const small = new Float32Array([0.1, 2, -1, 1.5, 0.3, 2.2, -3, 1.9]);
    const o = { temperature: 1, topK: 4, topP: 1, repetitionPenalty: 1 };
    // kept: ids 1, 3, 5, 7; probabilities p = softmax of (2, 1.5, 2.2, 1.9)
    const probs = samplingDistribution(small, o);
    expect(Array.from(probs).map((p, i) => (p > 0 ? i : -1)).filter((i) => i >= 0)).to.deep.equal([1, 3, 5, 7]);
    let cdf = 0;
    for (const id of [1, 3, 5, 7]) {
      const mid = cdf + probs[id] / 2;
      cdf += probs[id];
      expect(await gpuSample(gpu, small, { ...o, u: mid })).to.equal(id);
      expect(sampleRef(small, { ...o, u: mid })).to.equal(id);
    }
  });

  it('top-p keeps the smallest most-probable set with mass ≥ p', () => {
    // probabilities ∝ (e^2, e^1, e^0): 0.665, 0.245, 0.090
    const l = [0, 2, 1];
    const kept = (topP: number) =>
      Array.from(samplingDistribution(l, { temperature: 1, topK: 0, topP, repetitionPenalty: 1 })).map((p) => (p > 0 ? 1 : 0));
    expect(kept(0.5)).to.deep.equal([0, 1, 0]);
    expect(kept(0.7)).to.deep.equal([0, 1, 1]);
    expect(kept(0.95)).to.deep.equal([1, 1, 1]);
  });

  it('topK = 1 and a tiny topP both give the argmax', async () => {
    const gpu = await testGpu();
    const expected = argmaxRef(ndarray(logits, [1, N])).data[0];
    for (const o of [
      { temperature: 1, topK: 1, topP: 1, repetitionPenalty: 1, u: 0.77 },
      { temperature: 1.5, topK: 0, topP: 1e-6, repetitionPenalty: 1, u: 0.31 },
    ]) {
      expect(await gpuSample(gpu, logits, o)).to.equal(expected);
      expect(sampleRef(logits, o)).to.equal(expected);
    }
  });

  it('temperature 0 is greedy, and the repetition penalty can change the winner', async () => {
    const gpu = await testGpu();
    const l = new Float32Array(1000).fill(-1);
    l[5] = 2.0;
    l[9] = 1.5;
    l[20] = -0.5;
    const greedy = { temperature: 0, topK: 0, topP: 1, repetitionPenalty: 1, u: 0.5 };
    expect(await gpuSample(gpu, l, greedy)).to.equal(5);
    // 2.0 / 1.5 = 1.33 < 1.5: token 9 wins (negative logits are multiplied: −1 · 1.5 stays below)
    const penalised = { ...greedy, repetitionPenalty: 1.5, recentIds: [5, 5, 20] };
    expect(await gpuSample(gpu, l, penalised)).to.equal(9);
    expect(sampleRef(l, penalised)).to.equal(9);
    // with sampling on, at a low temperature the penalised distribution still puts ~all mass on 9
    const sampled = { ...penalised, temperature: 0.05, u: 0.5 };
    expect(await gpuSample(gpu, l, sampled)).to.equal(9);
    // a penalty on a negative logit pushes it further down: −0.5 · 3 = −1.5 < −1
    const neg = new Float32Array([-0.5, -1, -1.2]);
    const o = { temperature: 0, topK: 0, topP: 1, repetitionPenalty: 3, recentIds: [0], u: 0 };
    expect(await gpuSample(gpu, neg, o)).to.equal(1);
    expect(sampleRef(neg, o)).to.equal(1);
  });

  it('penalises only the first recentCount ids of a preallocated id buffer', async () => {
    const gpu = await testGpu();
    const l = new Float32Array([2.0, 1.5, 1.0, 0.5]);
    const tl = gpu.upload([4], l);
    const ids = gpu.upload([3], [1, 0, 2], 'u32');
    const o = { temperature: 0, topK: 0, topP: 1, repetitionPenalty: 4, u: 0, recentIds: ids };
    const pick = async (recentCount: number) => {
      const t = sample(gpu, tl, { ...o, recentCount });
      const [id] = await t.read();
      t.dispose();
      return id;
    };
    expect(await pick(1)).to.equal(0); // only id 1 penalised: 2.0 still wins
    expect(await pick(2)).to.equal(2); // ids 1, 0 penalised: (0.5, 0.375, 1.0, 0.5) → id 2
    expect(sampleRef(l, { ...o, recentIds: [1, 0] })).to.equal(2);
    expect(() => sample(gpu, tl, { ...o, recentCount: 4 })).to.throw(/recentCount 4/);
    [tl, ids].forEach((t) => t.dispose());
  });

  it('rejects bad options', async () => {
    const gpu = await testGpu();
    const t = gpu.upload([3], [1, 2, 3]);
    expect(() => sample(gpu, t, { temperature: 1, topK: 0, topP: 1, repetitionPenalty: 1, u: 1 })).to.throw(/u must be in \[0, 1\)/);
    expect(() => sample(gpu, t, { temperature: 1, topK: 0, topP: 0, repetitionPenalty: 1, u: 0 })).to.throw(/topP/);
    t.dispose();
  });
});
