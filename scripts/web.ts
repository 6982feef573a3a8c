/**
 * The web app: `npm run web` builds it into dist-web/ and serves it on http://127.0.0.1:8080/;
 * `npm run build:web` only builds (static files: host dist-web/ anywhere, e.g. GitHub Pages).
 *
 *   tsx scripts/web.ts [--build] [--port N] [--out DIR]
 *
 * esbuild bundles two entry points for browsers: web/app.ts (the page) and browser/worker.ts (the
 * Web Worker that holds the model). Beside them: the page, its CSS, the WGSL kernels and the JPEG
 * wasm (both fetched relative to the bundle) and the embedded shapes model with its samples
 * (models/convllava-shapes/, the page's default model). The same Node-only check as the library
 * bundle: neither entry reaches a Node built-in or Dawn through static imports.
 */
import { build } from 'esbuild';
import { copyFile, cp, mkdir, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { pathToFileURL } from 'node:url';
import { NODE_ONLY, ROOT, staticChunkNodeImports, staticNodeImports } from './build-browser.js';
import { serve } from './serve.js';

const MODEL_FILES = ['config.json', 'generation_config.json', 'model.safetensors', 'vision_tower', 'samples'];

export async function buildWeb(outdir = join(ROOT, 'dist-web')): Promise<string> {
  await rm(outdir, { recursive: true, force: true });
  await mkdir(outdir, { recursive: true });
  const result = await build({
    absWorkingDir: ROOT,
    entryPoints: { app: 'web/app.ts', worker: 'browser/worker.ts' },
    bundle: true,
    splitting: true,
    format: 'esm',
    platform: 'browser',
    target: 'es2022',
    outdir,
    sourcemap: true,
    metafile: true,
    logLevel: 'silent',
    external: NODE_ONLY,
    alias: { '@cwasm/jpeg-turbo': './browser/jpeg-turbo.ts' },
  });
  const rel = (p: string) => p.replace(/\\/g, '/');
  const outRel = rel(join(outdir).slice(ROOT.length + 1));
  const bad = [
    ...staticNodeImports(result.metafile, 'web/app.ts'),
    ...staticNodeImports(result.metafile, 'browser/worker.ts'),
    ...(outdir.startsWith(ROOT) ? [...staticChunkNodeImports(result.metafile, `${outRel}/app.js`), ...staticChunkNodeImports(result.metafile, `${outRel}/worker.js`)] : []),
  ];
  if (bad.length) throw new Error(`the web app reaches Node-only modules through static imports:\n  ${bad.join('\n  ')}`);
  for (const f of ['index.html', 'app.css']) await copyFile(join(ROOT, 'web', f), join(outdir, f));
  const kernels = (await readdir(join(ROOT, 'kernels'))).filter((f) => f.endsWith('.wgsl'));
  await Promise.all(kernels.map((k) => copyFile(join(ROOT, 'kernels', k), join(outdir, k))));
  await copyFile(join(ROOT, 'node_modules/@cwasm/jpeg-turbo/jpeg-turbo.wasm'), join(outdir, 'jpeg-turbo.wasm'));
  const model = join(outdir, 'models/convllava-shapes');
  await mkdir(model, { recursive: true });
  for (const f of MODEL_FILES) await cp(join(ROOT, 'models/convllava-shapes', f), join(model, f), { recursive: true });
  return outdir;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { build: { type: 'boolean', default: false }, port: { type: 'string', default: '8080' }, out: { type: 'string' } },
  });
  const out = await buildWeb(values.out ? join(process.cwd(), values.out) : undefined);
  console.log(`built the web app into ${out}`);
  if (values.build) return;
  const { url } = await serve({ root: out, port: Number(values.port) });
  console.log(`LISTENING ${url}\nopen it in a browser with WebGPU (Ctrl-C stops)`);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((e) => {
    console.error((e as Error).message);
    process.exit(1);
  });
}
