/**
 * Constants that must be written twice. STYLE wants every tuning knob to be a WGSL `override` set
 * from TS, but a register (function-space) array or a uniform array needs a size that is a WGSL
 * `const`, so these few are copied by hand into the ops. This spec reads the kernel sources and
 * fails if a copy drifts (a larger TS value would make the kernel silently skip work).
 */
import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import { kernelUrl } from '../../kernels/index.js';
import { PREFILL_MAX_DPT, PREFILL_MAX_KPT } from '../../ops/attention.js';
import { ROW_ELEMS_PER_THREAD } from '../../ops/chunks.js';
import { MATVEC_MAX_M, TILED_MAX_LOADS } from '../../ops/linear.js';
import { ROPE_MAX_HALF } from '../../ops/rope.js';

/** The value of `const NAME: u32 = V;` in kernels/<kernel>.wgsl. */
function wgslConst(kernel: string, name: string): number {
  const source = readFileSync(kernelUrl(kernel), 'utf8');
  const match = new RegExp(`^const ${name}: u32 = (\\d+)u?;`, 'm').exec(source);
  if (!match) throw new Error(`kernels/${kernel}.wgsl has no 'const ${name}: u32 = …;'`);
  return Number(match[1]);
}

describe('constants shared by a kernel and its op', () => {
  const pairs: [string, string, string, number][] = [
    ['linear_matvec', 'MAX_M', 'ops/linear.ts MATVEC_MAX_M', MATVEC_MAX_M],
    ['qkv_rope', 'MAX_M', 'ops/linear.ts MATVEC_MAX_M', MATVEC_MAX_M],
    ['gate_up_swiglu', 'MAX_M', 'ops/linear.ts MATVEC_MAX_M', MATVEC_MAX_M],
    ['linear_tiled', 'MAX_LOADS', 'ops/linear.ts TILED_MAX_LOADS', TILED_MAX_LOADS],
    ['attention_prefill', 'MAX_DPT', 'ops/attention.ts PREFILL_MAX_DPT', PREFILL_MAX_DPT],
    ['attention_prefill', 'MAX_KPT', 'ops/attention.ts PREFILL_MAX_KPT', PREFILL_MAX_KPT],
    ['layer_norm', 'CACHED', 'ops/chunks.ts ROW_ELEMS_PER_THREAD', ROW_ELEMS_PER_THREAD],
    ['rms_norm', 'CACHED', 'ops/chunks.ts ROW_ELEMS_PER_THREAD', ROW_ELEMS_PER_THREAD],
  ];
  for (const [kernel, name, copy, value] of pairs) {
    it(`${kernel}.wgsl ${name} = ${copy}`, () => expect(wgslConst(kernel, name)).to.equal(value));
  }

  for (const kernel of ['rope', 'qkv_rope']) {
    it(`${kernel}.wgsl invFreq holds ops/rope.ts ROPE_MAX_HALF values`, () => {
      const source = readFileSync(kernelUrl(kernel), 'utf8');
      const match = /invFreq: array<vec4f, (\d+)>/.exec(source);
      expect(Number(match?.[1]) * 4).to.equal(ROPE_MAX_HALF);
    });
  }
});
