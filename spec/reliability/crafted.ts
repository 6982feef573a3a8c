/**
 * Crafted inputs for the reliability specs, built in memory (no binary fixtures): PNG and JPEG
 * files of any claimed size, cheap to make because their pixels are uniform.
 */
import { deflateSync } from 'node:zlib';

function crc32(bytes: Uint8Array): number {
  let crc = 0xffffffff;
  for (const b of bytes) {
    crc ^= b;
    for (let k = 0; k < 8; k++) crc = crc & 1 ? 0xedb88320 ^ (crc >>> 1) : crc >>> 1;
  }
  return (crc ^ 0xffffffff) >>> 0;
}

function pngChunk(type: string, data: Uint8Array): Buffer {
  const out = Buffer.alloc(12 + data.length);
  out.writeUInt32BE(data.length, 0);
  out.write(type, 4, 'ascii');
  Buffer.from(data).copy(out, 8);
  out.writeUInt32BE(crc32(out.subarray(4, 8 + data.length)), 8 + data.length);
  return out;
}

/**
 * A black w×h PNG (colour type 0 grey, 2 RGB, 4 grey+alpha, 6 RGBA; depth 8 or 16). The image data
 * is deflated zeros, so a 16384² image is a few hundred KB. `idat` replaces the compressed data
 * (e.g. a short stream that claims less than the header needs).
 */
export function makePng(w: number, h: number, depth = 8, colorType = 6, idat?: Uint8Array): Buffer {
  const channels = ({ 0: 1, 2: 3, 4: 2, 6: 4 } as Record<number, number>)[colorType];
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(w, 0);
  ihdr.writeUInt32BE(h, 4);
  ihdr[8] = depth;
  ihdr[9] = colorType;
  let data = idat;
  if (!data) {
    const row = 1 + Math.ceil((w * channels * depth) / 8);
    data = deflateSync(Buffer.alloc(row * h), { level: 9 });
  }
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    pngChunk('IHDR', ihdr),
    pngChunk('IDAT', data),
    pngChunk('IEND', new Uint8Array(0)),
  ]);
}

function segment(marker: number, body: number[]): number[] {
  const length = body.length + 2;
  return [0xff, marker, length >> 8, length & 0xff, ...body];
}

/**
 * A mid-grey w×h baseline JPEG with `components` components (1 grey, 3 YCbCr, 4 CMYK), 4:4:4, all
 * quantisers 1 and one-symbol Huffman tables: every 8×8 block is DC difference 0 + end-of-block,
 * two 0 bits, so the scan is zeros and a 8192² image is ~100 KB per component. `sof` picks the
 * frame type (0xC0 baseline, 0xC9 arithmetic); `scan` replaces the entropy-coded data.
 */
export function makeJpeg(w: number, h: number, options: { components?: number; sof?: number; scan?: Uint8Array } = {}): Buffer {
  const components = options.components ?? 3;
  const blocks = Math.ceil(w / 8) * Math.ceil(h / 8) * components;
  const scan = options.scan ?? new Uint8Array(Math.ceil((blocks * 2) / 8));
  const ids = Array.from({ length: components }, (_, i) => i + 1);
  const bytes = [
    0xff, 0xd8,
    ...segment(0xdb, [0x00, ...new Array(64).fill(1)]), // DQT: table 0, 8-bit, all ones
    ...segment(options.sof ?? 0xc0, [8, h >> 8, h & 0xff, w >> 8, w & 0xff, components, ...ids.flatMap((id) => [id, 0x11, 0])]),
    ...segment(0xc4, [0x00, 1, ...new Array(15).fill(0), 0x00]), // DHT DC 0: one code of length 1 → category 0
    ...segment(0xc4, [0x10, 1, ...new Array(15).fill(0), 0x00]), // DHT AC 0: one code of length 1 → EOB
    ...segment(0xda, [components, ...ids.flatMap((id) => [id, 0x00]), 0, 63, 0]),
  ];
  return Buffer.concat([Buffer.from(bytes), Buffer.from(scan), Buffer.from([0xff, 0xd9])]);
}
