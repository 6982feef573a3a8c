/**
 * @cwasm/jpeg-turbo for browsers. The npm module reads its .wasm with fs (Node only); package.json's
 * "browser" field points bundlers here instead. Same wasm (libjpeg-turbo, so pixels stay identical
 * to PIL's), same `decode(bytes) → { width, height, data: RGBA }` (as a promise), but the wasm is
 * fetched from `jpeg-turbo.wasm` next to this module (`new URL(…, import.meta.url)`, which bundlers
 * follow; npm run build and build:browser copy it there) and compiled on the first call:
 * convnext/decode.ts imports this module lazily, on the first JPEG. No top-level await, so bundlers
 * may put it in a classic (iife) worker, as Vite does by default.
 */

interface JpegTurboExports {
  memory: WebAssembly.Memory;
  malloc(bytes: number): number;
  free(pointer: number): void;
  tjInitDecompress(): number;
  tjDecompressHeader3(handle: number, src: number, size: number, width: number, height: number, subsamp: number, colorspace: number): number;
  tjDecompress2(handle: number, src: number, size: number, dst: number, width: number, pitch: number, height: number, format: number, flags: number): number;
  tjDestroy(handle: number): number;
}

/** libjpeg-turbo's TJPF_RGBA pixel format. */
const TJPF_RGBA = 7;

const WASM_URL = new URL('./jpeg-turbo.wasm', import.meta.url);

// The module was built for WASI but needs none of it; these stubs are the npm module's own.
const unsupported = (name: string) => () => {
  throw new Error(`Syscall ${name} not implemented`);
};
const imports = {
  env: {
    setjmp: () => 0,
    longjmp: () => {
      throw new Error('Not implemented');
    },
  },
  wasi_snapshot_preview1: {
    environ_sizes_get: () => 0,
    environ_get: unsupported('environ_get'),
    proc_exit: unsupported('proc_exit'),
    fd_close: unsupported('fd_close'),
    fd_seek: unsupported('fd_seek'),
    fd_write: unsupported('fd_write'),
  },
};

let instance: Promise<JpegTurboExports> | null = null;

async function loadWasm(): Promise<WebAssembly.Instance> {
  const response = await fetch(WASM_URL);
  if (!response.ok) {
    throw new Error(`JPEG decoder: ${WASM_URL} gave HTTP ${response.status}; copy node_modules/@cwasm/jpeg-turbo/jpeg-turbo.wasm next to the bundle`);
  }
  const { instance } = await WebAssembly.instantiate(await response.arrayBuffer(), imports);
  return instance;
}

/** Decodes a baseline / progressive JPEG to RGBA (the npm module's `decode`, step for step). */
export async function decode(input: Uint8Array): Promise<{ width: number; height: number; data: Uint8ClampedArray }> {
  instance ??= loadWasm().then((wasm) => wasm.exports as unknown as JpegTurboExports);
  const lib = await instance.catch((e) => {
    instance = null; // a failed fetch is retried on the next JPEG
    throw e;
  });
  const inputPointer = lib.malloc(input.byteLength);
  new Uint8Array(lib.memory.buffer, inputPointer, input.byteLength).set(input);
  const handle = lib.tjInitDecompress();
  if (handle === 0) {
    lib.free(inputPointer);
    throw new Error('Failed to allocate decompressor');
  }
  try {
    const meta = lib.malloc(16);
    const headerStatus = lib.tjDecompressHeader3(handle, inputPointer, input.byteLength, meta, meta + 4, meta + 8, meta + 12);
    const [width, height] = new Uint32Array(lib.memory.buffer, meta, 2);
    lib.free(meta);
    if (headerStatus !== 0) throw new Error('Failed to decode JPEG header');
    const outputSize = width * height * 4;
    const outputPointer = lib.malloc(outputSize);
    try {
      const status = lib.tjDecompress2(handle, inputPointer, input.byteLength, outputPointer, width, width * 4, height, TJPF_RGBA, 0);
      if (status !== 0) throw new Error('Failed to decode JPEG data');
      const data = new Uint8ClampedArray(outputSize);
      data.set(new Uint8Array(lib.memory.buffer, outputPointer, outputSize));
      return { width, height, data };
    } finally {
      lib.free(outputPointer);
    }
  } finally {
    lib.free(inputPointer);
    lib.tjDestroy(handle);
  }
}
