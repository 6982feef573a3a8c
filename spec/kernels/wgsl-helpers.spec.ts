/**
 * WGSL helpers that several kernels carry. Each kernel file stays a complete shader a reader can
 * open on its own (no include step, no templating), so the helpers are copied — and this spec is
 * what keeps the copies equal: it cuts each named `fn` out of every kernel that has it and compares
 * their code (comments and white space aside).
 */
import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import { kernelUrl } from '../../kernels/index.js';

/** The code of `fn name(…) { … }` in kernels/<kernel>.wgsl, comments stripped and white space folded. */
function wgslFunction(kernel: string, name: string): string {
  const source = readFileSync(kernelUrl(kernel), 'utf8');
  const start = source.search(new RegExp(`^fn ${name}\\(`, 'm'));
  if (start < 0) throw new Error(`kernels/${kernel}.wgsl has no 'fn ${name}('`);
  const end = source.indexOf('\n}', start);
  return source
    .slice(start, end + 2)
    .replace(/\/\/.*$/gm, '')
    .replace(/\/\*[\s\S]*?\*\//g, '')
    .replace(/\s+/g, ' ')
    .trim();
}

const SHARED: { helper: string; kernels: string[] }[] = [
  { helper: 'weight', kernels: ['linear_matvec', 'linear_tiled', 'dwconv7', 'patch_conv'] }, // f16 / f32 weight element
  { helper: 'weight_at', kernels: ['linear_matvec', 'linear_tiled'] }, //                       q8 / q4 dequantization
  { helper: 'erfc_pos', kernels: ['linear_matvec', 'linear_tiled'] }, //                         the fused GELU's erfc
  { helper: 'gelu', kernels: ['linear_matvec', 'linear_tiled'] },
  { helper: 'store', kernels: ['linear_matvec', 'linear_tiled'] }, //                           the epilogue
  { helper: 'sincos_accurate', kernels: ['rope', 'qkv_rope'] }, //                              RoPE's angles
  { helper: 'weight8', kernels: ['qkv_rope', 'gate_up_swiglu'] }, //                          fused decode weight loads
  { helper: 'weight_at_of', kernels: ['qkv_rope', 'gate_up_swiglu'] }, //                     fused decode q8 / q4 elements
  { helper: 'segment_sum', kernels: ['layer_norm', 'rms_norm'] }, //                              row reductions
  { helper: 'nanOrPosInf', kernels: ['argmax', 'sample_scan'] }, //                             the NON_FINITE flag
  { helper: 'globalRange', kernels: ['sample_histogram', 'sample_gather'] }, //                   sampling's bins
  { helper: 'binOf', kernels: ['sample_histogram', 'sample_gather'] },
];

describe('shared WGSL helpers are identical in every kernel that carries them', () => {
  for (const { helper, kernels } of SHARED) {
    it(`fn ${helper}: ${kernels.join(', ')}`, () => {
      const [first, ...rest] = kernels.map((k) => wgslFunction(k, helper));
      expect(first.length, 'found a body').to.be.greaterThan(20);
      rest.forEach((code, i) => expect(code, `kernels/${kernels[i + 1]}.wgsl vs kernels/${kernels[0]}.wgsl`).to.equal(first));
    });
  }

  it('the check can fail: a changed constant is noticed', () => {
    const a = wgslFunction('linear_tiled', 'erfc_pos');
    expect(a.replace('0.17087277', '0.17087278')).to.not.equal(wgslFunction('linear_matvec', 'erfc_pos'));
  });
});
