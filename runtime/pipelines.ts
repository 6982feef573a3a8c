/**
 * Kernel sources and the compute-pipeline cache. The WGSL of every kernels/<name>.wgsl is loaded once
 * when the device is created (fs in Node, fetch in a browser), so recording a dispatch is synchronous;
 * a pipeline is compiled the first time a kernel + entry point + override constants is used.
 */
import { KERNELS, kernelUrl } from '../kernels/index.js';
import { isNode } from './device.js';

export class KernelLibrary {
  private sources = new Map<string, string>();
  private modules = new Map<string, GPUShaderModule>();
  private pipelines = new Map<string, GPUComputePipeline>();

  constructor(private readonly device: GPUDevice) {}

  /** Reads every kernel listed in kernels/index.ts. */
  async loadAll(): Promise<void> {
    const node = isNode();
    await Promise.all(
      KERNELS.map(async (name) => {
        const url = kernelUrl(name);
        const text = node ? await (await import('node:fs/promises')).readFile(url, 'utf8') : await (await fetch(url)).text();
        this.sources.set(name, text);
      }),
    );
  }

  /** Registers WGSL source under a name (kernels outside kernels/, tests). */
  define(name: string, source: string): void {
    this.sources.set(name, source);
  }

  /** The WGSL source registered for `name`. */
  source(name: string): string {
    const src = this.sources.get(name);
    if (src === undefined) {
      throw new Error(`unknown kernel '${name}': add kernels/${name}.wgsl and list it in kernels/index.ts`);
    }
    return src;
  }

  /** Cached compute pipeline for kernel + entry point + override constants. */
  pipeline(kernel: string, entry = 'main', constants: Record<string, number> = {}): GPUComputePipeline {
    const key = `${kernel}:${entry}:${JSON.stringify(constants)}`;
    let p = this.pipelines.get(key);
    if (!p) {
      let module = this.modules.get(kernel);
      if (!module) {
        module = this.device.createShaderModule({ code: this.source(kernel), label: kernel });
        this.modules.set(kernel, module);
      }
      p = this.device.createComputePipeline({
        layout: 'auto',
        compute: { module, entryPoint: entry, constants },
        label: key,
      });
      this.pipelines.set(key, p);
    }
    return p;
  }
}
