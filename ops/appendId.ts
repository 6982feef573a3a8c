/**
 * appendId — write a token id that lives on the GPU into an id list on the GPU.   kernels/append_id.wgsl
 *
 * The pipelined decode loop (llm/generate.ts) appends each chosen token to the answer's id buffer
 * (the sampler's `recentIds`) on the GPU, so the next step's repetition penalty sees it before the
 * CPU has read the id back. Unlike most ops it writes into an existing tensor (`ids`) and returns
 * nothing.
 */
import { params, type Gpu } from '../runtime/gpu.js';
import type { Tensor } from '../runtime/tensor.js';
import { assertDType, check } from './util.js';

/** ids[at] = token[0]; token u32 [1] (argmax / sample's result), ids u32 [M], 0 ≤ at < M. */
export function appendId(gpu: Gpu, token: Tensor, ids: Tensor, at: number): void {
  checkAppend('appendId', token.size, ids.size, at);
  assertDType('appendId', token, 'token', 'u32');
  assertDType('appendId', ids, 'ids', 'u32');
  gpu.dispatch({ kernel: 'append_id', params: params(['u32', at]), bindings: [token, ids], workgroups: [1] });
}

/** CPU reference: the same write into a Uint32Array. */
export function appendIdRef(token: ArrayLike<number>, ids: Uint32Array, at: number): void {
  checkAppend('appendIdRef', token.length, ids.length, at);
  ids[at] = token[0];
}

function checkAppend(op: string, tokenSize: number, idsSize: number, at: number): void {
  check(op, tokenSize === 1, `token must hold one id, got ${tokenSize} elements`);
  check(op, Number.isInteger(at) && at >= 0 && at < idsSize, `at ${at} must be an integer in 0 … ${idsSize - 1} (ids has ${idsSize} elements)`);
}
