/**
 * Ownership of intermediates: `tidy(gpu, fn)` runs `fn` and then frees every pooled tensor allocated
 * inside it except those it returns (a Tensor, or Tensors in a returned array / object). A returned
 * reshape view keeps the tensor it views (they share one buffer). Scopes nest: what an inner scope
 * returns belongs to the outer one. On an exception everything allocated inside is freed.
 *
 *   forward(x) {
 *     return tidy(gpu, () => {
 *       const h = norm(x);              // freed when the scope closes
 *       return mlp(h);                  // returned: the caller owns it
 *     });
 *   }
 *
 * Weights (`gpu.weight`, outside the pool) and tensors made before the scope opened are never
 * touched. `fn` must be synchronous: the scope is a stack on the Gpu.
 */
import type { Gpu } from '../runtime/gpu.js';
import { Tensor } from '../runtime/tensor.js';

export function tidy<R>(gpu: Gpu, fn: () => R): R {
  const scope: Tensor[] = [];
  gpu.scopes.push(scope);
  let result: R;
  try {
    result = fn();
  } catch (e) {
    gpu.scopes.pop();
    release(scope, new Set());
    throw e;
  }
  gpu.scopes.pop();
  if (result instanceof Promise) {
    release(scope, new Set());
    throw new Error('tidy: the function must be synchronous (it returned a Promise)');
  }
  const kept = new Set<GPUBuffer>();
  collectBuffers(result, kept);
  const outer = gpu.scopes[gpu.scopes.length - 1];
  for (const t of scope) if (kept.has(t.buffer) && !t.isReleased) outer?.push(t);
  release(scope, kept);
  return result;
}

function release(scope: Tensor[], kept: Set<GPUBuffer>): void {
  for (const t of scope) if (!t.isReleased && !kept.has(t.buffer)) t.dispose();
}

function collectBuffers(value: unknown, into: Set<GPUBuffer>): void {
  if (value instanceof Tensor) into.add(value.buffer);
  else if (Array.isArray(value)) for (const v of value) collectBuffers(v, into);
  else if (value && typeof value === 'object' && Object.getPrototypeOf(value) === Object.prototype) {
    for (const v of Object.values(value)) collectBuffers(v, into);
  }
}
