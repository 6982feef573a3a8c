/// <reference types="@webgpu/types" preserve="true" />
/**
 * The worker engine, page side: ConvLlava's API (load, generate, stream, chat, abort) with the model
 * in a Web Worker (or a Node worker thread), so nothing the model does blocks the page.
 *
 *   import { WorkerEngine } from 'convllava/worker';
 *   const engine = WorkerEngine.create();                  // starts browser/worker.js
 *   await engine.load({ url: '/models/convllava-shapes/' }, { onProgress: (p) => … });   // bytes, then tensors
 *   const r = await engine.generate({ image: file, prompt: 'How many shapes are there?', onToken: (t) => … });
 *   for await (const t of engine.stream({ image, prompt, signal })) …
 *   const chat = await engine.chat({ image }); await chat.send('…'); await chat.close();
 *   await engine.dispose(); engine.terminate();
 *
 * Images are sent as bytes (a File/Blob is read here, which does not block), pixels or a URL the
 * worker fetches; decoding and preprocessing happen in the worker. An AbortSignal aborts the
 * request in the worker (within one stage's or layer's GPU time, as ConvLlava's own signal does).
 */
import type { GenerateResult } from '../llm/pipeline.js';
import type { TokenEvent } from '../llm/generate.js';
import type { RawImage } from '../convnext/preprocess.js';
import type {
  EngineGenerateOptions,
  EngineImage,
  EngineLoadOptions,
  EngineModelInfo,
  EnginePort,
  EngineProgress,
  EngineRequest,
  FromWorker,
  ModelSource,
  ToWorker,
} from './engine-host.js';

export type { EngineLoadOptions, EngineModelInfo, EngineProgress, ModelSource } from './engine-host.js';

/** An image on the page: PNG/JPEG bytes, a File/Blob, RGB(A) pixels (canvas ImageData with channels: 4), or a URL (a path in Node). */
export type WorkerImage = Uint8Array | ArrayBuffer | Blob | RawImage | string | URL;

export interface WorkerGenerateOptions extends EngineGenerateOptions {
  onToken?: (e: TokenEvent) => void;
  signal?: AbortSignal;
}

export interface WorkerGenerateRequest extends WorkerGenerateOptions {
  prompt: string;
  image?: WorkerImage;
  system?: string;
  history?: EngineRequest['history'];
}

interface Pending {
  resolve(value: unknown): void;
  reject(error: Error): void;
  onToken?: (e: TokenEvent) => void;
  onProgress?: (p: EngineProgress) => void;
}

export class WorkerEngine {
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  /** Why the worker can no longer answer (it failed to start, crashed or was terminated). */
  private dead: Error | null = null;

  private constructor(
    private readonly port: EnginePort,
    private readonly stop: () => void,
  ) {
    port.addEventListener('message', (event) => this.receive(event.data as FromWorker));
  }

  /**
   * An engine on a Web Worker: `worker` if given (a bundler that needs the worker file named, e.g.
   * `new Worker(new URL('convllava/worker.js', import.meta.url), { type: 'module' })`), else this
   * package's browser/worker.js, started as a module worker.
   */
  static create(worker?: Worker): WorkerEngine {
    const w = worker ?? new Worker(new URL('./worker.js', import.meta.url), { type: 'module' });
    const engine = new WorkerEngine(w as unknown as EnginePort, () => w.terminate());
    w.addEventListener('error', (e) => engine.fail(new Error(`the convllava worker failed: ${e.message || 'it could not be loaded'}`)));
    return engine;
  }

  /** An engine on a Node worker thread (browser/node-worker.js). */
  static async createNode(): Promise<WorkerEngine> {
    const { Worker: NodeWorker } = await import('node:worker_threads');
    // From the sources (this checkout, under tsx) the entry is the .ts file, and the thread registers tsx first.
    const fromSources = import.meta.url.endsWith('.ts');
    const entry = new URL(fromSources ? './node-worker.ts' : './node-worker.js', import.meta.url);
    const w = fromSources
      ? new NodeWorker(`import('tsx/esm/api').then((tsx) => { tsx.register(); return import(${JSON.stringify(entry.href)}); });`, { eval: true })
      : new NodeWorker(entry);
    const port: EnginePort = {
      postMessage: (message, transfer) => w.postMessage(message, transfer as never),
      addEventListener: (_type, listener) => w.on('message', (data) => listener({ data })),
    };
    const engine = new WorkerEngine(port, () => void w.terminate());
    w.on('error', (e) => engine.fail(new Error(`the convllava worker thread failed: ${e.message}`)));
    w.on('exit', (code) => engine.fail(new Error(`the convllava worker thread exited (code ${code})`)));
    return engine;
  }

  /** Loads a model folder in the worker; a string is a URL (a path in Node). */
  load(source: ModelSource | string, options: EngineLoadOptions & { onProgress?: (p: EngineProgress) => void } = {}): Promise<EngineModelInfo> {
    const { onProgress, ...rest } = options;
    let src: ModelSource = typeof source === 'string' ? (isNodeRuntime() ? { path: source } : { url: source }) : source;
    // A relative URL means relative to this page, not to the worker's script.
    if ('url' in src) src = { ...src, url: pageUrl(src.url) };
    return this.call((id) => ({ type: 'load', id, source: src, options: rest }), { onProgress }) as Promise<EngineModelInfo>;
  }

  /** One answer (a fresh conversation), streamed to `onToken`. */
  async generate(request: WorkerGenerateRequest): Promise<GenerateResult> {
    const { onToken, signal, image, ...rest } = request;
    const message: EngineRequest = { ...rest, image: await toEngineImage(image) };
    return this.call((id) => ({ type: 'generate', id, request: message }), { onToken, signal }) as Promise<GenerateResult>;
  }

  /** generate() as an async iterator of token events; its return value is the result. */
  async *stream(request: WorkerGenerateRequest): AsyncGenerator<TokenEvent, GenerateResult> {
    const queue: TokenEvent[] = [];
    let wake: (() => void) | null = null;
    let finished = false;
    const controller = new AbortController();
    const forward = () => controller.abort(request.signal?.reason);
    request.signal?.addEventListener('abort', forward);
    const result = this.generate({
      ...request,
      signal: controller.signal,
      onToken: (e) => {
        queue.push(e);
        wake?.();
      },
    }).finally(() => {
      finished = true;
      wake?.();
    });
    result.catch(() => {}); // surfaced below
    try {
      for (;;) {
        while (queue.length) yield queue.shift()!;
        if (finished) return await result;
        await new Promise<void>((r) => (wake = r));
        wake = null;
      }
    } finally {
      request.signal?.removeEventListener('abort', forward);
      if (!finished) controller.abort(); // the consumer broke off: stop generating in the worker
    }
  }

  /** A multi-turn conversation about one image; each send() prefills only its new tokens. */
  async chat(options: { image?: WorkerImage; system?: string } = {}): Promise<WorkerChat> {
    const image = await toEngineImage(options.image);
    const chat = (await this.call((id) => ({ type: 'chat-open', id, options: { image, system: options.system } }))) as number;
    return {
      send: (prompt, opts = {}) => {
        const { onToken, signal, ...rest } = opts;
        return this.call((id) => ({ type: 'chat-send', id, chat, prompt, options: rest }), { onToken, signal }) as Promise<GenerateResult>;
      },
      close: async () => {
        await this.call((id) => ({ type: 'chat-close', id, chat }));
      },
    };
  }

  /** Frees the model's GPU memory in the worker (the worker keeps running: load() again). */
  async dispose(): Promise<void> {
    await this.call((id) => ({ type: 'dispose', id }));
  }

  /** Ends the worker at once; pending requests reject. */
  terminate(): void {
    this.stop();
    this.fail(new Error('the convllava worker was terminated'));
  }

  private call(make: (id: number) => ToWorker, extra: Omit<Pending, 'resolve' | 'reject'> & { signal?: AbortSignal } = {}): Promise<unknown> {
    const { signal, ...callbacks } = extra;
    if (this.dead) return Promise.reject(this.dead);
    if (signal?.aborted) return Promise.reject(abortError(signal));
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const onAbort = () => this.port.postMessage({ type: 'abort', id: this.nextId++, target: id } satisfies ToWorker);
      signal?.addEventListener('abort', onAbort, { once: true });
      const done = () => signal?.removeEventListener('abort', onAbort);
      this.pending.set(id, {
        ...callbacks,
        resolve: (v) => (done(), resolve(v)),
        reject: (e) => (done(), reject(signal?.aborted ? abortError(signal) : e)),
      });
      this.port.postMessage(make(id));
    });
  }

  private receive(m: FromWorker): void {
    const p = this.pending.get(m.id);
    if (!p) return;
    switch (m.type) {
      case 'progress':
        p.onProgress?.(m.progress);
        break;
      case 'token':
        try {
          p.onToken?.(m.event);
        } catch (e) {
          // A throwing callback ends the generation, as in ConvLlava.generate.
          this.pending.delete(m.id);
          this.port.postMessage({ type: 'abort', id: this.nextId++, target: m.id } satisfies ToWorker);
          p.reject(e as Error);
        }
        break;
      case 'done':
        this.pending.delete(m.id);
        p.resolve(m.value);
        break;
      case 'error': {
        this.pending.delete(m.id);
        const err = new Error(m.error.message);
        err.name = m.error.name;
        if (m.error.stack) err.stack = m.error.stack;
        p.reject(err);
        break;
      }
    }
  }

  private fail(error: Error): void {
    this.dead ??= error;
    for (const p of this.pending.values()) p.reject(error);
    this.pending.clear();
  }
}

export interface WorkerChat {
  send(prompt: string, options?: WorkerGenerateOptions): Promise<GenerateResult>;
  close(): Promise<void>;
}

function isNodeRuntime(): boolean {
  return typeof process !== 'undefined' && !!process.versions?.node;
}

/** `url` resolved against the page (a worker would resolve it against its own script). */
function pageUrl(url: string): string {
  return typeof location !== 'undefined' ? new URL(url, location.href).href : url;
}

function abortError(signal: AbortSignal): Error {
  return signal.reason instanceof Error ? signal.reason : new DOMException('The operation was aborted.', 'AbortError');
}

async function toEngineImage(image: WorkerImage | undefined): Promise<EngineImage | undefined> {
  if (image === undefined) return undefined;
  if (typeof image === 'string' || image instanceof URL) return { url: isNodeRuntime() ? String(image) : pageUrl(String(image)) };
  if (image instanceof Uint8Array) return image;
  if (image instanceof ArrayBuffer) return new Uint8Array(image);
  if (typeof Blob !== 'undefined' && image instanceof Blob) return new Uint8Array(await image.arrayBuffer());
  return image as RawImage;
}
