/**
 * The web app (npm run web; npm run build:web for static files): pick or drop an image, ask a
 * question, watch the answer stream. The page thread only handles the UI: the model — downloading
 * and caching the weights, converting and uploading them, decoding and preprocessing the image, the
 * forward passes — runs in a Web Worker through WorkerEngine (browser/engine.ts).
 *
 * The embedded shapes model (models/convllava-shapes, served beside the page) loads on start; any
 * ConvLLaVA folder loads by URL (downloaded once into the Cache API) or from a picked folder.
 * A long-task observer measures the page thread while the model works; the stats show the longest.
 */
import { WorkerEngine, type EngineModelInfo, type EngineProgress } from '../browser/engine.js';
import { clearModelCache } from '../browser/cached-folder.js';

const DEFAULT_MODEL = new URL('models/convllava-shapes/', location.href).href;
const SAMPLES = new URL('models/convllava-shapes/samples/', location.href).href;

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const status = $('status');
const answer = $<HTMLOutputElement>('answer');
const stats = $<HTMLDListElement>('stats');
const progress = $<HTMLProgressElement>('load-progress');
const loadText = $('load-text');
const askButton = $<HTMLButtonElement>('ask');
const stopButton = $<HTMLButtonElement>('stop');
const preview = $<HTMLImageElement>('preview');

/** Long tasks on this page's thread (the model must never cause one over 100 ms). */
interface LongTask {
  start: number;
  duration: number;
}
const longTasks: LongTask[] = [];
if (PerformanceObserver.supportedEntryTypes?.includes('longtask')) {
  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) longTasks.push({ start: e.startTime, duration: e.duration });
  }).observe({ type: 'longtask', buffered: true });
}
function longestTaskSince(t0: number): number {
  return longTasks.filter((t) => t.start >= t0).reduce((m, t) => Math.max(m, t.duration), 0);
}

let engine: WorkerEngine | null = null;
let modelReady = false;
let image: { blob: Blob; name: string } | null = null;
let running: AbortController | null = null;

function setStatus(state: 'starting' | 'loading' | 'ready' | 'busy' | 'error' | 'no-webgpu', text: string): void {
  status.dataset.state = state;
  status.textContent = text;
}

function updateButtons(): void {
  askButton.disabled = !modelReady || !image || running !== null;
  stopButton.disabled = running === null;
}

const mb = (n: number) => `${(n / 1e6).toFixed(1)} MB`;

function showStats(rows: [string, string][]): void {
  stats.replaceChildren(
    ...rows.flatMap(([k, v]) => {
      const dt = document.createElement('dt');
      dt.textContent = k;
      const dd = document.createElement('dd');
      dd.textContent = v;
      return [dt, dd];
    }),
  );
}

function onProgress(p: EngineProgress): void {
  if (p.phase === 'download') {
    progress.max = Math.max(p.totalAll, 1);
    progress.value = p.loadedAll;
    loadText.textContent = `${mb(p.loadedAll)} of ${mb(p.totalAll)} ${p.fromCache ? '(from the cache)' : `(${p.file})`}`;
  } else {
    progress.max = p.total;
    progress.value = p.done;
    loadText.textContent = `uploading ${p.stage} weights to the GPU: ${p.done} of ${p.total} tensors`;
  }
}

async function loadModel(label: string, source: Parameters<WorkerEngine['load']>[0]): Promise<void> {
  if (!engine) return;
  modelReady = false;
  updateButtons();
  setStatus('loading', `Loading ${label}…`);
  $('model-name').textContent = label;
  $('model-info').textContent = '';
  const t0 = performance.now();
  try {
    await engine.dispose();
    const info: EngineModelInfo = await engine.load(source, { onProgress });
    const origin = info.downloaded.length ? `downloaded ${info.downloaded.length} files` : info.fromCache.length ? 'from the cache, nothing downloaded' : 'from local files';
    $('model-info').textContent = `— ${origin}; ready in ${(info.load_ms / 1000).toFixed(1)} s on ${info.adapter}, ${info.precision} activations; longest page task ${longestTaskSince(t0).toFixed(0)} ms`;
    loadText.textContent = `done (${origin})`;
    document.body.dataset.modelSource = info.downloaded.length ? 'network' : info.fromCache.length ? 'cache' : 'files';
    modelReady = true;
    setStatus('ready', 'Ready: pick an image and ask.');
  } catch (e) {
    setStatus('error', `Could not load ${label}: ${(e as Error).message}`);
  }
  updateButtons();
}

function setImage(blob: Blob, name: string): void {
  if (!/^image\/(png|jpeg)$/.test(blob.type) && !/\.(png|jpe?g)$/i.test(name)) {
    setStatus('error', `${name}: not a PNG or JPEG image`);
    return;
  }
  image = { blob, name };
  if (preview.src) URL.revokeObjectURL(preview.src);
  preview.src = URL.createObjectURL(blob);
  preview.alt = `the image to ask about: ${name}`;
  preview.hidden = false;
  preview.onload = () => ($('image-info').textContent = `${name}: ${preview.naturalWidth}×${preview.naturalHeight}, ${(blob.size / 1024).toFixed(0)} KiB`);
  document.body.dataset.image = name;
  updateButtons();
}

async function ask(): Promise<void> {
  if (!engine || !image || running) return;
  const question = $<HTMLInputElement>('question').value.trim();
  const maxNewTokens = Number($<HTMLInputElement>('max-tokens').value) || 32;
  running = new AbortController();
  updateButtons();
  answer.textContent = '';
  stats.replaceChildren();
  setStatus('busy', `Answering about ${image.name}…`);
  const t0 = performance.now();
  try {
    const r = await engine.generate({
      image: image.blob,
      prompt: question,
      maxNewTokens,
      signal: running.signal,
      onToken: (t) => (answer.textContent += t.text),
    });
    answer.textContent = r.text;
    const side = Math.round(Math.sqrt(r.visualTokens));
    showStats([
      ['visual tokens', `${r.visualTokens} (${side}×${side} from the last ConvNeXt stage)`],
      ['prompt tokens', `${r.inputIds.length - 1} text + ${r.visualTokens} visual`],
      ['answer tokens', `${r.ids.length} (${r.finishReason})`],
      ['time to first token', `${r.timings.ttft_ms.toFixed(0)} ms`],
      ['decode', `${r.timings.decode_tok_s.toFixed(1)} tok/s`],
      ['preprocess / image encode / prefill', `${r.timings.preprocess_ms.toFixed(0)} / ${r.timings.image_encode_ms.toFixed(0)} / ${r.timings.prefill_ms.toFixed(0)} ms`],
      ['longest page-thread task', `${longestTaskSince(t0).toFixed(0)} ms`],
    ]);
    document.body.dataset.answered = String(Number(document.body.dataset.answered ?? 0) + 1);
    setStatus('ready', 'Ready: pick an image and ask.');
  } catch (e) {
    const err = e as Error;
    setStatus(err.name === 'AbortError' ? 'ready' : 'error', err.name === 'AbortError' ? 'Stopped.' : `Failed: ${err.message}`);
  } finally {
    running = null;
    updateButtons();
  }
}

function wire(): void {
  $('load-default').addEventListener('click', () => loadModel('the embedded shapes model', { url: DEFAULT_MODEL }));
  $('load-url').addEventListener('click', () => {
    const url = $<HTMLInputElement>('model-url').value.trim();
    if (url) loadModel(url, { url });
  });
  $<HTMLInputElement>('model-dir').addEventListener('change', (e) => {
    const files = (e.target as HTMLInputElement).files;
    if (files?.length) loadModel(`${files[0].webkitRelativePath.split('/')[0] || 'picked folder'}`, { files: Array.from(files) });
  });
  $('clear-cache').addEventListener('click', async () => {
    $('cache-text').textContent = (await clearModelCache()) ? 'cached models removed' : 'nothing cached';
  });
  $<HTMLInputElement>('image-file').addEventListener('change', (e) => {
    const file = (e.target as HTMLInputElement).files?.[0];
    if (file) setImage(file, file.name);
  });
  for (const button of Array.from(document.querySelectorAll<HTMLButtonElement>('[data-sample]'))) {
    button.addEventListener('click', async () => {
      const name = button.dataset.sample!;
      const res = await fetch(new URL(name, SAMPLES));
      setImage(await res.blob(), name);
    });
  }
  const drop = $('drop');
  drop.addEventListener('dragover', (e) => {
    e.preventDefault();
    drop.classList.add('over');
  });
  drop.addEventListener('dragleave', () => drop.classList.remove('over'));
  drop.addEventListener('drop', (e) => {
    e.preventDefault();
    drop.classList.remove('over');
    const file = e.dataTransfer?.files[0];
    if (file) setImage(file, file.name);
  });
  $('ask-form').addEventListener('submit', (e) => {
    e.preventDefault();
    ask();
  });
  stopButton.addEventListener('click', () => running?.abort());
}

async function main(): Promise<void> {
  wire();
  if (!('gpu' in navigator) || !navigator.gpu) {
    const el = $('no-webgpu');
    el.textContent =
      'This browser has no WebGPU (navigator.gpu is missing), so the model cannot run here. Use a current Chrome, Edge or Safari 26+, or Firefox with WebGPU enabled; on Linux, Chrome needs --enable-unsafe-webgpu --enable-features=Vulkan.';
    el.hidden = false;
    setStatus('no-webgpu', 'No WebGPU in this browser.');
    return;
  }
  if (!(await navigator.gpu.requestAdapter())) {
    const el = $('no-webgpu');
    el.textContent = 'WebGPU is present but found no adapter (the GPU is blocked or unsupported). Try another browser, or enable hardware acceleration.';
    el.hidden = false;
    setStatus('no-webgpu', 'No WebGPU adapter.');
    return;
  }
  engine = WorkerEngine.create(new Worker(new URL('./worker.js', import.meta.url), { type: 'module' }));
  await loadModel('the embedded shapes model', { url: DEFAULT_MODEL });
}

// For tests and the console: the long tasks seen so far.
(globalThis as unknown as { convllavaApp: unknown }).convllavaApp = { longTasks };
main();
