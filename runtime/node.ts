/**
 * The Node boundary: the only module that imports Dawn (npm `webgpu`). Browsers never load it; they
 * use `navigator.gpu` directly (see gpu.ts).
 */
import { create, globals } from 'webgpu';

let installed = false;

/** Returns Dawn's GPU object, installing WebGPU's globals (GPUBufferUsage, …) once. */
export function nodeGPU(dawnToggles: string[]): GPU {
  if (!installed) {
    Object.assign(globalThis, globals);
    installed = true;
  }
  if (!process.env.XDG_RUNTIME_DIR) process.env.XDG_RUNTIME_DIR = '/tmp';
  return create(dawnToggles);
}
