/**
 * Image decoding: file bytes (PNG, JPEG) or raw canvas pixels → 8-bit RGB, exactly as the reference
 * gets them from PIL (`Image.open(f).convert('RGB')`).
 *
 *   PNG   pngjs, then PIL's conversions: alpha dropped (not composited), palette looked up, 1/2/4-bit
 *         grey scaled to 0…255, 16-bit colour keeps the high byte, 16-bit grey is *clipped* to 255
 *         (PIL opens it as mode I;16, and I;16 → RGB clips), a tRNS colour key is ignored.
 *   JPEG  libjpeg-turbo compiled to WebAssembly (@cwasm/jpeg-turbo): the same library and the same
 *         default "fancy" chroma upsampling as PIL, so the pixels are bit-identical.
 *   raw   { width, height, data, channels: 3 | 4 } (e.g. a canvas' ImageData); alpha dropped.
 *
 * EXIF orientation is not applied (the reference does not apply it either).
 * Every input is validated from its header before any pixel work: empty, truncated, unknown format
 * and absurd sizes fail with a message naming the problem.
 */
import { Buffer } from 'buffer'; // Node's own module; in browsers the npm polyfill (package.json "browser" maps pngjs too)
import { PNG } from 'pngjs';

/** Interleaved 8-bit pixels, row-major [height, width, channels]. */
export interface RawImage {
  width: number;
  height: number;
  data: Uint8Array | Uint8ClampedArray;
  channels: 3 | 4;
}

/**
 * Largest image accepted (pixels): 2^26 = 8192², below PIL's own 89 MP warning. Checked from the
 * header before any decoding, it bounds decoding memory: the largest 8-bit RGBA PNG peaks at about
 * 1.05 GB RSS (inflated scanlines + pngjs' RGBA + our RGB), the largest JPEG at 0.8 GB.
 */
export const MAX_PIXELS = 2 ** 26;
/** 16-bit PNGs decode to twice the bytes per pixel, so half the pixels (5792²: ~0.95 GB peak). */
export const MAX_PIXELS_16BIT = 2 ** 25;
/** Largest image file read from disk. */
export const MAX_IMAGE_BYTES = 256 << 20;
/** Largest side accepted (the padded square is never materialised, but its filter taps are visited). */
export const MAX_SIDE = 2 ** 16;

const PNG_SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

/** Decodes PNG or JPEG bytes (sniffed from the signature) to RGB. `name` only labels errors. */
export async function decodeImage(bytes: Uint8Array, name = 'image'): Promise<RawImage> {
  if (bytes.length === 0) throw new Error(`${name}: the file is empty`);
  if (PNG_SIGNATURE.every((b, i) => bytes[i] === b)) return decodePng(bytes, name);
  if (bytes[0] === 0xff && bytes[1] === 0xd8 && bytes[2] === 0xff) return decodeJpeg(bytes, name);
  const head = [...bytes.subarray(0, 8)].map((b) => b.toString(16).padStart(2, '0')).join(' ');
  throw new Error(`${name}: not a PNG or JPEG file (first bytes ${head}); convert it to PNG or JPEG`);
}

/** Validates raw pixels and returns them as RGB (alpha dropped, like PIL's convert('RGB')). */
export function rawToRgb(img: RawImage, name = 'raw image'): RawImage {
  const { width, height, data, channels } = img;
  checkSize(width, height, name);
  if (channels !== 3 && channels !== 4) throw new Error(`${name}: channels must be 3 (RGB) or 4 (RGBA), got ${channels}`);
  if (!(data instanceof Uint8Array || data instanceof Uint8ClampedArray)) {
    throw new Error(`${name}: data must be a Uint8Array or Uint8ClampedArray of 8-bit samples`);
  }
  if (data.length !== width * height * channels) {
    throw new Error(`${name}: ${width}×${height}×${channels} needs ${width * height * channels} bytes, got ${data.length}`);
  }
  if (channels === 3) return { width, height, channels: 3, data: new Uint8Array(data.buffer, data.byteOffset, data.length) };
  return { width, height, channels: 3, data: dropAlpha(data, width * height) };
}

function checkSize(width: number, height: number, name: string, maxPixels = MAX_PIXELS, kind = ''): void {
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 1 || height < 1) {
    throw new Error(`${name}: invalid dimensions ${width}×${height}`);
  }
  if (width > MAX_SIDE || height > MAX_SIDE || width * height > maxPixels) {
    throw new Error(
      `${name}: ${width}×${height} (${width * height} pixels) is too large (limits${kind}: ${MAX_SIDE} per side, ${maxPixels} pixels); downscale it first`,
    );
  }
}

function dropAlpha(rgba: ArrayLike<number>, pixels: number): Uint8Array {
  const rgb = new Uint8Array(pixels * 3);
  for (let p = 0; p < pixels; p++) {
    rgb[3 * p] = rgba[4 * p];
    rgb[3 * p + 1] = rgba[4 * p + 1];
    rgb[3 * p + 2] = rgba[4 * p + 2];
  }
  return rgb;
}

// ---- PNG -----------------------------------------------------------------------------------------

interface PngChunk {
  type: string;
  start: number; // offset of the length field
  end: number; // offset after the CRC
}

/** Walks the chunk list without inflating anything; throws on truncation. */
function pngChunks(bytes: Uint8Array, name: string): PngChunk[] {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const chunks: PngChunk[] = [];
  let pos = 8;
  while (pos < bytes.length) {
    if (pos + 12 > bytes.length) throw new Error(`${name}: truncated PNG (chunk header at byte ${pos} is cut off)`);
    const length = view.getUint32(pos);
    const type = String.fromCharCode(...bytes.subarray(pos + 4, pos + 8));
    const end = pos + 12 + length;
    if (end > bytes.length) throw new Error(`${name}: truncated PNG (${type} chunk needs ${length} bytes, file ends first)`);
    chunks.push({ type, start: pos, end });
    pos = end;
    if (type === 'IEND') break;
  }
  if (chunks[0]?.type !== 'IHDR') throw new Error(`${name}: corrupt PNG (first chunk is not IHDR)`);
  if (!chunks.some((c) => c.type === 'IDAT')) throw new Error(`${name}: truncated PNG (no image data)`);
  return chunks;
}

function decodePng(bytes: Uint8Array, name: string): RawImage {
  const chunks = pngChunks(bytes, name);
  const ihdr = new DataView(bytes.buffer, bytes.byteOffset + chunks[0].start + 8, 13);
  const width = ihdr.getUint32(0);
  const height = ihdr.getUint32(4);
  const depth = ihdr.getUint8(8);
  const colorType = ihdr.getUint8(9);
  if (depth === 16) checkSize(width, height, name, MAX_PIXELS_16BIT, ' for 16-bit PNG');
  else checkSize(width, height, name);

  // pngjs turns a tRNS colour key into fully transparent *black*; PIL keeps the colour and
  // convert('RGB') ignores transparency, so drop the key (palette tRNS only touches alpha: keep it).
  let input = bytes;
  if (colorType !== 3 && chunks.some((c) => c.type === 'tRNS')) {
    input = concat(chunks.filter((c) => c.type !== 'tRNS').map((c) => bytes.subarray(c.start, c.end)), bytes.subarray(0, 8));
  }

  let png: PNG;
  try {
    png = PNG.sync.read(Buffer.from(input.buffer, input.byteOffset, input.byteLength), { skipRescale: true });
  } catch (e) {
    throw new Error(`${name}: cannot decode PNG (${(e as Error).message})`);
  }
  // pngjs always returns RGBA; samples are 0…2^depth−1 (Uint16Array for 16-bit) when not rescaled.
  const samples = png.data as unknown as ArrayLike<number>;
  const pixels = width * height;
  const rgb = new Uint8Array(pixels * 3);
  const isGrey = colorType === 0 || colorType === 4;
  const toByte: (v: number) => number =
    colorType === 3 || depth === 8
      ? (v) => v
      : depth === 16
        ? isGrey && colorType === 0
          ? (v) => Math.min(v, 255) // PIL: I;16 → RGB clips
          : (v) => v >> 8 // PIL: ;16B unpackers keep the high byte
        : (v) => (v * 255) / (2 ** depth - 1); // 1/2/4-bit grey: ×255, ×85, ×17
  for (let p = 0; p < pixels; p++) {
    rgb[3 * p] = toByte(samples[4 * p]);
    rgb[3 * p + 1] = toByte(samples[4 * p + 1]);
    rgb[3 * p + 2] = toByte(samples[4 * p + 2]);
  }
  return { width, height, channels: 3, data: rgb };
}

function concat(parts: Uint8Array[], head: Uint8Array): Uint8Array {
  const out = new Uint8Array(head.length + parts.reduce((n, p) => n + p.length, 0));
  out.set(head);
  let pos = head.length;
  for (const p of parts) {
    out.set(p, pos);
    pos += p.length;
  }
  return out;
}

// ---- JPEG ----------------------------------------------------------------------------------------

/**
 * Walks the marker segments up to the first scan: the frame size (SOF) and where the scan starts.
 * Throws on truncation or a missing frame header.
 */
function jpegHeader(bytes: Uint8Array, name: string): { width: number; height: number; scanStart: number; frame: number; components: number } {
  let size: { width: number; height: number; frame: number; components: number } | null = null;
  let pos = 2;
  while (pos + 4 <= bytes.length) {
    if (bytes[pos] !== 0xff) throw new Error(`${name}: corrupt JPEG (expected a marker at byte ${pos})`);
    const marker = bytes[pos + 1];
    if (marker === 0xff) {
      pos++; // fill byte
      continue;
    }
    if (marker === 0xd8 || (marker >= 0xd0 && marker <= 0xd7) || marker === 0x01) {
      pos += 2;
      continue;
    }
    const length = (bytes[pos + 2] << 8) | bytes[pos + 3];
    // SOF0…SOF15 except DHT (C4), JPG (C8), DAC (CC)
    if (marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc && pos + 9 <= bytes.length) {
      size ??= { height: (bytes[pos + 5] << 8) | bytes[pos + 6], width: (bytes[pos + 7] << 8) | bytes[pos + 8], frame: marker, components: bytes[pos + 9] ?? 0 };
    }
    if (marker === 0xda) {
      if (!size) break;
      return { ...size, scanStart: pos + 2 + length };
    }
    if (marker === 0xd9) break; // end of image before any scan
    pos += 2 + length;
  }
  throw new Error(`${name}: truncated or corrupt JPEG (no frame header and scan found)`);
}

type DecodedRgba = { width: number; height: number; data: Uint8ClampedArray };
/** The npm module decodes synchronously; its browser twin (browser/jpeg-turbo.ts) first awaits its wasm. */
type JpegDecoder = (bytes: Uint8Array) => DecodedRgba | Promise<DecodedRgba>;
let jpegTurbo: JpegDecoder | null = null;

async function decodeJpeg(bytes: Uint8Array, name: string): Promise<RawImage> {
  const { width, height, scanStart, frame, components } = jpegHeader(bytes, name);
  checkSize(width, height, name);
  // What this decoder cannot do is refused from the frame header, by name (not blamed on the data).
  if (frame === 0xc3 || frame === 0xc7 || frame === 0xcb || frame === 0xcf) {
    throw new Error(`${name}: lossless JPEG (SOF${frame - 0xc0}) is not supported; convert it to PNG or a baseline JPEG`);
  }
  if (components !== 1 && components !== 3) {
    throw new Error(`${name}: JPEG with ${components} colour components${components === 4 ? ' (CMYK/YCCK)' : ''} is not supported; convert it to RGB`);
  }
  // libjpeg pads a cut-off scan with grey and only warns; PIL raises "image file is truncated".
  // In entropy-coded data 0xFF is always stuffed (FF 00), so an FF D9 after the first scan is the real
  // end-of-image marker (bytes after it, which some cameras append, are ignored as PIL does).
  if (lastIndexOfEoi(bytes) < scanStart) throw new Error(`${name}: truncated JPEG (no end-of-image marker)`);
  // The wasm module is compiled on first use (CommonJS; imported lazily so PNG-only users never load it).
  jpegTurbo ??= ((await import('@cwasm/jpeg-turbo')) as unknown as { decode: JpegDecoder }).decode;
  let rgba: DecodedRgba;
  try {
    rgba = await jpegTurbo(bytes);
  } catch (e) {
    const arithmetic = frame >= 0xc9 && frame <= 0xcf;
    throw new Error(
      `${name}: cannot decode JPEG: ${arithmetic ? `arithmetic-coded (SOF${frame - 0xc0}) data failed to decode` : 'corrupt image data'} ` +
        `(${width}×${height}, ${components} components; libjpeg-turbo: ${(e as Error).message})`,
    );
  }
  return { width: rgba.width, height: rgba.height, channels: 3, data: dropAlpha(rgba.data, rgba.width * rgba.height) };
}

function lastIndexOfEoi(bytes: Uint8Array): number {
  for (let i = bytes.length - 2; i >= 0; i--) if (bytes[i] === 0xff && bytes[i + 1] === 0xd9) return i;
  return -1;
}

// ---- size from the header ------------------------------------------------------------------------

/**
 * Format and size of PNG or JPEG bytes, read from the headers alone (nothing is inflated or
 * decoded): lets a caller such as the HTTP server refuse an image by its pixel count before paying
 * for decoding it. Throws the same messages as decodeImage for unknown, truncated or corrupt input.
 */
export function imageSize(bytes: Uint8Array, name = 'image'): { format: 'png' | 'jpeg'; width: number; height: number } {
  if (bytes.length === 0) throw new Error(`${name}: the file is empty`);
  if (PNG_SIGNATURE.every((b, i) => bytes[i] === b)) {
    const ihdr = new DataView(bytes.buffer, bytes.byteOffset + pngChunks(bytes, name)[0].start + 8, 8);
    return { format: 'png', width: ihdr.getUint32(0), height: ihdr.getUint32(4) };
  }
  if (bytes[0] === 0xff && bytes[1] === 0xd8 && bytes[2] === 0xff) {
    const { width, height } = jpegHeader(bytes, name);
    return { format: 'jpeg', width, height };
  }
  const head = [...bytes.subarray(0, 8)].map((b) => b.toString(16).padStart(2, '0')).join(' ');
  throw new Error(`${name}: not a PNG or JPEG file (first bytes ${head}); convert it to PNG or JPEG`);
}
