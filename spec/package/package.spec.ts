/**
 * The npm package as a user gets it: `npm pack` (prepack builds dist/), the tarball's contents and
 * size, then a fresh scratch project that installs the tarball and
 *   - imports it from plain `.mjs` and runs the shapes model on the bundled PNG and JPEG samples
 *     (the right answers), in the main thread and through the worker engine on a Node worker thread;
 *   - loads it from `.cjs` with require() (Node ≥ 20.19 requires ES modules) and import();
 *   - type-checks a strict TypeScript project (skipLibCheck off) against its .d.ts;
 *   - runs the `convllava` bin without tsx;
 *   - without the optional peer `webgpu`, fails with a message saying to install it.
 * The scratch project's dependencies come from the npm cache (--prefer-offline); `webgpu` and
 * `@types/node` are linked from this checkout (a Node user installs them alongside).
 */
import { expect } from 'chai';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtemp, mkdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

const ROOT = resolve('.');
const MAX_UNPACKED = 24 * 1e6;

interface PackResult {
  filename: string;
  size: number;
  unpackedSize: number;
  files: { path: string; size: number }[];
}

function run(cmd: string, args: string[], cwd: string, env: Record<string, string> = {}): { status: number | null; out: string } {
  const r = spawnSync(cmd, args, { cwd, encoding: 'utf8', env: { ...process.env, XDG_RUNTIME_DIR: process.env.XDG_RUNTIME_DIR ?? '/tmp', ...env }, timeout: 300_000 });
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

describe('npm package (packed tarball in a scratch project)', function () {
  this.timeout(600_000);
  let work: string;
  let app: string;
  let pack: PackResult;

  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'convllava-pack-'));
    // npm pack runs prepack (npm run build → dist/)
    const json = execFileSync('npm', ['pack', '--json', '--pack-destination', work], { cwd: ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
    pack = (JSON.parse(json.slice(json.indexOf('['))) as PackResult[])[0];
    app = join(work, 'app');
    await mkdir(app);
    await writeFile(join(app, 'package.json'), JSON.stringify({ name: 'scratch', private: true, version: '1.0.0' }));
    const install = run('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', join(work, pack.filename)], app);
    expect(install.status, install.out).to.equal(0);
  });

  after(async () => {
    if (work) await rm(work, { recursive: true, force: true });
  });

  it(`holds the library, the CLI and the demo model only, ≤ ${MAX_UNPACKED / 1e6} MB unpacked`, () => {
    const paths = pack.files.map((f) => f.path);
    expect(pack.unpackedSize).to.be.at.most(MAX_UNPACKED);
    for (const p of ['package.json', 'bin/convllava.mjs', 'dist/index.js', 'dist/index.d.ts', 'dist/browser/engine.js', 'dist/browser/worker.js', 'dist/browser/jpeg-turbo.wasm', 'dist/kernels/linear_tiled.wgsl', 'dist/models/convllava-shapes/model.safetensors', 'dist/models/convllava-shapes/vision_tower/model.safetensors', 'dist/models/convllava-shapes/samples/sample2.jpg', 'dist/cli/main.js', 'dist/web/engine.js', 'dist/web/worker.js', 'dist/web/linear_tiled.wgsl']) {
      expect(paths, p).to.include(p);
    }
    const unwanted = paths.filter((p) => /(^|\/)(spec|fixtures|bench\/serve|training|\.ci)\b|golden|\.spec\.|(?<!\.d)\.ts$/.test(p));
    expect(unwanted, 'specs, goldens, TypeScript sources').to.deep.equal([]);
  });

  it('without the optional peer webgpu, a Node import works and loading says to install webgpu', async () => {
    await writeFile(join(app, 'no-webgpu.mjs'), `import { Gpu } from 'convllava';\ntry { await Gpu.create(); console.log('no error'); } catch (e) { console.log(e.message); }\n`);
    const r = run(process.execPath, ['no-webgpu.mjs'], app);
    expect(r.out).to.match(/npm install webgpu/);
    // Now install it as a Node user would (linked from this checkout: same version, no download).
    await symlink(join(ROOT, 'node_modules/webgpu'), join(app, 'node_modules/webgpu'), 'dir');
  });

  it('plain .mjs: the shapes model answers about the bundled PNG and JPEG, in the main thread and on a worker thread', async () => {
    await writeFile(
      join(app, 'ask.mjs'),
      `import { ConvLlava } from 'convllava';
import { WorkerEngine } from 'convllava/worker';
import { fileURLToPath } from 'node:url';
const dir = fileURLToPath(new URL('./', import.meta.resolve('convllava/models/convllava-shapes/config.json')));
const model = await ConvLlava.load(dir);
const png = await model.generate({ image: dir + 'samples/sample1.png', prompt: 'How many shapes are there?' });
await model.dispose();
const engine = await WorkerEngine.createNode();
await engine.load(dir);
const jpg = await engine.generate({ image: dir + 'samples/sample2.jpg', prompt: 'What shape is the yellow one?' });
await engine.dispose();
engine.terminate();
console.log(JSON.stringify({ png: png.text, jpg: jpg.text, tokens: png.visualTokens }));
`,
    );
    const r = run(process.execPath, ['ask.mjs'], app);
    expect(r.status, r.out).to.equal(0);
    const last = r.out.trim().split('\n').filter((l) => l.startsWith('{')).pop() ?? r.out;
    expect(JSON.parse(last)).to.deep.equal({ png: 'Three.', jpg: 'Triangle.', tokens: 16 });
  });

  it('.cjs: require() (Node ≥ 20.19 loads ES modules synchronously) and import() both load it', async () => {
    await writeFile(
      join(app, 'tok.cjs'),
      `const { LlamaTokenizer, imageQuestionIds } = require('convllava');
const ids = imageQuestionIds(new LlamaTokenizer(), 'How many shapes are there?');
import('convllava').then((m) => console.log(JSON.stringify({ image: ids.includes(-200), n: ids.length, same: m.LlamaTokenizer === LlamaTokenizer })));
`,
    );
    const r = run(process.execPath, ['tok.cjs'], app);
    expect(r.status, r.out).to.equal(0);
    const out = JSON.parse(r.out.trim().split('\n').filter((l) => l.startsWith('{')).pop() ?? r.out);
    expect(out).to.include({ image: true, same: true });
    expect(out.n).to.be.above(10);
  });

  it('a strict TypeScript project type-checks against its .d.ts (skipLibCheck off; Node and browser settings)', async () => {
    await mkdir(join(app, 'node_modules/@types'), { recursive: true });
    await symlink(join(ROOT, 'node_modules/@types/node'), join(app, 'node_modules/@types/node'), 'dir');
    const source = `import { ConvLlava, Checkpoint, CachedUrlFolderReader, type GenerateResult, type TokenEvent } from 'convllava';
import { WorkerEngine, type EngineProgress } from 'convllava/worker';
export async function ask(dir: string): Promise<string> {
  const model = await ConvLlava.load(dir, { dtype: 'f16', onProgress: (p) => void p.done });
  const r: GenerateResult = await model.generate({ image: dir + '/samples/sample1.png', prompt: 'How many shapes are there?', onToken: (t: TokenEvent) => void t.text });
  for await (const t of model.stream({ image: new Uint8Array(0), prompt: 'x' })) void t.id;
  await model.dispose();
  return r.text + r.timings.ttft_ms + r.visualTokens;
}
export async function inWorker(url: string): Promise<number> {
  const engine = WorkerEngine.create();
  const reader = await CachedUrlFolderReader.create(url, { onProgress: (p) => void p.loadedAll });
  await Checkpoint.openFrom(reader);
  await engine.load({ url }, { onProgress: (p: EngineProgress) => void p.phase });
  const r = await engine.generate({ image: new Blob([]), prompt: 'Describe the image.', signal: AbortSignal.timeout(1000) });
  return r.ids.length;
}
`;
    await writeFile(join(app, 'consumer.ts'), source);
    for (const [name, options] of [
      ['tsconfig.node.json', { strict: true, noEmit: true, skipLibCheck: false, target: 'ES2022', module: 'NodeNext', moduleResolution: 'NodeNext', lib: ['ES2022', 'DOM'], types: ['node'] }],
      ['tsconfig.bundler.json', { strict: true, noEmit: true, skipLibCheck: false, target: 'ES2022', module: 'ESNext', moduleResolution: 'Bundler', lib: ['ES2022', 'DOM', 'DOM.Iterable'], types: [] }],
    ] as const) {
      await writeFile(join(app, name), JSON.stringify({ compilerOptions: options, files: ['consumer.ts'] }));
      const r = run(process.execPath, [join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', name], app);
      expect(r.out, name).to.equal('');
      expect(r.status, name).to.equal(0);
    }
  });

  it('esbuild bundles it for browsers without options (no Node built-in, no Dawn, no externals needed)', async () => {
    await writeFile(join(app, 'browser.mjs'), `import { ConvLlava } from 'convllava';\nimport { WorkerEngine } from 'convllava/worker';\nconsole.log(ConvLlava, WorkerEngine);\n`);
    const { build } = await import('esbuild');
    const result = await build({ absWorkingDir: app, entryPoints: ['browser.mjs'], bundle: true, splitting: true, format: 'esm', platform: 'browser', outdir: 'out-esbuild', write: false, metafile: true, logLevel: 'silent' });
    const inputs = Object.keys(result.metafile.inputs);
    expect(inputs.some((f) => f.includes('convllava/dist/llm/pipeline.js'))).to.equal(true);
    expect(inputs.filter((f) => /node_modules\/webgpu\//.test(f))).to.deep.equal([]);
    expect(inputs).to.include('node_modules/convllava/dist/browser/jpeg-turbo.js');
  });

  it('the convllava bin runs without tsx', async () => {
    const r = run(join(app, 'node_modules/.bin/convllava'), ['--help'], app);
    expect(r.status, r.out).to.equal(0);
    expect(r.out).to.match(/usage: convllava <command>/);
    const pkg = JSON.parse(await readFile(join(app, 'node_modules/convllava/package.json'), 'utf8'));
    expect(Object.keys(pkg.dependencies)).to.not.include('tsx');
    expect(Object.keys(pkg.dependencies)).to.not.include('webgpu');
  });
});
