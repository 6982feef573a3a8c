/**
 * The safetensors reader and writer: one crafted bad file per validation rule (each must be refused
 * with a SafetensorsError naming the file and, where there is one, the tensor), the valid edge cases,
 * writer round trips, and a sparse > 4 GiB file read by offset.
 */
import { expect } from 'chai';
import { mkdtemp, open, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SafetensorsError, SafetensorsFile, writeSafetensors, encodeHeader, MAX_HEADER_BYTES, type TensorToWrite } from '../../weights/safetensors.js';

let dir: string;
let counter = 0;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'convllava-st-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** A file made of an explicit length prefix, header bytes and data bytes. */
async function rawFile(header: string | Uint8Array, data: Uint8Array | number = 0, lengthPrefix?: bigint): Promise<string> {
  const h = typeof header === 'string' ? new TextEncoder().encode(header) : header;
  const d = typeof data === 'number' ? new Uint8Array(data) : data;
  const bytes = new Uint8Array(8 + h.length + d.length);
  new DataView(bytes.buffer).setBigUint64(0, lengthPrefix ?? BigInt(h.length), true);
  bytes.set(h, 8);
  bytes.set(d, 8 + h.length);
  const path = join(dir, `f${counter++}.safetensors`);
  await writeFile(path, bytes);
  return path;
}

/** A header from tensor entries `name: [dtype, shape, begin, end]`. */
function header(entries: Record<string, [string, unknown, unknown, unknown]>, extra: Record<string, unknown> = {}): string {
  const json: Record<string, unknown> = { ...extra };
  for (const [name, [dtype, shape, begin, end]] of Object.entries(entries)) json[name] = { dtype, shape, data_offsets: [begin, end] };
  return JSON.stringify(json);
}

/** Opening `path` must fail with a SafetensorsError whose message matches `pattern`. */
async function expectRejected(path: string, pattern: RegExp, tensor?: string): Promise<SafetensorsError> {
  try {
    const f = await SafetensorsFile.open(path);
    await f.close();
  } catch (e) {
    expect(e, String(e)).to.be.instanceOf(SafetensorsError);
    const err = e as SafetensorsError;
    expect(err.message).to.match(pattern);
    expect(err.file).to.equal(path);
    expect(err.message.startsWith(path)).to.equal(true, 'message names the file first');
    if (tensor !== undefined) expect(err.tensor).to.equal(tensor);
    return err;
  }
  throw new Error(`${path} was accepted but should be refused (${pattern})`);
}

describe('safetensors reader: refuses malformed files', () => {
  it('a file shorter than the 8-byte length prefix', async () => {
    const path = join(dir, 'short.safetensors');
    await writeFile(path, new Uint8Array(5));
    await expectRejected(path, /too short/);
  });

  it('a header length over the 100 MB cap (before allocating it)', async () => {
    await expectRejected(await rawFile('{}', 0, BigInt(MAX_HEADER_BYTES) + 1n), /exceeds the 100000000-byte limit/);
    await expectRejected(await rawFile('{}', 0, 2n ** 64n - 1n), /exceeds/);
  });

  it('a header length beyond the end of the file', async () => {
    await expectRejected(await rawFile('{}', 0, 1000n), /runs past the end/);
  });

  it('a header that is not UTF-8', async () => {
    const bad = new Uint8Array([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x3a, 0x31, 0x7d]); // {"\xff\xfe":1}
    await expectRejected(await rawFile(bad), /not valid UTF-8/);
  });

  it('a header that is not JSON, or not an object', async () => {
    await expectRejected(await rawFile('{"a": '), /not valid JSON/);
    await expectRejected(await rawFile('\ufeff{}'), /not valid JSON/); // a byte-order mark is not JSON
    await expectRejected(await rawFile('[]'), /must be a JSON object/);
    await expectRejected(await rawFile('{"t": 5}'), /expected \{dtype, shape, data_offsets\}/, 't');
  });

  it('an unknown dtype', async () => {
    await expectRejected(await rawFile(header({ w: ['F17', [2], 0, 4] }), 4), /tensor 'w': unknown dtype "F17"/, 'w');
    await expectRejected(await rawFile(header({ w: ['f16', [2], 0, 4] }), 4), /unknown dtype "f16"/, 'w');
  });

  it('data_offsets that are not two non-negative integers, or end before they begin', async () => {
    await expectRejected(await rawFile(header({ w: ['U8', [2], -2, 0] }), 2), /data_offsets must be two non-negative integers/, 'w');
    await expectRejected(await rawFile(header({ w: ['U8', [2], 0, 2.5] }), 2), /data_offsets must be/, 'w');
    await expectRejected(await rawFile(header({ w: ['U8', [2], '0', 2] }), 2), /data_offsets must be/, 'w');
    await expectRejected(await rawFile(JSON.stringify({ w: { dtype: 'U8', shape: [2], data_offsets: [0, 1, 2] } }), 2), /data_offsets must be/, 'w');
    await expectRejected(await rawFile(header({ w: ['U8', [0], 2, 0] }), 2), /end before they begin/, 'w');
  });

  it('a bad shape (negative or fractional dimension)', async () => {
    await expectRejected(await rawFile(header({ w: ['U8', [-1], 0, 0] })), /shape must be an array of non-negative integers/, 'w');
    await expectRejected(await rawFile(header({ w: ['U8', [1.5], 0, 0] })), /shape must be/, 'w');
  });

  it('a gap between tensors, or before the first', async () => {
    await expectRejected(await rawFile(header({ a: ['U8', [4], 0, 4], b: ['U8', [4], 8, 12] }), 12), /gap of 4 bytes after 'a'.*'b'/, 'b');
    await expectRejected(await rawFile(header({ a: ['U8', [4], 4, 8] }), 8), /gap of 4 bytes at the start/, 'a');
  });

  it('overlapping tensors', async () => {
    await expectRejected(await rawFile(header({ a: ['U8', [8], 0, 8], b: ['U8', [4], 4, 8] }), 8), /'b'.*overlaps 'a'/, 'b');
  });

  it('a truncated data section', async () => {
    await expectRejected(await rawFile(header({ a: ['F32', [4], 0, 16] }), 10), /need 16 bytes of data but the file holds only 10.*truncated/, 'a');
  });

  it('trailing bytes after the last tensor', async () => {
    await expectRejected(await rawFile(header({ a: ['F32', [4], 0, 16] }), 20), /4 trailing bytes/);
    await expectRejected(await rawFile('{}', 1), /1 trailing bytes/);
  });

  it('shape × dtype size ≠ byte range', async () => {
    await expectRejected(await rawFile(header({ a: ['F16', [3], 0, 4] }), 4), /shape \[3\] of F16 needs 6 bytes but data_offsets \[0, 4\] span 4/, 'a');
    await expectRejected(await rawFile(header({ a: ['F4', [3], 0, 2] }), 2), /do not fill whole bytes/, 'a');
  });

  it('a shape whose size overflows 64 bits (exact BigInt arithmetic, no wrap-around to 0)', async () => {
    // 2^32 · 2^32 elements of U8 is 2^64 bytes: u64 arithmetic would wrap to 0 and match [0, 0].
    const err = await expectRejected(await rawFile(header({ a: ['U8', [2 ** 32, 2 ** 32], 0, 0] })), /needs 18446744073709551616 bytes/, 'a');
    expect(err.message).to.contain('span 0');
    // Past 2^53 a double product rounds; the BigInt one is exact.
    await expectRejected(await rawFile(header({ a: ['F16', [3, 2 ** 52 + 1], 0, 0] })), /needs 27021597764222982 bytes/, 'a');
  });

  it('non-string metadata', async () => {
    await expectRejected(await rawFile(JSON.stringify({ __metadata__: { format: 1 } })), /__metadata__\['format'\] must be a string/);
    await expectRejected(await rawFile(JSON.stringify({ __metadata__: ['pt'] })), /__metadata__ must be an object/);
  });

  it('duplicate tensor names (JSON.parse would keep the last silently)', async () => {
    const dup = '{"w": {"dtype":"U8","shape":[2],"data_offsets":[0,2]}, "w": {"dtype":"U8","shape":[2],"data_offsets":[0,2]}}';
    await expectRejected(await rawFile(dup, 2), /tensor name 'w' twice/, 'w');
    const escaped = '{"w": {"dtype":"U8","shape":[2],"data_offsets":[0,2]}, "\\u0077": {"dtype":"U8","shape":[2],"data_offsets":[2,4]}}';
    await expectRejected(await rawFile(escaped, 4), /tensor name 'w' twice/, 'w');
    const dupField = '{"w": {"dtype":"U8","shape":[2],"data_offsets":[0,2],"dtype":"U8"}}';
    await expectRejected(await rawFile(dupField, 2), /key 'dtype' in \$\.w twice/);
  });

  it('reads never run past a tensor, and a missing name is a typed error', async () => {
    const f = await SafetensorsFile.open(await rawFile(header({ a: ['U8', [4], 0, 4] }), new Uint8Array([1, 2, 3, 4])));
    try {
      expect(() => f.info('b')).to.throw(SafetensorsError, /no tensor 'b'/);
      let caught: unknown;
      await f.readRange('a', 2, 3).catch((e) => (caught = e));
      expect(caught).to.be.instanceOf(SafetensorsError);
      expect([...(await f.readRange('a', 1, 2))]).to.deep.equal([2, 3]);
    } finally {
      await f.close();
    }
  });
});

describe('safetensors reader: valid edge cases', () => {
  it('an empty file: header "{}" and no data', async () => {
    const f = await SafetensorsFile.open(await rawFile('{}'));
    expect(f.tensors.size).to.equal(0);
    expect(f.metadata).to.deep.equal({});
    await f.close();
  });

  it('zero-sized tensors and scalars, whitespace around the JSON, null metadata', async () => {
    const scalar = new Uint8Array(new Float32Array([2.5]).buffer);
    const text = '  \n' + header({ s: ['F32', [], 0, 4], z: ['F16', [0], 4, 4], z2: ['BF16', [3, 0, 7], 4, 4], e: ['U8', [0], 0, 0] }, { __metadata__: null }) + '   ';
    const f = await SafetensorsFile.open(await rawFile(text, scalar));
    try {
      expect(f.tensors.get('s')!.shape).to.deep.equal([]);
      expect(new Float32Array((await f.readBytes('s')).slice().buffer)[0]).to.equal(2.5);
      expect((await f.readBytes('z')).length).to.equal(0);
      expect(f.tensors.get('z2')!.shape).to.deep.equal([3, 0, 7]);
    } finally {
      await f.close();
    }
  });

  it('a > 4 GiB (sparse) file: a tensor past 2^32 is read by position', async () => {
    const pad = 2 ** 32 + 1000; // the tail tensor begins past 4 GiB
    const text = header({ pad: ['U8', [pad], 0, pad], tail: ['F32', [3], pad, pad + 12] });
    const h = new TextEncoder().encode(text);
    const path = join(dir, 'huge.safetensors');
    const fh = await open(path, 'w');
    try {
      const prefix = new Uint8Array(8);
      new DataView(prefix.buffer).setBigUint64(0, BigInt(h.length), true);
      await fh.write(prefix, 0, 8, 0);
      await fh.write(h, 0, h.length, 8);
      await fh.write(new Uint8Array(new Float32Array([1.5, -2, 3.25]).buffer), 0, 12, 8 + h.length + pad);
    } finally {
      await fh.close();
    }
    const f = await SafetensorsFile.open(path);
    try {
      expect(f.tensors.get('tail')!.begin).to.be.greaterThan(2 ** 32);
      const bytes = await f.readBytes('tail');
      expect([...new Float32Array(bytes.slice().buffer)]).to.deep.equal([1.5, -2, 3.25]);
    } finally {
      await f.close();
      await rm(path);
    }
  });
});

describe('safetensors writer', () => {
  const tensors = (): TensorToWrite[] => [
    { name: 'model.w', dtype: 'F32', shape: [2, 3], data: new Float32Array([1, 2, 3, 4, 5, -6]) },
    { name: 'h', dtype: 'F16', shape: [3], data: new Uint16Array([0x3c00, 0xc000, 0x7bff]) },
    { name: 'b', dtype: 'BF16', shape: [1, 2], data: new Uint16Array([0x3f80, 0x4049]) },
    { name: 'ids', dtype: 'I64', shape: [2], data: new BigInt64Array([-1n, 2n ** 40n]) },
    { name: 'scalar', dtype: 'I32', shape: [], data: new Int32Array([7]) },
    { name: 'empty', dtype: 'F32', shape: [0, 4], data: new Float32Array(0) },
    { name: 'mask', dtype: 'BOOL', shape: [3], data: new Uint8Array([1, 0, 1]) },
  ];

  async function expectSameAsWritten(path: string, written: TensorToWrite[]): Promise<void> {
    const f = await SafetensorsFile.open(path);
    try {
      expect([...f.tensors.keys()].sort()).to.deep.equal(written.map((t) => t.name).sort());
      for (const t of written) {
        const info = f.tensors.get(t.name)!;
        expect(info.dtype).to.equal(t.dtype);
        expect(info.shape).to.deep.equal(t.shape);
        const data = t.data as ArrayBufferView;
        expect(Buffer.from(await f.readBytes(t.name)).equals(Buffer.from(data.buffer, data.byteOffset, data.byteLength))).to.equal(true, t.name);
      }
    } finally {
      await f.close();
    }
  }

  it('round-trips every kind of tensor and the metadata; the data section starts 8-byte aligned', async () => {
    const path = join(dir, 'rt.safetensors');
    await writeSafetensors(path, tensors(), { format: 'pt', note: 'ü' });
    await expectSameAsWritten(path, tensors());
    const f = await SafetensorsFile.open(path);
    expect(f.metadata).to.deep.equal({ format: 'pt', note: 'ü' });
    expect(f.dataStart % 8).to.equal(0);
    await f.close();
  });

  it('streams data given as chunks, and accepts an async iterable of tensors', async () => {
    const big = new Float32Array(1000).map((_, i) => i * 0.5 - 100);
    const chunked: TensorToWrite = {
      name: 'big',
      dtype: 'F32',
      shape: [10, 100],
      data: function* () {
        for (let i = 0; i < 1000; i += 333) yield big.subarray(i, Math.min(1000, i + 333));
      },
    };
    const path = join(dir, 'stream.safetensors');
    await writeSafetensors(path, [chunked, ...tensors()]);
    await expectSameAsWritten(path, [{ ...chunked, data: big }, ...tensors()]);

    const path2 = join(dir, 'iter.safetensors');
    async function* each() {
      for (const t of tensors()) yield t;
    }
    await writeSafetensors(path2, each(), { a: 'b' });
    await expectSameAsWritten(path2, tensors());
    expect((await readdir(dir)).filter((n) => n.includes('.partial'))).to.deep.equal([], 'no temporary files left');
  });

  it('refuses data of the wrong length, duplicate names and unknown dtypes, leaving no file behind', async () => {
    const path = join(dir, 'bad-write.safetensors');
    const cases: [TensorToWrite[], RegExp][] = [
      [[{ name: 'w', dtype: 'F32', shape: [3], data: new Float32Array(2) }], /is 12 bytes but its data has 8/],
      [[{ name: 'w', dtype: 'F32', shape: [1], data: new Float32Array(1) }, { name: 'w', dtype: 'F32', shape: [1], data: new Float32Array(1) }], /listed twice/],
      [[{ name: 'w', dtype: 'F12' as 'F32', shape: [1], data: new Float32Array(1) }], /unknown dtype/],
      [[{ name: '__metadata__', dtype: 'F32', shape: [1], data: new Float32Array(1) }], /cannot be a tensor name/],
    ];
    for (const [list, pattern] of cases) {
      let caught: unknown;
      await writeSafetensors(path, list).catch((e) => (caught = e));
      expect(caught, String(pattern)).to.be.instanceOf(SafetensorsError);
      expect((caught as Error).message).to.match(pattern);
      expect((await readdir(dir)).filter((n) => n.startsWith('bad-write'))).to.deep.equal([]);
    }
  });

  it('encodeHeader lays tensors out contiguously in the given order', () => {
    const { header, infos, dataLength } = encodeHeader([
      { name: 'a', dtype: 'F16', shape: [3] },
      { name: 'b', dtype: 'F32', shape: [2, 2] },
    ]);
    expect(infos.map((i) => [i.begin, i.end])).to.deep.equal([[0, 6], [6, 22]]);
    expect(dataLength).to.equal(22);
    expect((header.length - 8) % 8).to.equal(0);
  });

  it('written files are byte-compatible with the reference fixture (re-writing a shard reproduces it)', async () => {
    const fixture = 'spec/fixtures/convllava-tiny/model/vision_tower/model.safetensors';
    const f = await SafetensorsFile.open(fixture);
    const list: TensorToWrite[] = [];
    for (const t of [...f.tensors.values()].sort((a, b) => a.begin - b.begin)) {
      list.push({ name: t.name, dtype: t.dtype, shape: t.shape, data: await f.readBytes(t.name) });
    }
    const meta = f.metadata;
    await f.close();
    const path = join(dir, 'rewrite.safetensors');
    await writeSafetensors(path, list, meta);
    const [a, b] = await Promise.all([readFile(fixture), readFile(path)]);
    const dataA = a.subarray(8 + Number(a.readBigUInt64LE(0)));
    const dataB = b.subarray(8 + Number(b.readBigUInt64LE(0)));
    expect(dataB.equals(dataA)).to.equal(true);
  });
});
