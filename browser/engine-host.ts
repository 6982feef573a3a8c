/**
 * The worker side of the worker engine (browser/engine.ts is the page side): one ConvLlava in a Web
 * Worker (browser/worker.ts) or a Node worker thread (browser/node-worker.ts), driven by messages.
 * Everything heavy happens here, off the page's thread: downloading and caching the weights,
 * converting and uploading them, decoding the image (PNG, the JPEG wasm), preprocessing, the forward
 * passes and detokenising. The page only posts requests and receives tokens.
 *
 * Protocol (every request carries an `id`; replies name it):
 *   page → worker   load {source, options} · generate {request} · chat-open {options} ·
 *                   chat-send {chat, prompt, options} · chat-close {chat} · abort {target} · dispose
 *   worker → page   progress {progress} · token {event} · done {value} · error {error}
 */
import { Checkpoint } from '../weights/checkpoint.js';
import { BlobFolderReader } from '../weights/blob-source.js';
import { ConvLlava, type ChatSession, type GenerateOptions, type GenerateRequest, type ImageInput, type LoadOptions } from '../llm/pipeline.js';
import { isNode } from '../runtime/device.js';
import { CachedUrlFolderReader, type DownloadProgress } from './cached-folder.js';
import type { RawImage } from '../convnext/preprocess.js';

/** Where the worker finds a model folder. */
export type ModelSource =
  /** A URL (absolute, or relative to the page); downloaded once into the Cache API unless `cache: false`. */
  | { url: string; cache?: boolean }
  /** Files from `<input type="file" webkitdirectory>` (their webkitRelativePath) or path → Blob. */
  | { files: File[] | Record<string, Blob> }
  /** A folder on disk (Node worker threads only). */
  | { path: string };

/** Load progress: bytes while downloading (or reading the cache), then tensors while uploading to the GPU. */
export type EngineProgress = ({ phase: 'download' } & DownloadProgress) | { phase: 'upload'; stage: 'vision' | 'projector' | 'llm'; done: number; total: number };

export type EngineLoadOptions = Pick<LoadOptions, 'dtype' | 'precision' | 'maxContext'>;

/** What a loaded model reports to the page. */
export interface EngineModelInfo {
  where: string;
  /** Files read from the Cache API and downloaded (URL sources). */
  fromCache: string[];
  downloaded: string[];
  load_ms: number;
  adapter: string;
  /** Activations and KV cache: f16 where the adapter has shader-f16 (unless asked otherwise), else f32. */
  precision: 'f32' | 'f16';
}

/** An image as it crosses to the worker: bytes (PNG/JPEG), pixels, or a URL the worker fetches. */
export type EngineImage = Uint8Array | RawImage | { url: string };

/** Generation options without the callbacks (functions and signals do not cross threads). */
export type EngineGenerateOptions = Omit<GenerateOptions, 'onToken' | 'signal'>;
export type EngineRequest = Omit<GenerateRequest, 'onToken' | 'signal' | 'image'> & { image?: EngineImage };

export type ToWorker =
  | { type: 'load'; id: number; source: ModelSource; options: EngineLoadOptions }
  | { type: 'generate'; id: number; request: EngineRequest }
  | { type: 'chat-open'; id: number; options: { image?: EngineImage; system?: string } }
  | { type: 'chat-send'; id: number; chat: number; prompt: string; options: EngineGenerateOptions }
  | { type: 'chat-close'; id: number; chat: number }
  | { type: 'abort'; id: number; target: number }
  | { type: 'dispose'; id: number };

export type FromWorker =
  | { type: 'progress'; id: number; progress: EngineProgress }
  | { type: 'token'; id: number; event: { id: number; text: string } }
  | { type: 'done'; id: number; value: unknown }
  | { type: 'error'; id: number; error: { name: string; message: string; stack?: string } };

/** The message channel: a Web Worker's `self`, a Worker, or a wrapped Node MessagePort. */
export interface EnginePort {
  postMessage(message: unknown, transfer?: Transferable[]): void;
  addEventListener(type: 'message', listener: (event: { data: unknown }) => void): void;
}

/** Answers engine requests arriving on `port` (call once in the worker). */
export function serveEngine(port: EnginePort): void {
  let model: ConvLlava | null = null;
  const chats = new Map<number, ChatSession>();
  const running = new Map<number, AbortController>();
  const post = (m: FromWorker) => port.postMessage(m);

  async function image(input: EngineImage | undefined): Promise<ImageInput | undefined> {
    if (input === undefined || input instanceof Uint8Array || 'data' in input) return input;
    if (isNode() && !/^(https?|data|blob):/.test(input.url)) return input.url; // a path
    const res = await fetch(input.url);
    if (!res.ok) throw new Error(`${input.url}: HTTP ${res.status}`);
    return new Uint8Array(await res.arrayBuffer());
  }

  function loaded(): ConvLlava {
    if (!model) throw new Error('no model loaded: call engine.load(source) first');
    return model;
  }

  async function load(id: number, source: ModelSource, options: EngineLoadOptions): Promise<EngineModelInfo> {
    if (model) throw new Error('a model is already loaded in this worker: dispose() it first');
    const t0 = performance.now();
    const onProgress = (p: DownloadProgress) => post({ type: 'progress', id, progress: { phase: 'download', ...p } });
    let ckpt: Checkpoint;
    let cached: CachedUrlFolderReader | null = null;
    if ('url' in source) {
      cached = await CachedUrlFolderReader.create(source.url, { onProgress, cacheName: source.cache === false ? undefined : 'convllava-models' });
      ckpt = await Checkpoint.openFrom(cached);
    } else if ('files' in source) {
      const files = source.files;
      ckpt = await Checkpoint.openFrom(Array.isArray(files) ? BlobFolderReader.fromFiles(files) : new BlobFolderReader(files));
    } else {
      ckpt = await Checkpoint.open(source.path);
    }
    model = await ConvLlava.load(ckpt, {
      ...options,
      onProgress: (p) => post({ type: 'progress', id, progress: { phase: 'upload', ...p } }),
    });
    const s = model.gpu?.summary;
    return {
      where: ckpt.dir,
      fromCache: cached?.fromCache ?? [],
      downloaded: cached?.downloaded ?? [],
      load_ms: performance.now() - t0,
      adapter: s ? `${s.vendor} ${s.architecture} (${s.backend})`.trim() : 'cpu',
      precision: model.precision,
    };
  }

  async function handle(m: ToWorker): Promise<unknown> {
    switch (m.type) {
      case 'load':
        return load(m.id, m.source, m.options);
      case 'generate': {
        const controller = new AbortController();
        running.set(m.id, controller);
        const r = await loaded().generate({
          ...m.request,
          image: await image(m.request.image),
          signal: controller.signal,
          onToken: (event) => post({ type: 'token', id: m.id, event }),
        });
        return r;
      }
      case 'chat-open': {
        const chat = loaded().chat({ image: await image(m.options.image), system: m.options.system });
        chats.set(m.id, chat);
        return m.id;
      }
      case 'chat-send': {
        const chat = chats.get(m.chat);
        if (!chat) throw new Error(`chat ${m.chat} is closed`);
        const controller = new AbortController();
        running.set(m.id, controller);
        return chat.send(m.prompt, { ...m.options, signal: controller.signal, onToken: (event) => post({ type: 'token', id: m.id, event }) });
      }
      case 'chat-close':
        chats.get(m.chat)?.dispose();
        chats.delete(m.chat);
        return null;
      case 'abort':
        running.get(m.target)?.abort();
        return null;
      case 'dispose':
        for (const chat of chats.values()) chat.dispose();
        chats.clear();
        await model?.dispose();
        model = null;
        return null;
    }
  }

  port.addEventListener('message', (event) => {
    const m = event.data as ToWorker;
    handle(m).then(
      (value) => post({ type: 'done', id: m.id, value }),
      (e) => {
        const err = e instanceof Error ? e : new Error(String(e));
        post({ type: 'error', id: m.id, error: { name: err.name, message: err.message, stack: err.stack } });
      },
    ).finally(() => running.delete(m.id));
  });
}
