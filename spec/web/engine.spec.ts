/**
 * The worker engine (browser/engine.ts + engine-host.ts) on a Node worker thread, from the sources:
 * the same answers as ConvLlava in the calling thread, tokens streamed across the thread boundary,
 * abort, chat, errors carried back with their messages; and CachedUrlFolderReader's caching and
 * byte progress against a fake Cache API and fetch (the browser run is scripts/browser-test.ts).
 */
import { expect } from 'chai';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { WorkerEngine } from '../../browser/engine.js';
import { CachedUrlFolderReader, type DownloadProgress } from '../../browser/cached-folder.js';
import { Checkpoint } from '../../weights/checkpoint.js';

const MODEL = 'models/convllava-shapes';
const PNG = join(MODEL, 'samples/sample1.png');
const JPG = join(MODEL, 'samples/sample2.jpg');

describe('worker engine (Node worker thread)', function () {
  this.timeout(300_000);
  let engine: WorkerEngine;

  before(async () => {
    engine = await WorkerEngine.createNode();
  });
  after(() => engine?.terminate());

  it('refuses a request before load, with the reason', async () => {
    const err = await engine.generate({ prompt: 'x' }).catch((e: Error) => e);
    expect(err).to.be.instanceOf(Error);
    expect((err as Error).message).to.match(/no model loaded/);
  });

  it('loads the shapes model (upload progress) and answers about a PNG and a JPEG, streaming tokens', async () => {
    const progress: string[] = [];
    const info = await engine.load(MODEL, { onProgress: (p) => progress.push(p.phase) });
    expect(progress).to.include('upload');
    expect(info.load_ms).to.be.above(0);
    let streamed = '';
    const png = await engine.generate({ image: PNG, prompt: 'How many shapes are there?', onToken: (t) => (streamed += t.text) });
    expect(png.text).to.equal('Three.');
    expect(streamed).to.equal(png.text);
    expect(png.visualTokens).to.equal(16);
    // bytes from the page side, as a browser sends a File
    const jpg = await engine.generate({ image: new Uint8Array(await readFile(JPG)), prompt: 'What shape is the yellow one?' });
    expect(jpg.text).to.equal('Triangle.');
  });

  it('stream(): an async iterator of the same tokens, returning the result', async () => {
    const it = engine.stream({ image: JPG, prompt: 'Is there a red square?' });
    let text = '';
    let r = await it.next();
    while (!r.done) {
      text += r.value.text;
      r = await it.next();
    }
    expect(text).to.equal('No.');
    expect(r.value.text).to.equal('No.');
  });

  it('abort: the signal stops the generation in the worker, and the engine answers the next request', async () => {
    const controller = new AbortController();
    const err = await engine
      .generate({ image: PNG, prompt: 'Describe the image.', maxNewTokens: 64, signal: controller.signal, onToken: () => controller.abort() })
      .catch((e: Error) => e);
    expect((err as Error).name).to.equal('AbortError');
    const again = await engine.generate({ image: PNG, prompt: 'How many shapes are there?' });
    expect(again.text).to.equal('Three.');
  });

  it('chat: two turns about one image', async () => {
    const chat = await engine.chat({ image: PNG });
    const first = await chat.send('How many shapes are there?');
    expect(first.text).to.equal('Three.');
    const second = await chat.send('Describe the image.');
    expect(second.inputIds).to.not.include(-200); // the follow-up prefills only its new tokens
    expect(second.text.length).to.be.above(0);
    await chat.close();
  });

  it('dispose() frees the model; a second load works', async () => {
    await engine.dispose();
    expect(((await engine.generate({ prompt: 'x' }).catch((e: Error) => e)) as Error).message).to.match(/no model loaded/);
    await engine.load(MODEL);
  });
});

describe('CachedUrlFolderReader (fake Cache API and fetch)', () => {
  const base = 'http://models.test/shapes/';
  let store: Map<string, Response>;
  let fetched: string[];
  const fakeFetch = (async (input: RequestInfo | URL) => {
    const url = String(input);
    fetched.push(url);
    const rel = decodeURIComponent(url.slice(base.length));
    const bytes = await readFile(join(MODEL, rel)).catch(() => null);
    if (!bytes) return new Response('not found', { status: 404 });
    return new Response(bytes, { headers: { 'content-length': String(bytes.length), 'content-type': 'application/octet-stream' } });
  }) as typeof fetch;

  before(() => {
    store = new Map();
    const cache = {
      match: async (url: string) => store.get(url)?.clone(),
      // as a browser does: the body is read to its end into the cache
      put: async (url: string, res: Response) => void store.set(url, new Response(await res.arrayBuffer(), { headers: res.headers })),
      delete: async (url: string) => store.delete(url),
    };
    (globalThis as unknown as { caches: unknown }).caches = { open: async () => cache, delete: async () => store.clear() };
  });
  after(() => delete (globalThis as unknown as { caches?: unknown }).caches);

  it('downloads each file once with progress in bytes, then reads it from the cache', async () => {
    fetched = [];
    const events: DownloadProgress[] = [];
    const first = await CachedUrlFolderReader.create(base, { fetch: fakeFetch, onProgress: (p) => events.push(p) });
    const ckpt = await Checkpoint.openFrom(first);
    expect(ckpt.config.model_type).to.be.a('string');
    const weights = (await readFile(join(MODEL, 'model.safetensors'))).length;
    expect(first.downloaded).to.include('model.safetensors');
    const last = events.filter((e) => e.file === 'model.safetensors').pop()!;
    expect(last).to.include({ loaded: weights, total: weights, fromCache: false });
    const final = events[events.length - 1];
    expect(final.loadedAll).to.equal(final.totalAll);
    expect(final.totalAll).to.be.above(weights);
    await ckpt.close();

    fetched = [];
    const second = await CachedUrlFolderReader.create(base, { fetch: fakeFetch });
    const again = await Checkpoint.openFrom(second);
    expect(second.downloaded).to.deep.equal([]);
    expect(second.fromCache).to.include('model.safetensors');
    // only probes for files the folder does not have (a 404 is not cached) reach the network
    expect(fetched.every((u) => u.endsWith('.index.json') || u.includes('pytorch_model'))).to.equal(true, fetched.join(', '));
    await again.close();
  });

  it('a download cut short is an error and is not kept in the cache', async () => {
    store.clear();
    const cutFetch = (async (input: RequestInfo | URL) => {
      const res = await fakeFetch(input);
      if (!String(input).endsWith('/model.safetensors')) return res;
      const bytes = new Uint8Array(await res.arrayBuffer());
      // the server promised every byte, the connection delivers half
      return new Response(bytes.subarray(0, bytes.length >> 1), { headers: { 'content-length': String(bytes.length) } });
    }) as typeof fetch;
    const reader = await CachedUrlFolderReader.create(base, { fetch: cutFetch });
    const err = await Checkpoint.openFrom(reader).catch((e: Error) => e);
    expect(String(err)).to.match(/connection cut/);
    expect([...store.keys()].some((u) => u.endsWith('/model.safetensors'))).to.equal(false);
  });
});
