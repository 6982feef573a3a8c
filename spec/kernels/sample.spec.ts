import { expect } from 'chai';
import { argmaxRef } from '../../ops/argmax.js';
import { NON_FINITE_ID } from '../../ops/argmax.js';
import { sample, samplePipelines, sampleRef, samplingDistribution, SAMPLE_PART_HEADER, SAMPLE_PART_RECORD, type SampleOptions } from '../../ops/sample.js';
import { readFileSync } from 'node:fs';
import { kernelUrl } from '../../kernels/index.js';
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

describe('sample (kernels/sample_*.wgsl)', () => {
  const N = 32000;
  const logits = randomArray(N, 11, -4, 4);
  const settings: [string, Omit<RefOptions, 'u'>][] = [
    ['plain softmax', { temperature: 1, topK: 0, topP: 1, repetitionPenalty: 1 }],
    ['top-k 40, T 0.7', { temperature: 0.7, topK: 40, topP: 1, repetitionPenalty: 1 }],
    ['top-p 0.9, T 0.5', { temperature: 0.5, topK: 0, topP: 0.9, repetitionPenalty: 1 }],
    ['top-k 50 + top-p 0.8 + penalty 1.3', { temperature: 0.8, topK: 50, topP: 0.8, repetitionPenalty: 1.3, recentIds: [5, 17, 17, 31999, 400] }],
  ];
  // default chunking (one chunk on lavapipe) and 256-logit chunks (125 workgroups, as on a GPU)
  for (const chunkSize of [undefined, 256]) {
    for (const [name, o] of settings) {
      it(`draws the reference's token for seeded u (${name}, N=${N}, chunkSize ${chunkSize ?? 'default'})`, async () => {
        const gpu = await testGpu();
        const draw = rng(name.length);
        let checked = 0;
        for (let k = 0; k < 6; k++) {
          const opts = { ...o, u: draw(), chunkSize };
          if (!unambiguous(logits, opts)) continue;
          expect(await gpuSample(gpu, logits, opts), `u = ${opts.u}`).to.equal(sampleRef(logits, opts));
          checked++;
        }
        expect(checked).to.be.at.least(4);
      });
    }
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

describe('sample over many workgroups: ragged sizes, ties, −Inf, crowded bins', () => {
  const settings: Omit<RefOptions, 'u'>[] = [
    { temperature: 1, topK: 0, topP: 1, repetitionPenalty: 1 },
    { temperature: 0.8, topK: 3, topP: 1, repetitionPenalty: 1 },
    { temperature: 1.2, topK: 0, topP: 0.5, repetitionPenalty: 1 },
    { temperature: 0.6, topK: 20, topP: 0.7, repetitionPenalty: 1.2, recentIds: [0, 3, 6, 3, 200, 999, 31999] },
    { temperature: 0, topK: 0, topP: 1, repetitionPenalty: 1.5, recentIds: [1, 2, 3] },
  ];

  /** Every unambiguous draw (see `unambiguous`) equals the reference; returns how many were checked. */
  async function expectReference(gpu: Gpu, logits: Float32Array, o: Omit<RefOptions, 'u'>, us: number[], label: string): Promise<number> {
    let checked = 0;
    for (const u of us) {
      const opts = { ...o, u, recentIds: o.recentIds?.filter((id) => id < logits.length) };
      if (!unambiguous(logits, opts)) continue;
      expect(await gpuSample(gpu, logits, opts), `${label} ${JSON.stringify({ ...opts, recentIds: undefined })}`).to.equal(sampleRef(logits, opts));
      checked++;
    }
    return checked;
  }

  for (const n of [1, 7, 33, 255, 257, 1000, 5003, 32001]) {
    it(`matches the reference for random logits of ${n} (one chunk and 256-logit chunks)`, async () => {
      const gpu = await testGpu();
      const logits = randomArray(n, n, -5, 5);
      const draw = rng(n + 1);
      let checked = 0;
      for (const o of settings) {
        for (const chunkSize of [undefined, 256]) {
          checked += await expectReference(gpu, logits, { ...o, chunkSize }, [draw(), draw(), draw()], `n ${n}`);
        }
      }
      expect(checked).to.be.at.least(20);
    });
  }

  it('keeps every token tied with the k-th value and with the top-p threshold', async () => {
    const gpu = await testGpu();
    const n = 3000;
    const r = rng(7);
    const logits = new Float32Array(n).map(() => Math.round(r() * 8) / 2); // 17 values, ~180 tokens each
    // top-k 200 lands inside the ties of the largest value (4: ~90 tokens) or the next (3.5)
    const probs = samplingDistribution(logits, { temperature: 1, topK: 200, topP: 1, repetitionPenalty: 1 });
    const keptK = Array.from(probs).filter((q) => q > 0).length;
    expect(keptK).to.be.greaterThan(200); // the ties are kept
    let checked = 0;
    for (const o of [
      { temperature: 1, topK: 200, topP: 1, repetitionPenalty: 1 },
      { temperature: 1, topK: 0, topP: 0.3, repetitionPenalty: 1 },
      { temperature: 1, topK: 200, topP: 0.6, repetitionPenalty: 1 },
      { temperature: 1, topK: 1, topP: 1, repetitionPenalty: 1 },
    ]) {
      for (const chunkSize of [undefined, 256]) checked += await expectReference(gpu, logits, { ...o, chunkSize }, [0.01, 0.33, 0.5, 0.77, 0.999], 'ties');
    }
    expect(checked).to.be.at.least(30);
  });

  it('all-equal logits: every token is tied, the draw is ⌊u · n⌋ (more candidates than fit in workgroup memory)', async () => {
    const gpu = await testGpu();
    const n = 5000;
    const logits = new Float32Array(n).fill(0.25);
    for (const o of [
      { temperature: 1, topK: 0, topP: 1, repetitionPenalty: 1 },
      { temperature: 0.7, topK: 5, topP: 1, repetitionPenalty: 1 },
      { temperature: 0.7, topK: 0, topP: 0.3, repetitionPenalty: 1 },
      { temperature: 0.7, topK: 5, topP: 0.3, repetitionPenalty: 1 },
    ]) {
      for (const chunkSize of [undefined, 256]) {
        for (const j of [0, 1, 2499, 4998, 4999]) {
          const opts = { ...o, u: (j + 0.5) / n, chunkSize };
          expect(sampleRef(logits, opts)).to.equal(j);
          expect(await gpuSample(gpu, logits, opts), JSON.stringify(opts)).to.equal(j);
        }
      }
    }
  });

  it('a crowded bin of distinct values (the radix select over the candidates) gives the reference token', async () => {
    const gpu = await testGpu();
    // one logit far above ~20000 distinct values in a range of 0.01: they all share one histogram bin
    const n = 20000;
    const r = rng(3);
    const logits = new Float32Array(n).map(() => r() * 0.01);
    logits[777] = 10;
    let checked = 0;
    for (const o of [
      { temperature: 1, topK: 50, topP: 1, repetitionPenalty: 1 },
      { temperature: 1, topK: 0, topP: 0.9, repetitionPenalty: 1 },
      { temperature: 1, topK: 9000, topP: 0.95, repetitionPenalty: 1 },
    ]) {
      for (const chunkSize of [undefined, 256]) checked += await expectReference(gpu, logits, { ...o, chunkSize }, [0.2, 0.61, 0.93], 'crowded');
    }
    expect(checked).to.be.at.least(12);
  });

  it('−Inf logits are masked tokens: never drawn while a finite one is kept; all −Inf gives the reference', async () => {
    const gpu = await testGpu();
    const n = 4000;
    const logits = randomArray(n, 5, -3, 3);
    const r = rng(9);
    for (let i = 0; i < n; i++) if (r() < 0.4) logits[i] = -Infinity;
    const finite = Array.from(logits).filter((v) => v > -Infinity).length;
    let checked = 0;
    for (const o of [
      { temperature: 1, topK: 0, topP: 1, repetitionPenalty: 1 },
      { temperature: 0.9, topK: finite + 100, topP: 1, repetitionPenalty: 1 }, // the k-th value is −Inf
      { temperature: 0.9, topK: 10, topP: 0.8, repetitionPenalty: 1 },
      { temperature: 0, topK: 0, topP: 1, repetitionPenalty: 2, recentIds: [1, 2] },
    ]) {
      for (const chunkSize of [undefined, 256]) {
        for (const u of [0.05, 0.5, 0.95]) {
          const opts = { ...o, u, chunkSize };
          if (!unambiguous(logits, opts)) continue;
          const id = await gpuSample(gpu, logits, opts);
          expect(id, JSON.stringify(opts)).to.equal(sampleRef(logits, opts));
          expect(logits[id]).to.be.greaterThan(-Infinity);
          checked++;
        }
      }
    }
    expect(checked).to.be.at.least(18);
    const masked = new Float32Array(600).fill(-Infinity);
    for (const chunkSize of [undefined, 256]) {
      for (const o of [
        { temperature: 1, topK: 0, topP: 1, repetitionPenalty: 1, u: 0.3, chunkSize },
        { temperature: 1, topK: 5, topP: 0.5, repetitionPenalty: 1, u: 0.3, chunkSize },
        { temperature: 1, topK: 0, topP: 0.5, repetitionPenalty: 1, u: 0.3, chunkSize },
        { temperature: 0, topK: 0, topP: 1, repetitionPenalty: 2, recentIds: [3], u: 0, chunkSize },
      ]) {
        expect(sampleRef(masked, o)).to.equal(599); // no softmax exists: the reference's probabilities are NaN
        expect(await gpuSample(gpu, masked, o), JSON.stringify(o)).to.equal(599);
      }
    }
  });

  it('NaN or +Inf in any chunk gives NON_FINITE_ID', async () => {
    const gpu = await testGpu();
    const logits = randomArray(3000, 4);
    for (const [at, v] of [[2999, Number.NaN], [256, Infinity], [0, Number.NaN]] as const) {
      const l = logits.slice();
      l[at] = v;
      for (const o of [
        { temperature: 1, topK: 0, topP: 1, repetitionPenalty: 1, u: 0.5 },
        { temperature: 0.7, topK: 40, topP: 0.9, repetitionPenalty: 1, u: 0.5 },
      ]) {
        for (const chunkSize of [undefined, 256]) expect(await gpuSample(gpu, l, { ...o, chunkSize }), `${v} at ${at}`).to.equal(NON_FINITE_ID);
      }
    }
  });

  it('records at most 4 dispatches, all from samplePipelines', async () => {
    const gpu = await testGpu();
    const listed = new Set(samplePipelines(gpu).map((p) => `${p.kernel}:${p.entry}:${JSON.stringify(p.constants)}`));
    const tl = gpu.upload([32000], randomArray(32000, 2));
    const recent = gpu.upload([2], [5, 6], 'u32');
    const seen: string[] = [];
    const dispatch = gpu.dispatch.bind(gpu);
    gpu.dispatch = (d) => {
      seen.push(`${d.kernel}:${d.entry ?? 'main'}:${JSON.stringify(d.constants ?? {})}`);
      dispatch(d);
    };
    try {
      for (const chunkSize of [undefined, 256, 1024]) {
        for (const o of [
          { temperature: 0, topK: 0, topP: 1, repetitionPenalty: 1 },
          { temperature: 0, topK: 0, topP: 1, repetitionPenalty: 1.3, recentIds: recent },
          { temperature: 1, topK: 0, topP: 1, repetitionPenalty: 1 },
          { temperature: 0.7, topK: 40, topP: 1, repetitionPenalty: 1 },
          { temperature: 0.7, topK: 0, topP: 0.9, repetitionPenalty: 1 },
          { temperature: 0.7, topK: 40, topP: 0.9, repetitionPenalty: 1.1, recentIds: recent },
        ]) {
          seen.length = 0;
          const t = sample(gpu, tl, { ...o, u: 0.4, chunkSize });
          expect(seen.length, JSON.stringify(o)).to.be.within(1, o.temperature === 0 && o.repetitionPenalty === 1 ? 2 : 4);
          for (const key of seen) expect(listed.has(key), `${key} is not in samplePipelines`).to.equal(true);
          (await t.read(), t.dispose());
        }
      }
    } finally {
      gpu.dispatch = dispatch;
      [tl, recent].forEach((t) => t.dispose());
    }
  });

  it('refuses a chunk size that is not a multiple of 256 or makes more than 256 chunks', async () => {
    const gpu = await testGpu();
    const t = gpu.upload([70000], new Float32Array(70000));
    const o = { temperature: 1, topK: 0, topP: 1, repetitionPenalty: 1, u: 0 };
    expect(() => sample(gpu, t, { ...o, chunkSize: 100 })).to.throw(/multiple of 256/);
    expect(() => sample(gpu, t, { ...o, chunkSize: 256 })).to.throw(/274 chunks, over 256/);
    t.dispose();
  });

  it('the part buffer layout is the kernels\' (HEADER, RECORD)', () => {
    for (const kernel of ['sample_scan', 'sample_histogram', 'sample_gather', 'sample_draw']) {
      const source = readFileSync(kernelUrl(kernel), 'utf8');
      expect(Number(/^const HEADER: u32 = (\d+)u;/m.exec(source)?.[1]), kernel).to.equal(SAMPLE_PART_HEADER);
      expect(Number(/^const RECORD: u32 = (\d+)u;/m.exec(source)?.[1]), kernel).to.equal(SAMPLE_PART_RECORD);
    }
  });
});
