/**
 * Device creation: finds a WebGPU implementation (navigator.gpu, else Dawn in Node), an adapter, and
 * requests a device with the adapter's real limits and the optional features the kernels can use
 * (`shader-f16`, `subgroups`, `timestamp-query`). Dawn on NVIDIA/Vulkan hides `shader-f16` unless
 * the instance is made with unsafe toggles: then the instance is made again with them.
 */

export interface GpuOptions {
  /** Prefer a specific WebGPU implementation (tests, browsers). Default: navigator.gpu, else Dawn. */
  gpu?: GPU;
  /** Ask for 'high-performance' (default) or 'low-power' adapters. */
  powerPreference?: GPUPowerPreference;
  /** Do not request `shader-f16` even if available. */
  disableF16?: boolean;
  /** Do not request `subgroups` even if the adapter has it (specs compare both reduction paths). */
  disableSubgroups?: boolean;
}

export interface AdapterSummary {
  vendor: string;
  architecture: string;
  device: string;
  description: string;
  backend: string;
  features: string[];
}

export interface OpenedDevice {
  /** Held for the context's lifetime: if Dawn's GPU object is garbage-collected, its instance is torn down under the device. */
  instance: GPU;
  adapter: GPUAdapter;
  device: GPUDevice;
  summary: AdapterSummary;
}

export function isNode(): boolean {
  return typeof process !== 'undefined' && !!process.versions?.node;
}

/** Acquires an adapter and device with the adapter's real limits and useful optional features. */
export async function openDevice(options: GpuOptions = {}): Promise<OpenedDevice> {
  let gpu = options.gpu ?? (globalThis.navigator as Navigator | undefined)?.gpu;
  const node = isNode();
  let nodeGPU: ((toggles: string[]) => GPU) | undefined;
  if (!gpu && node) {
    nodeGPU = (await importDawn()).nodeGPU;
    gpu = nodeGPU([]);
  }
  if (!gpu) {
    throw new Error('WebGPU is not available: this browser has no navigator.gpu. Use a WebGPU-capable browser.');
  }
  let adapter = await gpu.requestAdapter({ powerPreference: options.powerPreference ?? 'high-performance' });
  if (!adapter) throw new Error(noAdapterMessage(node));
  // Dawn on NVIDIA/Vulkan hides shader-f16 unless the instance is created with these toggles.
  if (nodeGPU && !adapter.features.has('shader-f16') && /nvidia/i.test(adapter.info.vendor)) {
    gpu = nodeGPU(['enable-dawn-features=allow_unsafe_apis,vulkan_enable_f16_on_nvidia']);
    adapter = (await gpu.requestAdapter({ powerPreference: options.powerPreference ?? 'high-performance' })) ?? adapter;
  }

  const wanted = ['shader-f16', 'subgroups', 'timestamp-query'].filter(
    (f) => adapter!.features.has(f) && !(f === 'shader-f16' && options.disableF16) && !(f === 'subgroups' && options.disableSubgroups),
  ) as GPUFeatureName[];
  const l = adapter.limits;
  const requiredLimits: Record<string, number> = {
    maxBufferSize: l.maxBufferSize,
    maxStorageBufferBindingSize: l.maxStorageBufferBindingSize,
    maxComputeWorkgroupStorageSize: l.maxComputeWorkgroupStorageSize,
    maxComputeInvocationsPerWorkgroup: l.maxComputeInvocationsPerWorkgroup,
    maxComputeWorkgroupSizeX: l.maxComputeWorkgroupSizeX,
    maxComputeWorkgroupSizeY: l.maxComputeWorkgroupSizeY,
    maxComputeWorkgroupsPerDimension: l.maxComputeWorkgroupsPerDimension,
    maxStorageBuffersPerShaderStage: l.maxStorageBuffersPerShaderStage,
  };
  const device = await adapter.requestDevice({ requiredFeatures: wanted, requiredLimits });
  const info = adapter.info;
  const summary: AdapterSummary = {
    vendor: info.vendor,
    architecture: info.architecture,
    device: info.device,
    description: info.description,
    backend: node ? 'dawn' : 'browser',
    features: [...device.features].map(String).sort(),
  };
  return { instance: gpu, adapter, device, summary };
}

/**
 * runtime/node.ts, which imports Dawn (npm `webgpu`, an optional peer dependency: browser-only users
 * do not install its 130 MB of binaries). Missing → one message saying what to install.
 */
async function importDawn(): Promise<typeof import('./node.js')> {
  try {
    return await import('./node.js');
  } catch (e) {
    const err = e as { code?: string; message?: string };
    if (err.code === 'ERR_MODULE_NOT_FOUND' && /'webgpu'/.test(err.message ?? '')) {
      throw new Error("WebGPU is not available in Node: convllava runs on Dawn's bindings, the npm package 'webgpu' (an optional peer dependency). Install it: npm install webgpu");
    }
    throw e;
  }
}

function noAdapterMessage(node: boolean): string {
  if (!node) return 'WebGPU found no adapter (GPU blocked or unsupported). Try another browser or enable WebGPU.';
  return [
    'WebGPU (Dawn) found no adapter: no Vulkan driver that Dawn accepts is installed.',
    'On a headless Linux box, install Mesa\'s software Vulkan driver (lavapipe) ≥ 23, e.g. on Debian 12:',
    '  echo "deb http://deb.debian.org/debian bookworm-backports main" > /etc/apt/sources.list.d/backports.list',
    '  apt-get update && apt-get install -t bookworm-backports mesa-vulkan-drivers',
    'or run `npm run setup`, which does this (as root) after asking. Debian 12\'s stock Mesa 22.3 is too old.',
  ].join('\n');
}
