/**
 * Bundles browser/entry.ts for browsers into dist-browser/ (npm run build:browser), with the kernel
 * sources beside the bundle (the runtime fetches `new URL('<kernel>.wgsl', import.meta.url)`).
 *
 * Node-only code stays out of the browser's path: esbuild honours package.json's "browser" field
 * (pngjs → its browser build, @cwasm/jpeg-turbo → browser/jpeg-turbo.ts, which fetches the wasm
 * copied here; `buffer` → the npm polyfill); Node built-ins and Dawn (`webgpu`) are
 * external and may only be reached through dynamic imports behind a Node check (runtime/node.ts,
 * weights/node-folder.ts, fs in preprocess). With code splitting, those modules land in chunks the
 * browser never fetches. `checkBrowserBundle` proves it from esbuild's metafile: no module that the
 * entry reaches through static imports imports a Node built-in or Dawn.
 */
import { build, type Metafile } from 'esbuild';
import { builtinModules } from 'node:module';
import { copyFile, mkdir, readdir, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
/**
 * Modules a browser cannot load: Node's built-ins (with and without `node:`) and Dawn's bindings.
 * Bare `buffer` is not among them: in a browser build it is the npm polyfill (a dependency).
 */
export const NODE_ONLY = [...builtinModules.filter((m) => m !== 'buffer'), ...builtinModules.map((m) => `node:${m}`), 'webgpu'];

export interface BrowserBuild {
  metafile: Metafile;
  /** Output files (paths relative to ROOT). */
  outputs: string[];
}

/** Bundles `entry` (relative to ROOT) for platform 'browser'. `write: false` only checks. */
export async function bundleForBrowser(entry = 'browser/entry.ts', outdir = 'dist-browser', write = true): Promise<BrowserBuild> {
  const result = await build({
    absWorkingDir: ROOT,
    entryPoints: [entry],
    bundle: true,
    splitting: true,
    format: 'esm',
    platform: 'browser',
    target: 'es2022',
    outdir,
    sourcemap: write,
    write,
    metafile: true,
    logLevel: 'silent',
    external: NODE_ONLY,
    // package.json's "browser" field names the compiled loader (dist/, for the published package);
    // bundling the sources, take its source.
    alias: { '@cwasm/jpeg-turbo': './browser/jpeg-turbo.ts' },
  });
  return { metafile: result.metafile, outputs: Object.keys(result.metafile.outputs) };
}

function isNodeOnly(path: string): boolean {
  return path === 'webgpu' || path.startsWith('node:') || builtinModules.includes(path) || builtinModules.includes(path.split('/')[0]);
}

/**
 * Every static import chain from `entry` (a metafile input path) that ends in a Node-only module,
 * as 'a.ts → b.ts → node:fs' strings. Empty means a browser never loads Node code.
 */
export function staticNodeImports(metafile: Metafile, entry: string): string[] {
  const found: string[] = [];
  const via = new Map<string, string>([[entry, entry]]);
  const queue = [entry];
  while (queue.length) {
    const file = queue.shift()!;
    for (const imp of metafile.inputs[file]?.imports ?? []) {
      if (imp.kind === 'dynamic-import') continue; // loaded only when that code path runs
      if (imp.external && isNodeOnly(imp.path)) {
        found.push(`${via.get(file)} → ${imp.path}`);
      } else if (!imp.external && !via.has(imp.path)) {
        via.set(imp.path, `${via.get(file)} → ${imp.path}`);
        queue.push(imp.path);
      }
    }
  }
  return found;
}

/** The same check on the output: the entry chunk and every chunk it imports statically. */
export function staticChunkNodeImports(metafile: Metafile, entryChunk: string): string[] {
  const found: string[] = [];
  const seen = new Set([entryChunk]);
  const queue = [entryChunk];
  while (queue.length) {
    const chunk = queue.shift()!;
    for (const imp of metafile.outputs[chunk]?.imports ?? []) {
      if (imp.kind === 'dynamic-import') continue;
      if (imp.external && isNodeOnly(imp.path)) found.push(`${chunk} → ${imp.path}`);
      else if (!imp.external && !seen.has(imp.path)) {
        seen.add(imp.path);
        queue.push(imp.path);
      }
    }
  }
  return found;
}

async function main(): Promise<void> {
  const outdir = join(ROOT, 'dist-browser');
  await rm(outdir, { recursive: true, force: true });
  await mkdir(outdir, { recursive: true });
  const { metafile, outputs } = await bundleForBrowser();
  const bad = [...staticNodeImports(metafile, 'browser/entry.ts'), ...staticChunkNodeImports(metafile, 'dist-browser/entry.js')];
  if (bad.length) throw new Error(`the browser bundle reaches Node-only modules through static imports:\n  ${bad.join('\n  ')}`);
  const kernels = (await readdir(join(ROOT, 'kernels'))).filter((f) => f.endsWith('.wgsl'));
  await Promise.all(kernels.map((k) => copyFile(join(ROOT, 'kernels', k), join(outdir, k))));
  // browser/jpeg-turbo.ts fetches the JPEG decoder's wasm from beside the bundle.
  await copyFile(join(ROOT, 'node_modules/@cwasm/jpeg-turbo/jpeg-turbo.wasm'), join(outdir, 'jpeg-turbo.wasm'));
  const js = outputs.filter((o) => o.endsWith('.js'));
  const bytes = js.reduce((n, o) => n + metafile.outputs[o].bytes, 0);
  console.log(`dist-browser/: ${js.length} JS files (${(bytes / 1024).toFixed(0)} KiB), ${kernels.length} kernels, jpeg-turbo.wasm; entry.js statically reaches no Node module`);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((e) => {
    console.error((e as Error).message);
    process.exit(1);
  });
}
