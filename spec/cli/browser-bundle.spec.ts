/**
 * The library bundles for browsers: esbuild (platform 'browser') builds browser/entry.ts — which
 * imports index.ts, the ops, Checkpoint and the URL reader — and no module reached from it through
 * static imports imports a Node built-in or Dawn. Node-only modules stay reachable, but only through
 * dynamic imports (behind Node checks), so they sit in chunks a browser never fetches.
 * (scripts/browser-smoke.sh runs the bundle in headless Chromium; too heavy for CI.)
 */
import { expect } from 'chai';
import { bundleForBrowser, staticChunkNodeImports, staticNodeImports } from '../../scripts/build-browser.js';
import type { Metafile } from 'esbuild';

describe('browser bundle', () => {
  let metafile: Metafile;

  before(async () => {
    ({ metafile } = await bundleForBrowser('browser/entry.ts', 'dist-browser', false));
  });

  it('statically reaches no Node built-in and not Dawn, in the sources and in the output chunks', () => {
    expect(staticNodeImports(metafile, 'browser/entry.ts')).to.deep.equal([]);
    expect(staticChunkNodeImports(metafile, 'dist-browser/entry.js')).to.deep.equal([]);
  });

  it('really contains the model: the library entry, Checkpoint, the URL reader, the tokenizer, PNG and JPEG decoders', () => {
    const inputs = Object.keys(metafile.inputs);
    for (const file of ['index.ts', 'llm/pipeline.ts', 'weights/checkpoint.ts', 'weights/url-source.ts', 'runtime/gpu.ts', 'convnext/decode.ts']) {
      expect(inputs, file).to.include(file);
    }
    expect(inputs.some((f) => f.includes('node_modules/llama-tokenizer-js/')), 'llama-tokenizer-js bundled').to.equal(true);
    expect(inputs.some((f) => f.includes('node_modules/pngjs/browser.js')), 'pngjs mapped to its browser build').to.equal(true);
    expect(inputs.some((f) => f.includes('node_modules/buffer/')), 'the buffer polyfill').to.equal(true);
    // JPEG: the browser loader of the same wasm replaces the npm module (which reads it with fs).
    expect(inputs).to.include('browser/jpeg-turbo.ts');
    expect(inputs.some((f) => f.includes('node_modules/@cwasm/jpeg-turbo/')), '@cwasm/jpeg-turbo index.js').to.equal(false);
  });

  it('the check can fail: Node-only modules are in the graph, behind dynamic imports', () => {
    // Dawn and fs are imported statically by their boundary modules…
    const importsOf = (file: string) => (metafile.inputs[file]?.imports ?? []).map((i) => `${i.kind} ${i.path}`);
    expect(importsOf('runtime/node.ts')).to.include('import-statement webgpu');
    expect(importsOf('weights/node-folder.ts')).to.include('import-statement node:fs/promises');
    // …which are reached only dynamically: pretend device.ts imported node.ts statically and the checker objects.
    const tampered: Metafile = JSON.parse(JSON.stringify(metafile));
    for (const imp of tampered.inputs['runtime/device.ts'].imports) if (imp.path === 'runtime/node.ts') imp.kind = 'import-statement';
    expect(staticNodeImports(tampered, 'browser/entry.ts').some((chain) => chain.endsWith('runtime/node.ts → webgpu'))).to.equal(true);
  });
});
