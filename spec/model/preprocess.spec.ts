/**
 * Image decoding + preprocessing against the reference (PIL + CLIPImageProcessor):
 * spec/fixtures/preprocess/ (RGB down/up-scale, grey, RGBA, JPEG, 1×1) and the tiny model's
 * case0/case1 pixel_values — exact up to float32 rounding. Plus PNG variants PIL converts in its own
 * way (palette, 16-bit, low bit depth, tRNS key) built here byte by byte, and bad inputs.
 */
import { expect } from 'chai';
import { readFile } from 'node:fs/promises';
import { deflateSync } from 'node:zlib';
import { loadImage, preprocess, preprocessorFor, expandToSquare, type PreprocessorConfig, type RawImage } from '../../convnext/preprocess.js';
import { materialize, resizeBicubic } from '../../convnext/resample.js';
import { expectClose } from '../helpers.js';
import { FIXTURES, TINY_MODEL, readFixture } from '../vision-fixtures.js';

const PREP = `${FIXTURES}preprocess/`;

async function tinyConfig(): Promise<PreprocessorConfig> {
  return JSON.parse(await readFile(`${TINY_MODEL}/vision_tower/preprocessor_config.json`, 'utf8'));
}

// ---- a minimal PNG writer (stored here so each variant is explicit) ----
function crc32(bytes: Uint8Array): number {
  let c = ~0;
  for (const b of bytes) {
    c ^= b;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  }
  return ~c >>> 0;
}
function chunk(type: string, data: Uint8Array): Uint8Array {
  const out = new Uint8Array(12 + data.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, data.length);
  out.set([...type].map((c) => c.charCodeAt(0)), 4);
  out.set(data, 8);
  view.setUint32(8 + data.length, crc32(out.subarray(4, 8 + data.length)));
  return out;
}
/** PNG from already-packed scanlines (filter byte 0 is prepended per row). */
function png(width: number, height: number, depth: number, colorType: number, rows: Uint8Array[], extra: Uint8Array[] = []): Uint8Array {
  const ihdr = new Uint8Array(13);
  const v = new DataView(ihdr.buffer);
  v.setUint32(0, width);
  v.setUint32(4, height);
  ihdr.set([depth, colorType, 0, 0, 0], 8);
  const raw = new Uint8Array(rows.reduce((n, r) => n + r.length + 1, 0));
  let p = 0;
  for (const r of rows) {
    raw[p++] = 0;
    raw.set(r, p);
    p += r.length;
  }
  const parts = [
    new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr),
    ...extra,
    chunk('IDAT', deflateSync(raw)),
    chunk('IEND', new Uint8Array(0)),
  ];
  const out = new Uint8Array(parts.reduce((n, x) => n + x.length, 0));
  let o = 0;
  for (const x of parts) {
    out.set(x, o);
    o += x.length;
  }
  return out;
}

describe('preprocess: decode + expand2square + PIL bicubic + CLIP normalisation', function () {
  this.timeout(20000);

  const cases = ['prep0.png', 'prep1.png', 'prep2.png', 'prep3.png', 'prep4.jpg', 'prep5.png'];
  cases.forEach((file, k) => {
    it(`${file} matches prep${k}.pixel_values`, async () => {
      const { data: expected, shape } = await readFixture(`${PREP}preprocess.safetensors`, `prep${k}.pixel_values`);
      const { pixelValues, size } = preprocess(await loadImage(`${PREP}${file}`), await tinyConfig());
      expect([1, 3, size, size]).to.deep.equal(shape);
      expectClose(pixelValues, expected, { atol: 1e-6, rtol: 0 }, file);
    });
  });

  for (const c of [0, 1]) {
    it(`convllava-tiny case${c}.png matches case${c}.pixel_values`, async () => {
      const { data: expected } = await readFixture(`${FIXTURES}convllava-tiny/golden.safetensors`, `case${c}.pixel_values`);
      const { pixelValues } = preprocess(await loadImage(`${FIXTURES}convllava-tiny/case${c}.png`), await tinyConfig());
      expectClose(pixelValues, expected, { atol: 1e-6, rtol: 0 }, `case${c}`);
    });
  }

  it('accepts file bytes and raw RGBA canvas pixels (alpha dropped)', async () => {
    const bytes = await readFile(`${PREP}prep3.png`);
    const rgb = await loadImage(new Uint8Array(bytes));
    const rgba = new Uint8ClampedArray(rgb.width * rgb.height * 4);
    for (let p = 0; p < rgb.width * rgb.height; p++) {
      rgba.set(rgb.data.subarray(3 * p, 3 * p + 3), 4 * p);
      rgba[4 * p + 3] = p % 251; // alpha must not matter
    }
    const fromCanvas = await loadImage({ width: rgb.width, height: rgb.height, data: rgba, channels: 4 });
    expect(Buffer.from(fromCanvas.data).equals(Buffer.from(rgb.data))).to.equal(true);
    const { data: expected } = await readFixture(`${PREP}preprocess.safetensors`, 'prep3.pixel_values');
    expectClose(preprocess(fromCanvas, await tinyConfig()).pixelValues, expected, { atol: 1e-6, rtol: 0 }, 'canvas');
  });

  it('converts PNG variants as PIL convert("RGB") does', async () => {
    // palette (with a tRNS alpha table, ignored), 1 pixel per palette entry
    const plte = chunk('PLTE', new Uint8Array([10, 20, 30, 200, 100, 0, 7, 8, 9]));
    const palette = await loadImage(png(3, 1, 8, 3, [new Uint8Array([2, 0, 1])], [plte, chunk('tRNS', new Uint8Array([0, 128]))]));
    expect([...palette.data]).to.deep.equal([7, 8, 9, 10, 20, 30, 200, 100, 0]);
    // 16-bit RGB: the high byte
    const rgb16 = await loadImage(png(1, 1, 16, 2, [new Uint8Array([0x12, 0x34, 0xab, 0xcd, 0x00, 0xff])]));
    expect([...rgb16.data]).to.deep.equal([0x12, 0xab, 0x00]);
    // 16-bit grey: mode I;16, clipped to 255 (not scaled)
    const grey16 = await loadImage(png(2, 1, 16, 0, [new Uint8Array([0x00, 0x64, 0x01, 0x00])]));
    expect([...grey16.data]).to.deep.equal([100, 100, 100, 255, 255, 255]);
    // 2-bit grey: ×85
    const grey2 = await loadImage(png(4, 1, 2, 0, [new Uint8Array([0b00011011])]));
    expect([...grey2.data]).to.deep.equal([0, 0, 0, 85, 85, 85, 170, 170, 170, 255, 255, 255]);
    // RGB with a tRNS colour key: the keyed colour stays (pngjs alone would blacken it)
    const keyed = await loadImage(png(2, 1, 8, 2, [new Uint8Array([1, 2, 3, 4, 5, 6])], [chunk('tRNS', new Uint8Array([0, 1, 0, 2, 0, 3]))]));
    expect([...keyed.data]).to.deep.equal([1, 2, 3, 4, 5, 6]);
    // grey + alpha
    const la = await loadImage(png(1, 1, 8, 4, [new Uint8Array([77, 0])]));
    expect([...la.data]).to.deep.equal([77, 77, 77]);
  });

  it('the padded canvas is resized exactly as if it were materialised', () => {
    const w = 37, h = 5;
    const data = new Uint8Array(w * h * 3).map((_, i) => (i * 97 + 13) % 256);
    const img: RawImage = { width: w, height: h, channels: 3, data };
    const canvas = expandToSquare(img, [122, 116, 104]);
    const plain = materialize(canvas);
    for (const [ow, oh] of [[16, 16], [64, 64], [37, 20]]) {
      const viaCanvas = resizeBicubic(canvas, ow, oh);
      const viaPlain = resizeBicubic({ width: w, height: w, image: plain, x0: 0, y0: 0, background: [0, 0, 0] }, ow, oh);
      expect(Buffer.from(viaCanvas.data).equals(Buffer.from(viaPlain.data)), `${ow}×${oh}`).to.equal(true);
    }
  });

  it('a long thin strip is padded without materialising the square', async () => {
    const strip: RawImage = { width: 40000, height: 2, channels: 3, data: new Uint8Array(40000 * 2 * 3).fill(200) };
    const { pixelValues, size } = preprocess(strip, await tinyConfig());
    expect(size).to.equal(256);
    expect(pixelValues.length).to.equal(3 * 256 * 256);
    expect(pixelValues.every(Number.isFinite)).to.equal(true);
  });

  it("follows ConvLLaVA's set_crop_size: above 256 px, mm_vision_resolution replaces crop_size and shortest_edge", async () => {
    const file = { ...(await tinyConfig()), crop_size: { height: 320, width: 320 }, size: { shortest_edge: 320 } };
    expect(preprocessorFor(file, 256)).to.equal(file, 'at ≤ 256 the file is used as it is');
    const at768 = preprocessorFor(file, 768);
    expect(at768.crop_size).to.deep.equal({ height: 768, width: 768 });
    expect(at768.size).to.deep.equal({ shortest_edge: 768 });
    expect(at768.image_mean).to.deep.equal(file.image_mean);
    const strip: RawImage = { width: 40, height: 2, channels: 3, data: new Uint8Array(40 * 2 * 3).fill(200) };
    expect(preprocess(strip, at768).size).to.equal(768);
  });

  describe('bad inputs fail clearly before any work', () => {
    const bad = async (input: Uint8Array | RawImage, pattern: RegExp) => {
      let error: Error | null = null;
      try {
        await loadImage(input);
      } catch (e) {
        error = e as Error;
      }
      expect(error, 'expected an error').to.not.equal(null);
      expect(error!.message).to.match(pattern);
    };
    it('empty, unknown format, truncated PNG and JPEG', async () => {
      await bad(new Uint8Array(0), /empty/);
      await bad(new TextEncoder().encode('GIF89a not supported'), /not a PNG or JPEG/);
      const pngBytes = new Uint8Array(await readFile(`${PREP}prep0.png`));
      await bad(pngBytes.subarray(0, pngBytes.length >> 1), /truncated PNG/);
      await bad(pngBytes.subarray(0, 20), /truncated PNG/);
      const jpg = new Uint8Array(await readFile(`${PREP}prep4.jpg`));
      await bad(jpg.subarray(0, jpg.length - 100), /truncated JPEG/);
      await bad(jpg.subarray(0, 100), /JPEG/);
      // bytes appended after the end-of-image marker (some cameras do this) are fine, as in PIL
      const padded = new Uint8Array(jpg.length + 64);
      padded.set(jpg);
      const a = await loadImage(padded);
      const b = await loadImage(jpg);
      expect(Buffer.from(a.data).equals(Buffer.from(b.data))).to.equal(true);
    });
    it('absurd dimensions, from the header alone', async () => {
      const huge = png(100000, 100000, 8, 2, []);
      await bad(huge, /too large/);
      await bad(png(0, 5, 8, 2, []), /invalid dimensions/);
      await bad({ width: 4, height: 4, channels: 3, data: new Uint8Array(10) }, /needs 48 bytes/);
      await bad({ width: 70000, height: 1, channels: 3, data: new Uint8Array(0) }, /too large/);
    });
  });
});
