/**
 * The npm package build (npm run build; `prepack` runs it before npm pack / publish): compiles the
 * library and the CLI to ESM JavaScript + .d.ts in dist/ (tsconfig.build.json), then puts beside the
 * compiled modules the files they load at run time through `new URL(…, import.meta.url)`, so Node,
 * and bundlers that follow that pattern (Vite, webpack, Parcel), find them without configuration:
 *
 *   dist/kernels/*.wgsl                  the WGSL sources (kernels/index.js: kernelUrl)
 *   dist/browser/jpeg-turbo.wasm         the JPEG decoder for browsers (browser/jpeg-turbo.js)
 *   dist/models/convllava-shapes/        the demo's trained model and its samples (cli/demo.js; the web app)
 *
 * and dist/web/: the library already bundled for browsers (esbuild, ESM, its dependencies inside) for
 * a plain `<script type="module">` without a bundler: convllava.js (index.ts), engine.js (the worker
 * engine) and worker.js (its Web Worker), with the kernels and the JPEG wasm beside them.
 *
 * The sources stay the truth in this checkout (tests, tsx); dist/ is git-ignored.
 */
import { build } from 'esbuild';
import { spawnSync } from 'node:child_process';
import { cp, copyFile, mkdir, readdir, rm, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

import { NODE_ONLY } from './build-browser.js';

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const DIST = join(ROOT, 'dist');
/** The shipped model: the weights, configs, model card and sample images (not the training log). */
const MODEL_FILES = ['README.md', 'config.json', 'generation_config.json', 'model.safetensors', 'vision_tower', 'samples'];

async function sizeOf(path: string): Promise<number> {
  const s = await stat(path);
  if (!s.isDirectory()) return s.size;
  let n = 0;
  for (const e of await readdir(path)) n += await sizeOf(join(path, e));
  return n;
}

export async function buildPackage(): Promise<void> {
  await rm(DIST, { recursive: true, force: true });
  const tsc = spawnSync(process.execPath, [join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', join(ROOT, 'tsconfig.build.json')], { stdio: 'inherit' });
  if (tsc.status !== 0) throw new Error(`tsc -p tsconfig.build.json failed (exit ${tsc.status})`);

  const kernels = (await readdir(join(ROOT, 'kernels'))).filter((f) => f.endsWith('.wgsl'));
  await Promise.all(kernels.map((k) => copyFile(join(ROOT, 'kernels', k), join(DIST, 'kernels', k))));
  await copyFile(join(ROOT, 'node_modules/@cwasm/jpeg-turbo/jpeg-turbo.wasm'), join(DIST, 'browser/jpeg-turbo.wasm'));
  const model = join(DIST, 'models/convllava-shapes');
  await mkdir(model, { recursive: true });
  for (const f of MODEL_FILES) await cp(join(ROOT, 'models/convllava-shapes', f), join(model, f), { recursive: true });

  // The browser bundle for pages without a bundler (same Node-only exclusions as build:browser).
  const web = join(DIST, 'web');
  await build({
    absWorkingDir: ROOT,
    entryPoints: { convllava: 'index.ts', engine: 'browser/engine.ts', worker: 'browser/worker.ts' },
    bundle: true,
    splitting: true,
    format: 'esm',
    platform: 'browser',
    target: 'es2022',
    outdir: web,
    minify: true,
    logLevel: 'warning',
    external: NODE_ONLY,
    alias: { '@cwasm/jpeg-turbo': './browser/jpeg-turbo.ts' },
  });
  await Promise.all(kernels.map((k) => copyFile(join(ROOT, 'kernels', k), join(web, k))));
  await copyFile(join(ROOT, 'node_modules/@cwasm/jpeg-turbo/jpeg-turbo.wasm'), join(web, 'jpeg-turbo.wasm'));

  const mib = (n: number) => `${(n / 2 ** 20).toFixed(1)} MiB`;
  console.log(`dist/: ${mib(await sizeOf(DIST))} (${kernels.length} kernels, jpeg-turbo.wasm, models/convllava-shapes ${mib(await sizeOf(model))}, web/ bundle ${mib(await sizeOf(web))})`);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  buildPackage().catch((e) => {
    console.error((e as Error).message);
    process.exit(1);
  });
}
