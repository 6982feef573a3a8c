/**
 * Image → pixel_values, as ConvLLaVA's reference pipeline does it (image_aspect_ratio "pad" +
 * CLIPImageProcessor, PIL path):
 *
 *   decode → RGB                              (decode.ts: PIL's Image.open(...).convert('RGB'))
 *   expand2square: paste centred on an s×s canvas of ⌊mean·255⌋   s = max(w, h)
 *   resize shortest edge → size.shortest_edge with PIL BICUBIC     (resample.ts, bit-exact)
 *   center crop → crop_size
 *   ×rescale_factor (float64, then float32), (x − mean) / std in float32
 *   → Float32Array CHW [3, R, R]
 *
 * Every step is integer or exactly-rounded float math on the CPU, so the result equals the
 * reference's float32 tensor bit for bit. (It is a few million operations per image; the GPU would
 * not pay for the upload.)
 */
import { decodeImage, MAX_IMAGE_BYTES, rawToRgb, type RawImage } from './decode.js';
import { materialize, resizeBicubic, type PaddedImage } from './resample.js';

export type { RawImage } from './decode.js';

/** The fields of `preprocessor_config.json` (CLIPImageProcessor) this pipeline uses. */
export interface PreprocessorConfig {
  size: { shortest_edge: number };
  crop_size: { height: number; width: number };
  image_mean: number[];
  image_std: number[];
  rescale_factor: number;
  resample?: number;
  do_resize?: boolean;
  do_center_crop?: boolean;
  do_rescale?: boolean;
  do_normalize?: boolean;
}

const PIL_BICUBIC = 3;

/** ConvLLaVA's vision tower resizes its processor to mm_vision_resolution only above this size. */
export const CROP_OVERRIDE_ABOVE = 256;

/**
 * The preprocessing ConvLLaVA actually runs. Its ConvNeXtCLIPVisionTower.load_model calls
 * set_crop_size(mm_vision_resolution) when that is > 256, replacing preprocessor_config.json's
 * crop_size and size.shortest_edge (the file may still hold the CLIP ConvNeXt's own 256/320).
 */
export function preprocessorFor(cfg: PreprocessorConfig, resolution: number): PreprocessorConfig {
  if (resolution <= CROP_OVERRIDE_ABOVE) return cfg;
  return { ...cfg, crop_size: { height: resolution, width: resolution }, size: { shortest_edge: resolution } };
}

/** Reads and decodes an image file, file bytes, or raw canvas pixels into 8-bit RGB. */
export async function loadImage(input: string | Uint8Array | RawImage): Promise<RawImage> {
  if (typeof input === 'string') {
    let bytes: Uint8Array;
    try {
      // Node only (browsers pass bytes or pixels). Regular files only: a FIFO or /dev/zero is refused
      // by type, without blocking; larger than MAX_IMAGE_BYTES is refused by size.
      const { readRegularFile } = await import('../weights/node-files.js');
      bytes = await readRegularFile(input, MAX_IMAGE_BYTES, 'an image file', `'${input}'`);
    } catch (e) {
      throw new Error(`cannot read image: ${(e as Error).message}`);
    }
    return decodeImage(bytes, input);
  }
  if (input instanceof Uint8Array) return decodeImage(input);
  return rawToRgb(input);
}

/** The padding colour: ⌊mean·255⌋ per channel, as `tuple(int(x*255) for x in image_mean)`. */
export function backgroundColour(cfg: PreprocessorConfig): [number, number, number] {
  const [r, g, b] = cfg.image_mean.map((m) => Math.trunc(m * 255));
  return [r, g, b];
}

/** expand2square: the image centred on a square canvas (not materialised; see PaddedImage). */
export function expandToSquare(img: RawImage, background: [number, number, number]): PaddedImage {
  const s = Math.max(img.width, img.height);
  return {
    width: s,
    height: s,
    image: img,
    x0: Math.floor((s - img.width) / 2),
    y0: Math.floor((s - img.height) / 2),
    background,
  };
}

/** Runs the whole pipeline on an RGB image: pixel values CHW [3, size, size]. */
export function preprocess(img: RawImage, cfg: PreprocessorConfig): { pixelValues: Float32Array; size: number } {
  const rgb = img.channels === 3 ? img : rawToRgb(img);
  checkConfig(cfg);
  const canvas = expandToSquare(rgb, backgroundColour(cfg));

  // Shortest edge → size.shortest_edge; the other edge keeps the aspect ratio (truncated, as int()).
  const edge = cfg.size.shortest_edge;
  const { width: w, height: h } = canvas;
  let resized: RawImage;
  if (cfg.do_resize !== false && Math.min(w, h) !== edge) {
    const [nw, nh] = w <= h ? [edge, Math.trunc((edge * h) / w)] : [Math.trunc((edge * w) / h), edge];
    resized = resizeBicubic(canvas, nw, nh);
  } else {
    resized = materialize(canvas);
  }

  // Center crop (PIL's crop fills outside pixels with 0 when the crop is larger than the image).
  const ch = cfg.do_center_crop === false ? resized.height : cfg.crop_size.height;
  const cw = cfg.do_center_crop === false ? resized.width : cfg.crop_size.width;
  if (ch !== cw) throw new Error(`preprocess: crop_size must be square, got ${cw}×${ch}`);
  const top = Math.floor((resized.height - ch) / 2);
  const left = Math.floor((resized.width - cw) / 2);

  // ×rescale (float64 → float32), then (x − mean) / std in float32 — numpy's order and dtypes.
  const scale = cfg.do_rescale === false ? 1 : cfg.rescale_factor;
  const mean = cfg.image_mean.map(Math.fround);
  const std = cfg.image_std.map(Math.fround);
  const normalise = cfg.do_normalize !== false;
  const out = new Float32Array(3 * ch * cw);
  for (let y = 0; y < ch; y++) {
    const sy = y + top;
    for (let x = 0; x < cw; x++) {
      const sx = x + left;
      const inside = sy >= 0 && sy < resized.height && sx >= 0 && sx < resized.width;
      for (let c = 0; c < 3; c++) {
        const byte = inside ? resized.data[3 * (sy * resized.width + sx) + c] : 0;
        const v = Math.fround(byte * scale);
        out[(c * ch + y) * cw + x] = normalise ? Math.fround(Math.fround(v - mean[c]) / std[c]) : v;
      }
    }
  }
  return { pixelValues: out, size: ch };
}

function checkConfig(cfg: PreprocessorConfig): void {
  const where = 'preprocessor_config.json';
  if (!(cfg.size?.shortest_edge > 0)) throw new Error(`${where}: size.shortest_edge missing (only shortest-edge resizing is supported)`);
  if (!(cfg.crop_size?.height > 0)) throw new Error(`${where}: crop_size missing`);
  if (cfg.image_mean?.length !== 3 || cfg.image_std?.length !== 3) throw new Error(`${where}: image_mean and image_std need 3 values`);
  if (cfg.resample !== undefined && cfg.resample !== PIL_BICUBIC) {
    throw new Error(`${where}: resample ${cfg.resample} is not supported (only 3 = BICUBIC, as CLIP uses)`);
  }
}
