/**
 * The browser's ways into a model folder, run in Node (which has fetch, Blob and File too):
 * UrlFolderReader against scripts/serve.ts on 127.0.0.1, with and without Range support, and
 * BlobFolderReader over the fixture's files. Each must open the tiny fixture into the same Checkpoint
 * as Checkpoint.open (configs, tensor table, every tensor's bytes), and fail clearly when it cannot.
 */
import { expect } from 'chai';
import { readdir, readFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { serve } from '../../scripts/serve.js';
import { BlobByteSource, BlobFolderReader } from '../../weights/blob-source.js';
import { Checkpoint } from '../../weights/checkpoint.js';
import { insideFolder, type ModelFolderReader } from '../../weights/folder.js';
import { UrlByteSource, UrlFolderReader } from '../../weights/url-source.js';

const REPO = fileURLToPath(new URL('../..', import.meta.url));
const MODEL = 'spec/fixtures/convllava-tiny/model';

/** Every tensor of `b` has the same bytes as in `a` (the Node reference). */
async function expectSameCheckpoint(a: Checkpoint, b: Checkpoint): Promise<void> {
  expect(b.config).to.deep.equal(a.config);
  expect(b.visionConfig).to.deep.equal(a.visionConfig);
  expect(b.preprocessorConfig).to.deep.equal(a.preprocessorConfig);
  expect(b.generationConfig).to.deep.equal(a.generationConfig);
  expect(b.warnings).to.deep.equal(a.warnings);
  for (const part of ['llm', 'vision'] as const) {
    expect(b[part].names().sort()).to.deep.equal(a[part].names().sort());
    for (const name of a[part].names()) {
      expect(Buffer.from(await b[part].readBytes(name)).equals(Buffer.from(await a[part].readBytes(name))), name).to.equal(true);
    }
  }
}

describe('browser model sources (UrlFolderReader, BlobFolderReader)', () => {
  let reference: Checkpoint;
  const servers: { url: string; close: () => Promise<void> }[] = [];
  let ranged: string;
  let unranged: string;

  before(async () => {
    reference = await Checkpoint.open(join(REPO, MODEL));
    servers.push(await serve({ root: REPO }), await serve({ root: REPO, ranges: false }));
    [ranged, unranged] = servers.map((s) => s.url);
  });
  after(async () => {
    await reference.close();
    await Promise.all(servers.map((s) => s.close()));
  });

  it('a URL folder over Range requests reads the same checkpoint as the disk, one range per read', async () => {
    const requests: string[] = [];
    const countingFetch: typeof fetch = (input, init) => {
      requests.push(`${init?.method ?? 'GET'} ${new Headers(init?.headers).get('range') ?? 'whole'}`);
      return fetch(input, init);
    };
    const ckpt = await Checkpoint.openFrom(new UrlFolderReader(`${ranged}${MODEL}`, { fetch: countingFetch }));
    try {
      expect(ckpt.dir).to.equal(`${ranged}${MODEL}/`);
      expect(ckpt.llm.info('lm_head.weight').file).to.equal(`${ranged}${MODEL}/model-00001-of-00002.safetensors`);
      await expectSameCheckpoint(reference, ckpt);
      // Weights were never fetched whole: every GET of a .safetensors file carried a Range.
      expect(requests.filter((r) => r.startsWith('GET') && r.endsWith('whole')).length).to.equal(5); // 4 JSON files + index
    } finally {
      await ckpt.close();
    }
  });

  it('a server without Range support: the whole-file fallback works and says so', async () => {
    const warnings: string[] = [];
    const ckpt = await Checkpoint.openFrom(new UrlFolderReader(`${unranged}${MODEL}/`, { warn: (m) => warnings.push(m) }));
    try {
      await expectSameCheckpoint(reference, ckpt);
    } finally {
      await ckpt.close();
    }
    expect(warnings).to.have.length(3); // two shards + the vision tower
    expect(warnings[0]).to.match(/ignored the HTTP Range request \(answered 200, not 206\), so the whole file \(\d+ bytes\) was downloaded/);
  });

  it('UrlByteSource: exact ranges, bounds, and HTTP errors name the URL', async () => {
    const url = `${ranged}${MODEL}/vision_tower/model.safetensors`;
    const disk = await readFile(join(REPO, MODEL, 'vision_tower/model.safetensors'));
    const src = await UrlByteSource.open(url);
    expect(src.ranged).to.equal(true);
    expect(src.size).to.equal(disk.length);
    const into = new Uint8Array(100);
    const got = await src.read(1000, 77, into);
    expect(got.buffer).to.equal(into.buffer);
    expect(Buffer.from(got).equals(disk.subarray(1000, 1077))).to.equal(true);
    expect(Buffer.from(await src.read(disk.length - 5, 5)).equals(disk.subarray(-5))).to.equal(true);
    expect((await src.read(10, 0)).length).to.equal(0);
    let caught: unknown;
    await src.read(disk.length - 2, 3).catch((e) => (caught = e));
    expect(caught).to.be.instanceOf(RangeError);
    await src.close();
    caught = undefined;
    await UrlByteSource.open(`${ranged}nope.safetensors`).catch((e) => (caught = e));
    expect((caught as Error).message).to.equal(`${ranged}nope.safetensors: HTTP 404 Not Found`);
  });

  it('a URL folder with a missing file fails like a disk folder does', async () => {
    let caught: unknown;
    await Checkpoint.openFrom(new UrlFolderReader(`${ranged}spec/fixtures/`)).catch((e) => (caught = e));
    expect((caught as Error).message).to.match(/spec\/fixtures\/config.json: missing/);
  });

  it('File objects (a picked folder) read the same checkpoint; paths are the folder-relative ones', async () => {
    const root = join(REPO, MODEL);
    const files: File[] = [];
    for (const entry of await readdir(root, { recursive: true, withFileTypes: true })) {
      if (!entry.isFile()) continue;
      const path = join(entry.parentPath ?? entry.path, entry.name);
      const file = new File([await readFile(path)], entry.name);
      // What <input type="file" webkitdirectory> sets: the picked folder's name, then the path inside it.
      Object.defineProperty(file, 'webkitRelativePath', { value: `model/${relative(root, path)}` });
      files.push(file);
    }
    const reader: ModelFolderReader = BlobFolderReader.fromFiles(files);
    expect(reader.where).to.equal('model');
    expect(await reader.exists('vision_tower/config.json')).to.equal(true);
    const ckpt = await Checkpoint.openFrom(reader);
    try {
      expect(ckpt.vision.info('embeddings.patch_embeddings.weight').file).to.equal('model/vision_tower/model.safetensors');
      await expectSameCheckpoint(reference, ckpt);
    } finally {
      await ckpt.close();
    }
  });

  it('BlobByteSource reads slices into the given array and refuses reads past the end', async () => {
    const src = new BlobByteSource(new Blob([new Uint8Array([1, 2, 3, 4, 5])]), 'five');
    expect(src.size).to.equal(5);
    expect([...(await src.read(1, 3))]).to.deep.equal([2, 3, 4]);
    let caught: unknown;
    await src.read(3, 3).catch((e) => (caught = e));
    expect((caught as Error).message).to.equal('five: read of 3 bytes at 3 is past the end (5 bytes)');
  });

  it('insideFolder: the shard-path rule, the same for disks and URLs', () => {
    expect(insideFolder('model-00001.safetensors')).to.equal('model-00001.safetensors');
    expect(insideFolder('./sub/../a/b.safetensors')).to.equal('a/b.safetensors');
    for (const evil of ['../x', '/etc/passwd', 'sub/../../x', 'a\\b', 'C:/x', '', '.', 'a/..']) {
      expect(insideFolder(evil), evil).to.equal(null);
    }
  });
});
