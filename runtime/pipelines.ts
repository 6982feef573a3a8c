/**
 * Kernel sources, their bind-group layouts and the compute-pipeline cache. The WGSL of every
 * kernels/<name>.wgsl is loaded once when the device is created (fs in Node, fetch in a browser), so
 * recording a dispatch is synchronous; a pipeline is compiled the first time a kernel + entry point +
 * override constants + binding count is used (or earlier, by `Gpu.precompile`).
 *
 * Layouts are explicit, not 'auto', so that bind groups can be cached and reused (runtime/recorder.ts):
 *   @binding(0)      the params uniform, bound once per arena with a dynamic offset
 *   @binding(1 … n)  storage buffers, read-only or read-write exactly as the WGSL declares them
 * The kinds are read from the source once per kernel (`declaredBindings`). A layout covers the
 * bindings a dispatch passes (an entry point may use fewer than the module declares).
 *
 * Lookups do no string building: variants of a kernel + entry point are compared field by field
 * against the dispatch's constants object (a kernel has a handful of variants).
 */
import { KERNELS, kernelUrl } from '../kernels/index.js';
import { isNode } from './device.js';

/** How a kernel declares one binding. */
export type BindingKind = 'uniform' | 'read-only-storage' | 'storage';

/**
 * The kind of every `@group(0) @binding(i) var<…>` in a WGSL source, by binding number (a sparse
 * array). Two variables on one binding (a vec4 view of the same buffer) must agree.
 */
export function declaredBindings(kernel: string, source: string): BindingKind[] {
  const code = source.replace(/\/\*[\s\S]*?\*\//g, '').replace(/\/\/[^\n]*/g, '');
  const kinds: BindingKind[] = [];
  const decl = /@binding\(\s*(\d+)\s*\)\s*(?:@group\(\s*\d+\s*\)\s*)?var\s*<\s*(uniform|storage)\s*(?:,\s*(read_write|read)\s*)?>/g;
  for (const m of code.matchAll(decl)) {
    const binding = Number(m[1]);
    const kind: BindingKind = m[2] === 'uniform' ? 'uniform' : m[3] === 'read_write' ? 'storage' : 'read-only-storage';
    const earlier = kinds[binding];
    if (earlier && earlier !== kind) {
      throw new Error(`kernel '${kernel}': @binding(${binding}) is declared both as ${earlier} and as ${kind}; views of one binding must agree`);
    }
    kinds[binding] = kind;
  }
  return kinds;
}

/** A bind-group layout and the pipeline layout made from it. `id` keys the bind-group cache. */
export interface LayoutRecord {
  id: number;
  bindGroupLayout: GPUBindGroupLayout;
  pipelineLayout: GPUPipelineLayout;
}

/** One compiled pipeline: a kernel's entry point with its override constants and layout. */
export interface PipelineVariant {
  kernel: string;
  entry: string;
  constants: Readonly<Record<string, number>>;
  constantCount: number;
  layout: LayoutRecord;
  pipeline: GPUComputePipeline;
}

interface KernelRecord {
  source: string;
  module: GPUShaderModule | null;
  kinds: BindingKind[] | null;
  /** By binding shape: index 2·storageBindings + (params ? 1 : 0). */
  layouts: LayoutRecord[];
  /** By entry point. */
  variants: Map<string, PipelineVariant[]>;
}

const NO_CONSTANTS: Readonly<Record<string, number>> = Object.freeze({});

function sameConstants(v: PipelineVariant, constants: Readonly<Record<string, number>>): boolean {
  let n = 0;
  for (const key in constants) {
    if (v.constants[key] !== constants[key]) return false;
    n++;
  }
  return n === v.constantCount;
}

export class KernelLibrary {
  private kernels = new Map<string, KernelRecord>();
  private nextLayoutId = 1;
  /** Compute pipelines created since the device was opened. */
  pipelineCount = 0;

  constructor(private readonly device: GPUDevice) {}

  /** Reads every kernel listed in kernels/index.ts. */
  async loadAll(): Promise<void> {
    const node = isNode();
    await Promise.all(
      KERNELS.map(async (name) => {
        const url = kernelUrl(name);
        const text = node ? await (await import('node:fs/promises')).readFile(url, 'utf8') : await (await fetch(url)).text();
        this.define(name, text);
      }),
    );
  }

  /** Registers WGSL source under a name (kernels outside kernels/, tests); replaces an earlier one and its pipelines. */
  define(name: string, source: string): void {
    this.kernels.set(name, { source, module: null, kinds: null, layouts: [], variants: new Map() });
  }

  /** The WGSL source registered for `name`. */
  source(name: string): string {
    return this.record(name).source;
  }

  private record(name: string): KernelRecord {
    const rec = this.kernels.get(name);
    if (rec === undefined) {
      throw new Error(`unknown kernel '${name}': add kernels/${name}.wgsl and list it in kernels/index.ts`);
    }
    return rec;
  }

  /** The bind-group layout for `storageBindings` storage buffers, after a params uniform if `params`. */
  private layout(kernel: string, rec: KernelRecord, params: boolean, storageBindings: number): LayoutRecord {
    const index = 2 * storageBindings + (params ? 1 : 0);
    const known = rec.layouts[index];
    if (known) return known;
    const kinds = (rec.kinds ??= declaredBindings(kernel, rec.source));
    const entries: GPUBindGroupLayoutEntry[] = [];
    if (params) {
      if (kinds[0] !== undefined && kinds[0] !== 'uniform') {
        throw new Error(`kernel '${kernel}': the dispatch passes params for @binding(0), but the WGSL declares it as ${kinds[0]}`);
      }
      entries.push({ binding: 0, visibility: GPUShaderStage.COMPUTE, buffer: { type: 'uniform', hasDynamicOffset: true } });
    }
    for (let b = 1; b <= storageBindings; b++) {
      // A binding the WGSL does not declare is unused by the shader: read-only is the harmless choice.
      entries.push({ binding: b, visibility: GPUShaderStage.COMPUTE, buffer: { type: kinds[b] ?? 'read-only-storage' } });
    }
    const label = `${kernel} layout (${params ? 'params + ' : ''}${storageBindings} storage)`;
    const bindGroupLayout = this.device.createBindGroupLayout({ entries, label });
    const record: LayoutRecord = {
      id: this.nextLayoutId++,
      bindGroupLayout,
      pipelineLayout: this.device.createPipelineLayout({ bindGroupLayouts: [bindGroupLayout], label }),
    };
    rec.layouts[index] = record;
    return record;
  }

  /**
   * The pipeline for kernel + entry point + override constants, laid out for a dispatch with
   * (`params` ? a params uniform : none) and `storageBindings` storage buffers; compiled on first use.
   */
  resolve(kernel: string, entry: string, constants: Readonly<Record<string, number>> | undefined, params: boolean, storageBindings: number): PipelineVariant {
    const rec = this.record(kernel);
    const c = constants ?? NO_CONSTANTS;
    let list = rec.variants.get(entry);
    if (list) {
      const layout = rec.layouts[2 * storageBindings + (params ? 1 : 0)];
      for (let i = 0; i < list.length; i++) {
        const v = list[i];
        if (v.layout === layout && sameConstants(v, c)) return v;
      }
    } else {
      rec.variants.set(entry, (list = []));
    }
    const layout = this.layout(kernel, rec, params, storageBindings);
    rec.module ??= this.device.createShaderModule({ code: rec.source, label: kernel });
    const frozen = Object.freeze({ ...c });
    const pipeline = this.device.createComputePipeline({
      layout: layout.pipelineLayout,
      compute: { module: rec.module, entryPoint: entry, constants: frozen },
      label: `${kernel}:${entry}`,
    });
    this.pipelineCount++;
    const variant: PipelineVariant = { kernel, entry, constants: frozen, constantCount: Object.keys(frozen).length, layout, pipeline };
    list.push(variant);
    return variant;
  }

  /** Every pipeline compiled so far: kernel, entry point and override constants (specs, reports). */
  compiled(): { kernel: string; entry: string; constants: Readonly<Record<string, number>> }[] {
    const out: { kernel: string; entry: string; constants: Readonly<Record<string, number>> }[] = [];
    for (const rec of this.kernels.values()) for (const list of rec.variants.values()) for (const v of list) out.push({ kernel: v.kernel, entry: v.entry, constants: v.constants });
    return out;
  }

  /**
   * The pipeline for kernel + entry point + constants laid out for every binding the WGSL declares
   * (a params uniform at 0 if declared, storage buffers 1 … the highest declared).
   */
  pipeline(kernel: string, entry = 'main', constants: Record<string, number> = {}): GPUComputePipeline {
    const rec = this.record(kernel);
    const kinds = (rec.kinds ??= declaredBindings(kernel, rec.source));
    return this.resolve(kernel, entry, constants, kinds[0] === 'uniform', Math.max(0, kinds.length - 1)).pipeline;
  }
}
