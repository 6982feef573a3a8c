/**
 * Browser tests in headless Chromium (npm run test:browser; CI runs it after npm test). Needs a
 * Chromium (Debian: apt-get install chromium) driven by playwright-core, a dev dependency.
 *
 *   tsx scripts/browser-test.ts [--only web,smoke,vite,script] [--chromium PATH] [--screenshots DIR]
 *
 *   web     the web app (dist-web/): loads the embedded shapes model (downloaded: progress in bytes),
 *           answers about a dropped PNG and a dropped JPEG — the right answers —, while a long-task
 *           observer watches the page thread from the model's start to the last answer (target: no
 *           task over 100 ms; fails over 250 ms, see FAIL_TASK_MS);
 *           then a reload loads the model from the Cache API (nothing downloaded) and answers about
 *           a picked file; without navigator.gpu the page says there is no WebGPU. Screenshots of
 *           the page land in --screenshots (default out/).
 *   smoke   browser/index.html: kernels vs their CPU references, preprocessing vs PIL, the tiny
 *           model's 12 greedy ids vs PyTorch (the bundle of npm run build:browser).
 *   vite    the packed npm tarball installed into a scratch Vite app (plain JS, no Vite config),
 *           built with `vite build` and served: its worker engine (convllava/worker) answers about a
 *           JPEG, so Vite has found the worker, the kernels and the JPEG wasm by itself.
 *   script  a plain page with `<script type="module">` importing the package's prebuilt browser
 *           bundle (dist/web/engine.js), no bundler: the worker engine answers about a PNG.
 *
 * WebGPU in headless Chromium here (Chromium 156, no GPU): `--enable-unsafe-webgpu` is enough; Dawn
 * picks Chromium's own SwiftShader Vulkan (adapter "google / swiftshader"; Mesa's lavapipe is not
 * used). The page must be a secure context (127.0.0.1 is); about:blank has no navigator.gpu.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { cp, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { chromium, type Browser, type Page } from 'playwright-core';
import { ROOT } from './build-browser.js';
import { serve } from './serve.js';
import { buildPackage } from './build-package.js';
import { buildWeb } from './web.js';

export const CHROMIUM_FLAGS = ['--enable-unsafe-webgpu', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];
/**
 * The page thread must never be blocked > 100 ms by the model. On a 2-core machine running Chromium's
 * software WebGPU (SwiftShader threads compete with the renderer for the cores), an idle page with no
 * model was measured with a 70 ms long task, and a loaded machine (load average 12) gave 55–148 ms
 * tasks during the first encode while the page received no message at all. So: over MAX_TASK_MS is
 * reported as a warning with every task; over FAIL_TASK_MS (a real block, e.g. preprocessing a photo
 * on the page thread: 800 ms) fails. CONVLLAVA_LONG_TASK_FAIL_MS=100 makes the check strict.
 */
const MAX_TASK_MS = 100;
const FAIL_TASK_MS = Number(process.env.CONVLLAVA_LONG_TASK_FAIL_MS ?? 250);

/** Fails over FAIL_TASK_MS; warns over MAX_TASK_MS (see above). */
function checkLongTasks(longest: number, what: string): void {
  check(longest <= FAIL_TASK_MS, `${what}: longest ${longest.toFixed(0)} ms (fails over ${FAIL_TASK_MS} ms)`);
  if (longest > MAX_TASK_MS) console.log(`  WARNING ${what}: longest ${longest.toFixed(0)} ms > ${MAX_TASK_MS} ms (the target; tolerated up to ${FAIL_TASK_MS} ms on a starved CPU)`);
  else console.log(`  within the ${MAX_TASK_MS} ms target: ${what}`);
}

function check(ok: boolean, what: string): void {
  if (!ok) throw new Error(what);
  console.log(`ok  ${what}`);
}

async function waitState(page: Page, states: string[], timeout: number): Promise<string> {
  await page.waitForFunction((s) => s.includes(document.getElementById('status')?.dataset.state ?? ''), states, { timeout });
  return page.$eval('#status', (el) => `${(el as HTMLElement).dataset.state}: ${el.textContent}`);
}

/** Drops `bytes` as a file on the page's drop zone, as a user dragging it from the desktop. */
async function dropFile(page: Page, name: string, type: string, bytes: Buffer): Promise<void> {
  const data = await page.evaluateHandle(
    ({ name, type, b64 }) => {
      const bin = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
      const dt = new DataTransfer();
      dt.items.add(new File([bin], name, { type }));
      return dt;
    },
    { name, type, b64: bytes.toString('base64') },
  );
  await page.dispatchEvent('#drop', 'dragover', { dataTransfer: data });
  await page.dispatchEvent('#drop', 'drop', { dataTransfer: data });
}

async function askAndWait(page: Page, question: string, timeout: number): Promise<{ answer: string; stats: string }> {
  const before = Number((await page.getAttribute('body', 'data-answered')) ?? 0);
  await page.fill('#question', question);
  await page.click('#ask');
  await page.waitForFunction(
    (n) => Number(document.body.dataset.answered ?? 0) > n || document.getElementById('status')?.dataset.state === 'error',
    before,
    { timeout },
  );
  const state = await page.$eval('#status', (el) => `${(el as HTMLElement).dataset.state}: ${el.textContent}`);
  if (state.startsWith('error')) throw new Error(`the page failed: ${state}`);
  return { answer: (await page.textContent('#answer'))!.trim(), stats: (await page.innerText('#stats')).replace(/\n/g, ' ') };
}

async function testWebApp(browser: Browser, shots: string): Promise<void> {
  const out = await buildWeb();
  const server = await serve({ root: out });
  const context = await browser.newContext({ viewport: { width: 1000, height: 1100 } });
  try {
    const page = await context.newPage();
    page.on('console', (m) => m.type() === 'error' && console.log(`    [page] ${m.text()}`));
    page.on('pageerror', (e) => console.log(`    [page error] ${e.message}`));
    await page.goto(server.url);
    const t0: number = await page.evaluate(() => performance.now());
    const state = await waitState(page, ['ready', 'error', 'no-webgpu'], 300_000);
    check(state.startsWith('ready'), `web app loaded the embedded shapes model (${state})`);
    check((await page.getAttribute('body', 'data-model-source')) === 'network', `first visit downloaded it: ${await page.textContent('#load-text')}`);
    const samples = join(ROOT, 'models/convllava-shapes/samples');

    const mark = async (what: string) => console.log(`    ${what} at +${((await page.evaluate(() => performance.now())) - t0).toFixed(0)} ms`);
    await mark('model ready');
    await dropFile(page, 'sample1.png', 'image/png', await readFile(join(samples, 'sample1.png')));
    await mark('PNG dropped');
    const png = await askAndWait(page, 'How many shapes are there?', 300_000);
    check(png.answer === 'Three.', `dropped PNG, "How many shapes are there?" → ${JSON.stringify(png.answer)} (${png.stats})`);
    await page.screenshot({ path: join(shots, 'web-app-png.png'), fullPage: true });

    await mark('PNG answered');
    await dropFile(page, 'sample2.jpg', 'image/jpeg', await readFile(join(samples, 'sample2.jpg')));
    const jpg = await askAndWait(page, 'What shape is the yellow one?', 300_000);
    check(jpg.answer === 'Triangle.', `dropped JPEG, "What shape is the yellow one?" → ${JSON.stringify(jpg.answer)} (${jpg.stats})`);
    await page.screenshot({ path: join(shots, 'web-app-jpeg.png'), fullPage: true });

    const tasks: { start: number; duration: number }[] = await page.evaluate(() => (globalThis as any).convllavaApp.longTasks);
    const during = tasks.filter((t) => t.start >= t0);
    const longest = during.reduce((m, t) => Math.max(m, t.duration), 0);
    for (const t of during) console.log(`    long task at +${(t.start - t0).toFixed(0)} ms: ${t.duration.toFixed(0)} ms`);
    const supported = await page.evaluate(() => PerformanceObserver.supportedEntryTypes.includes('longtask'));
    check(supported, 'the long-task observer is supported');
    checkLongTasks(longest, `page-thread long tasks while loading and answering: ${during.length}`);

    await page.reload();
    const again = await waitState(page, ['ready', 'error', 'no-webgpu'], 300_000);
    check(again.startsWith('ready') && (await page.getAttribute('body', 'data-model-source')) === 'cache', `reload: model from the Cache API, nothing downloaded (${await page.textContent('#model-info')})`);
    await page.setInputFiles('#image-file', join(samples, 'sample2.jpg'));
    const picked = await askAndWait(page, 'Is there a red square?', 300_000);
    check(picked.answer === 'No.', `picked JPEG after reload, "Is there a red square?" → ${JSON.stringify(picked.answer)}`);
    const afterReload: { duration: number }[] = await page.evaluate(() => (globalThis as any).convllavaApp.longTasks);
    const longestAfter = afterReload.reduce((m, t) => Math.max(m, t.duration), 0);
    checkLongTasks(longestAfter, `page-thread long tasks after the reload (page start included): ${afterReload.length}`);
    await page.screenshot({ path: join(shots, 'web-app-reload.png'), fullPage: true });

    // A browser without WebGPU: the page says so instead of failing somewhere inside.
    const bare = await context.newPage();
    await bare.addInitScript(() => delete (Navigator.prototype as { gpu?: unknown }).gpu);
    await bare.goto(server.url);
    await waitState(bare, ['no-webgpu', 'ready', 'error'], 60_000);
    const message = (await bare.textContent('#no-webgpu')) ?? '';
    check((await bare.isVisible('#no-webgpu')) && /no WebGPU/.test(message), `without navigator.gpu the page says: ${JSON.stringify(message.slice(0, 80))}…`);
    await bare.screenshot({ path: join(shots, 'web-app-no-webgpu.png') });
  } finally {
    await context.close();
    await server.close();
  }
}

async function testSmoke(browser: Browser): Promise<void> {
  execFileSync(process.execPath, ['--import', 'tsx', join(ROOT, 'scripts/build-browser.ts')], { cwd: ROOT, stdio: 'inherit' });
  const server = await serve({ root: ROOT });
  const page = await browser.newPage();
  try {
    await page.goto(`${server.url}browser/index.html`);
    await page.waitForFunction(() => /PASS|FAIL/.test(document.title), undefined, { timeout: 300_000 });
    const log = (await page.textContent('#log'))!;
    console.log(log.replace(/^/gm, '    '));
    check((await page.title()).endsWith('PASS'), 'browser smoke: kernels, preprocessing, tiny model ids == PyTorch');
  } finally {
    await page.close();
    await server.close();
  }
}

async function testVite(browser: Browser): Promise<void> {
  const work = await mkdtemp(join(tmpdir(), 'convllava-vite-'));
  try {
    const json = execFileSync('npm', ['pack', '--json', '--pack-destination', work], { cwd: ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
    const tarball = join(work, (JSON.parse(json.slice(json.indexOf('['))) as { filename: string }[])[0].filename);
    const app = join(work, 'app');
    await mkdir(join(app, 'public'), { recursive: true });
    await writeFile(join(app, 'package.json'), JSON.stringify({ name: 'vite-scratch', private: true, type: 'module' }));
    const install = spawnSync('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', tarball], { cwd: app, encoding: 'utf8' });
    if (install.status !== 0) throw new Error(`npm install of the tarball failed:\n${install.stdout}${install.stderr}`);
    // The app serves the model's files itself (public/), as an app would host any model folder.
    await cp(join(app, 'node_modules/convllava/dist/models/convllava-shapes'), join(app, 'public/convllava-shapes'), { recursive: true });
    await writeFile(join(app, 'index.html'), '<!doctype html><title>vite: running</title><pre id="out"></pre><script type="module" src="/main.js"></script>\n');
    await writeFile(
      join(app, 'main.js'),
      `import { WorkerEngine } from 'convllava/worker';
const out = document.getElementById('out');
try {
  const engine = WorkerEngine.create();
  await engine.load({ url: '/convllava-shapes/' });
  const jpg = await (await fetch('/convllava-shapes/samples/sample2.jpg')).blob();
  const r = await engine.generate({ image: jpg, prompt: 'What shape is the yellow one?' });
  out.textContent = r.text;
  document.title = 'vite: done';
} catch (e) {
  out.textContent = 'ERROR ' + e.message;
  document.title = 'vite: done';
}
`,
    );
    const vite = spawnSync(process.execPath, [join(ROOT, 'node_modules/vite/bin/vite.js'), 'build', '--logLevel', 'warn'], { cwd: app, encoding: 'utf8' });
    if (vite.status !== 0) throw new Error(`vite build failed:\n${vite.stdout}${vite.stderr}`);
    if (vite.stdout.trim() || vite.stderr.trim()) console.log(`    vite build: ${(vite.stdout + vite.stderr).trim().replace(/\n/g, '\n    ')}`);
    const server = await serve({ root: join(app, 'dist') });
    const page = await browser.newPage();
    try {
      page.on('pageerror', (e) => console.log(`    [page error] ${e.message}`));
      await page.goto(server.url);
      await page.waitForFunction(() => document.title === 'vite: done', undefined, { timeout: 300_000 });
      const text = (await page.textContent('#out'))!;
      check(text === 'Triangle.', `Vite app from the packed tarball: worker engine answers about a JPEG → ${JSON.stringify(text)}`);
    } finally {
      await page.close();
      await server.close();
    }
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

async function testPlainScript(browser: Browser): Promise<void> {
  await buildPackage();
  const site = await mkdtemp(join(tmpdir(), 'convllava-script-'));
  try {
    await cp(join(ROOT, 'dist/web'), join(site, 'convllava'), { recursive: true });
    await cp(join(ROOT, 'dist/models/convllava-shapes'), join(site, 'model'), { recursive: true });
    await writeFile(
      join(site, 'index.html'),
      `<!doctype html><title>script: running</title><pre id="out"></pre>
<script type="module">
  import { WorkerEngine } from './convllava/engine.js';
  const out = document.getElementById('out');
  try {
    const engine = WorkerEngine.create();
    await engine.load('./model/');
    const r = await engine.generate({ image: './model/samples/sample1.png', prompt: 'How many shapes are there?' });
    out.textContent = r.text;
  } catch (e) {
    out.textContent = 'ERROR ' + e.message;
  }
  document.title = 'script: done';
</script>
`,
    );
    const server = await serve({ root: site });
    const page = await browser.newPage();
    try {
      page.on('pageerror', (e) => console.log(`    [page error] ${e.message}`));
      await page.goto(server.url);
      await page.waitForFunction(() => document.title === 'script: done', undefined, { timeout: 300_000 });
      const text = (await page.textContent('#out'))!;
      check(text === 'Three.', `plain <script type="module"> on dist/web/ (no bundler): worker engine answers about a PNG → ${JSON.stringify(text)}`);
    } finally {
      await page.close();
      await server.close();
    }
  } finally {
    await rm(site, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      only: { type: 'string', default: 'web,smoke,vite,script' },
      chromium: { type: 'string', default: process.env.CHROMIUM ?? '/usr/bin/chromium' },
      screenshots: { type: 'string', default: join(ROOT, 'out') },
    },
  });
  const only = values.only!.split(',');
  await mkdir(values.screenshots!, { recursive: true });
  process.env.XDG_RUNTIME_DIR ??= '/tmp';
  const browser = await chromium.launch({ executablePath: values.chromium, args: CHROMIUM_FLAGS }).catch((e: Error) => {
    throw new Error(`could not start Chromium at ${values.chromium} (apt-get install chromium, or --chromium PATH): ${e.message.split('\n')[0]}`);
  });
  const t0 = Date.now();
  try {
    const version = browser.version();
    console.log(`Chromium ${version}, flags ${CHROMIUM_FLAGS.join(' ')}`);
    if (only.includes('web')) await testWebApp(browser, values.screenshots!);
    if (only.includes('smoke')) await testSmoke(browser);
    if (only.includes('vite')) await testVite(browser);
    if (only.includes('script')) await testPlainScript(browser);
  } finally {
    await browser.close();
  }
  console.log(`browser tests passed (${((Date.now() - t0) / 1000).toFixed(0)} s)`);
}

main().catch((e) => {
  console.error(`FAIL ${(e as Error).message}`);
  process.exit(1);
});
