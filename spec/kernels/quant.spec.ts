import { expect } from 'chai';
import ndarray from 'ndarray';
import { embedding, embeddingRef } from '../../ops/embedding.js';
import { gateUpSwiglu, gateUpSwigluRef } from '../../ops/gateUpSwiglu.js';
import { qkvRope, qkvRopeRef, type QkvRopeOptions } from '../../ops/qkvRope.js';
import { linear, linearRef, linearWithBindingLimit, uploadWeight } from '../../ops/linear.js';
import { f16BitsToF32, f32ToF16Bits } from '../../runtime/half.js';
import { dequantize, maxLevel, packQuantized, quantBytes, quantize, quantLayout, roundTrip, type QuantDType } from '../../runtime/quant.js';
import { f16Ref } from '../../ops/precision.js';
import { expectClose, F16_TOL, randomArray, randomNd, rng, testGpu, uploadAt } from '../helpers.js';

const DTYPES: QuantDType[] = ['q8', 'q4'];

/** Values on the q grid: j · s per group of 32, s an f16, with the top level present in each group. */
function onGrid(N: number, K: number, dtype: QuantDType, seed: number): Float32Array {
  const r = rng(seed);
  const level = maxLevel(dtype);
  const out = new Float32Array(N * K);
  for (let n = 0; n < N; n++) {
    for (let k0 = 0; k0 < K; k0 += 32) {
      const s = f16BitsToF32(f32ToF16Bits(0.001 + r() * 0.05));
      for (let k = k0; k < Math.min(K, k0 + 32); k++) out[n * K + k] = (Math.floor(r() * (2 * level + 1)) - level) * s;
      out[n * K + k0] = (r() < 0.5 ? -level : level) * s;
    }
  }
  return out;
}

describe('quantized weights (runtime/quant.ts formats; q8/q4 in linear and embedding)', () => {
  describe('CPU quantize / dequantize', () => {
    for (const dtype of DTYPES) {
      for (const [N, K] of [[1, 32], [3, 64], [2, 33], [4, 7], [5, 100]]) {
        it(`${dtype} [${N}, ${K}]: values on the grid round-trip exactly`, () => {
          const v = onGrid(N, K, dtype, N * 100 + K);
          expect(Array.from(roundTrip(v, N, K, dtype))).to.deep.equal(Array.from(v));
        });
        it(`${dtype} [${N}, ${K}]: random values are within half a step of their group's scale`, () => {
          const v = randomArray(N * K, K + 7);
          const q = quantize(v, N, K, dtype);
          const back = dequantize(q);
          const { groups } = quantLayout(dtype, K);
          for (let n = 0; n < N; n++) {
            for (let k = 0; k < K; k++) {
              const g = Math.floor(k / 32);
              let amax = 0;
              for (let j = g * 32; j < Math.min(K, g * 32 + 32); j++) amax = Math.max(amax, Math.abs(v[n * K + j]));
              const scale = f16BitsToF32(q.scales[n * groups + g]);
              expect(scale).to.be.closeTo(amax / maxLevel(dtype), (amax / maxLevel(dtype)) * 1e-3); // f16 rounding
              expect(Math.abs(back[n * K + k] - v[n * K + k])).to.be.at.most(scale * 0.5 + 1e-7 + amax * 1e-3, `(${n}, ${k})`);
            }
          }
        });
      }
    }

    it('ragged K: the last group scales by its own values and the padding holds the code of 0', () => {
      // K = 40: group 1 covers k = 32 … 39 only; a big value in group 0 must not change group 1's scale.
      const v = new Float32Array(40);
      v[0] = 100;
      for (let k = 32; k < 40; k++) v[k] = (k - 35) * 0.25; // amax 1
      for (const dtype of DTYPES) {
        const q = quantize(v, 1, 40, dtype);
        expect(f16BitsToF32(q.scales[1])).to.equal(f16BitsToF32(f32ToF16Bits(1 / maxLevel(dtype))));
        expect(q.codes.length).to.equal(64);
        for (let k = 40; k < 64; k++) expect(q.codes[k]).to.equal(dtype === 'q4' ? 8 : 0);
        expect(dequantize(q).length).to.equal(40);
      }
    });

    it('all-zero groups quantize to zero scale and zero values; non-finite weights are refused', () => {
      for (const dtype of DTYPES) {
        expect(Array.from(roundTrip(new Float32Array(64), 2, 32, dtype))).to.deep.equal(new Array(64).fill(0));
        expect(() => quantize([1, NaN], 1, 2, dtype)).to.throw(/row 0, column 1 is NaN/);
      }
    });

    it('packs q8 bytes and q4 nibbles little-endian, scales after the codes, rows of whole 16-byte units', () => {
      const q8 = quantize([1, -1, 127 / 127, 0.5], 1, 4, 'q8'); // scale 1/127 → codes 127, −127, 127, 64
      const w8 = packQuantized(q8);
      const L8 = quantLayout('q8', 4);
      expect(L8).to.deep.equal({ groups: 1, dataWords: 8, scaleWord: 8, rowWords: 12 });
      expect(w8[0]).to.equal((127 | (0x81 << 8) | (127 << 16) | (64 << 24)) >>> 0);
      expect(w8[8] & 0xffff).to.equal(f32ToF16Bits(1 / 127));
      const q4 = quantize([7, -7, 0, 1, 2, 3, 4, 5, 6], 1, 9, 'q4'); // scale 1 → stored 15, 1, 8, 9, 10, …
      const w4 = packQuantized(q4);
      expect(w4[0]).to.equal((15 | (1 << 4) | (8 << 8) | (9 << 12) | (10 << 16) | (11 << 20) | (12 << 24) | (13 << 28)) >>> 0);
      expect(w4[1]).to.equal((14 | (8 << 4) | (8 << 8) | (8 << 12) | (8 << 16) | (8 << 20) | (8 << 24) | (8 << 28)) >>> 0);
      expect(quantBytes('q4', [3, 4096])).to.equal(3 * (512 + 64) * 4);
      expect(quantLayout('q4', 4096).rowWords % 4).to.equal(0);
    });
  });

  describe('linear with quantized w against the reference on the dequantized weights', () => {
    const cases: [number, number, number][] = [
      [1, 7, 64], //     matvec, vec4
      [3, 33, 96], //    matvec, vec4, ragged N
      [1, 9, 40], //     matvec, ragged K (main)
      [8, 5, 7], //      matvec, K < 32
      [13, 70, 64], //   tiled
      [65, 33, 100], //  tiled, ragged K
    ];
    for (const dtype of DTYPES) {
      for (const [M, N, K] of cases) {
        for (const epilogue of [false, true]) {
          it(`${dtype}: x [${M}, ${K}] · w [${N}, ${K}]ᵀ${epilogue ? ' + bias, gelu, + residual' : ''}`, async () => {
            const gpu = await testGpu();
            const x = randomNd([M, K], M + K);
            const wv = randomArray(N * K, N * K);
            const wq = ndarray(roundTrip(wv, N, K, dtype), [N, K]);
            const b = epilogue ? randomNd([N], 5) : undefined;
            const r = epilogue ? randomNd([M, N], 6) : undefined;
            const tx = gpu.upload([M, K], x.data);
            const tw = uploadWeight(gpu, wv, [N, K], dtype);
            const tb = b && gpu.upload([N], b.data);
            const tr = r && gpu.upload([M, N], r.data);
            const opts = epilogue ? { activation: 'gelu' as const } : {};
            const y = linear(gpu, tx, tw, tb, { ...opts, residual: tr });
            const ref = linearRef(x, wq, b, { ...opts, residual: r });
            expectClose(await y.read(), ref.data, { atol: 1e-5 * Math.sqrt(K), rtol: 1e-5 }, `linear ${dtype} [${M}, ${N}, ${K}]`);
            [tx, tw, tb, tr, y].forEach((t) => t?.dispose());
          });
        }
      }
      it(`${dtype}: w bound in row slices under a small binding limit (matvec and tiled)`, async () => {
        const gpu = await testGpu();
        const [N, K] = [96, 256];
        const wv = randomArray(N * K, 9);
        const wq = ndarray(roundTrip(wv, N, K, dtype), [N, K]);
        const tw = uploadWeight(gpu, wv, [N, K], dtype);
        const rowBytes = quantLayout(dtype, K).rowWords * 4;
        for (const M of [1, 20]) {
          const x = randomNd([M, K], M);
          const tx = gpu.upload([M, K], x.data);
          const y = linearWithBindingLimit(gpu, tx, tw, undefined, {}, 8192); // w in slices of 16 (q8) or 48 (q4) rows; x and y in 8-row slices at M = 20
          expect(rowBytes * N).to.be.above(8192);
          expectClose(await y.read(), linearRef(x, wq).data, { atol: 1e-4, rtol: 1e-5 }, `sliced ${dtype} M=${M}`);
          [tx, y].forEach((t) => t.dispose());
        }
        tw.dispose();
      });

      // f16 activations: x (and the residual) at f16, y at f16 or f32 (outDtype), against the
      // reference on the f16 values of x, rounded once (f16Ref) for an f16 y.
      for (const [M, N, K] of cases) {
        for (const out of ['f16', 'f32'] as const) {
          it(`${dtype}, f16 x → ${out} y: x [${M}, ${K}] · w [${N}, ${K}]ᵀ + bias, gelu, + residual`, async function () {
            const gpu = await testGpu();
            if (!gpu.hasF16) this.skip();
            const x = uploadAt(gpu, randomNd([M, K], M + K), 'f16');
            const wv = randomArray(N * K, N * K);
            const wq = ndarray(roundTrip(wv, N, K, dtype), [N, K]);
            const b = randomNd([N], 5);
            const r = uploadAt(gpu, randomNd([M, N], 6), out);
            const tw = uploadWeight(gpu, wv, [N, K], dtype);
            const tb = gpu.upload([N], b.data);
            const y = linear(gpu, x.t, tw, tb, { activation: 'gelu', residual: r.t, outDtype: out });
            expect(y.dtype).to.equal(out);
            const ref = (out === 'f16' ? f16Ref(linearRef) : linearRef)(x.nd, wq, b, { activation: 'gelu', residual: r.nd });
            const tol = out === 'f16' ? { atol: 1e-5 * Math.sqrt(K) + F16_TOL.atol, rtol: F16_TOL.rtol } : { atol: 1e-5 * Math.sqrt(K), rtol: 1e-5 };
            expectClose(await y.read(), ref.data, tol, `linear ${dtype} f16 x → ${out} [${M}, ${N}, ${K}]`);
            [x.t, tw, tb, r.t, y].forEach((t) => t.dispose());
          });
        }
      }
      it(`${dtype}, f16 x: w, x and y bound in slices under a small binding limit (matvec and tiled)`, async function () {
        const gpu = await testGpu();
        if (!gpu.hasF16) this.skip();
        const [N, K] = [96, 256];
        const wv = randomArray(N * K, 9);
        const wq = ndarray(roundTrip(wv, N, K, dtype), [N, K]);
        const tw = uploadWeight(gpu, wv, [N, K], dtype);
        for (const M of [1, 40]) {
          const x = uploadAt(gpu, randomNd([M, K], M), 'f16');
          const before = gpu.dispatchCount;
          const y = linearWithBindingLimit(gpu, x.t, tw, undefined, {}, 8192); // w in slices of 16 (q8) or 48 (q4) rows; x and y in 16-row slices at M = 40
          expect(gpu.dispatchCount - before).to.be.greaterThan(M === 1 ? 1 : 3);
          expectClose(await y.read(), f16Ref(linearRef)(x.nd, wq).data, { atol: 1e-4, rtol: F16_TOL.rtol }, `sliced ${dtype} f16 x, M=${M}`);
          [x.t, y].forEach((t) => t.dispose());
        }
        tw.dispose();
      });
    }
  });

  describe('fused decode kernels (qkv_rope, gate_up_swiglu) with quantized weights: one dispatch, against the dequantized reference', () => {
    for (const dtype of DTYPES) {
      for (const [M, K] of [[1, 64], [3, 40], [8, 7]]) {
        it(`qkv_rope ${dtype}: x [${M}, ${K}], 4 q / 2 kv heads of 8, position 9`, async () => {
          const gpu = await testGpu();
          const o: QkvRopeOptions = { heads: 4, kvHeads: 2, headDim: 8, theta: 10000, eps: 1e-5, position: 9 };
          const x = randomNd([M, K], M);
          const gamma = randomNd([K], 2, 0.5, 1.5);
          const raw = [32, 16, 16].map((N, j) => ({ N, v: randomArray(N * K, 3 + j) }));
          const deq = raw.map(({ N, v }) => ndarray(roundTrip(v, N, K, dtype), [N, K]));
          const caches = [0, 1].map((j) => randomNd([M + 12, 16], 7 + j));
          const t = {
            gamma: gpu.upload([K], gamma.data),
            wq: uploadWeight(gpu, raw[0].v, [32, K], dtype),
            wk: uploadWeight(gpu, raw[1].v, [16, K], dtype),
            wv: uploadWeight(gpu, raw[2].v, [16, K], dtype),
            kCache: gpu.upload(caches[0].shape, caches[0].data),
            vCache: gpu.upload(caches[1].shape, caches[1].data),
          };
          const tx = gpu.upload([M, K], x.data);
          const before = gpu.dispatchCount;
          const q = qkvRope(gpu, tx, t, o);
          expect(gpu.dispatchCount - before, 'one dispatch').to.equal(1);
          const ref = qkvRopeRef(x, { gamma, wq: deq[0], wk: deq[1], wv: deq[2], kCache: caches[0], vCache: caches[1] }, o);
          const tol = { atol: 1e-5 * Math.sqrt(K), rtol: 1e-4 };
          expectClose((await q.read()) as Float32Array, ref.data, tol, 'q');
          expectClose((await t.kCache.read()) as Float32Array, caches[0].data, tol, 'key cache');
          expectClose((await t.vCache.read()) as Float32Array, caches[1].data, tol, 'value cache');
          [q, tx, ...Object.values(t)].forEach((u) => u.dispose());
        });
        it(`gate_up_swiglu ${dtype}: x [${M}, ${K}] → [${M}, 24]`, async () => {
          const gpu = await testGpu();
          const N = 24;
          const x = randomNd([M, K], 11 + M);
          const gamma = randomNd([K], 12, 0.5, 1.5);
          const [g, u] = [13, 14].map((seed) => randomArray(N * K, seed));
          const tx = gpu.upload([M, K], x.data);
          const tg = gpu.upload([K], gamma.data);
          const [wg, wu] = [g, u].map((v) => uploadWeight(gpu, v, [N, K], dtype));
          const before = gpu.dispatchCount;
          const y = gateUpSwiglu(gpu, tx, tg, 1e-6, wg, wu);
          expect(gpu.dispatchCount - before, 'one dispatch').to.equal(1);
          const ref = gateUpSwigluRef(x, gamma, 1e-6, ndarray(roundTrip(g, N, K, dtype), [N, K]), ndarray(roundTrip(u, N, K, dtype), [N, K]));
          expectClose((await y.read()) as Float32Array, ref.data, { atol: 1e-5 * Math.sqrt(K), rtol: 1e-4 }, 'y');
          [tx, tg, wg, wu, y].forEach((t) => t.dispose());
        });
      }
    }
  });

  describe('embedding from quantized rows', () => {
    for (const dtype of DTYPES) {
      for (const [V, D] of [[50, 64], [30, 45]]) {
        it(`${dtype} table [${V}, ${D}] equals the dequantized rows exactly (ids ≥ V give zeros)`, async () => {
          const gpu = await testGpu();
          const tv = randomArray(V * D, V + D);
          const table = ndarray(roundTrip(tv, V, D, dtype), [V, D]);
          const ids = [0, V - 1, 3, 3, 17, V + 2];
          const tt = uploadWeight(gpu, tv, [V, D], dtype);
          const ti = gpu.upload([ids.length], ids, 'u32');
          const y = embedding(gpu, ti, tt);
          expectClose(await y.read(), embeddingRef(ids, table).data, { atol: 0, rtol: 0 });
          [tt, ti, y].forEach((t) => t.dispose());
        });
      }
    }
  });
});
