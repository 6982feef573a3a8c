/**
 * What every server spec runs against: one model folder, its images and question, one loaded model.
 *
 * The specs check the server against the library: the greedy answer over HTTP (plain and streamed, PNG
 * and JPEG) must equal ConvLlava.generate on the same image and prompt, with the same token counts —
 * and, since the model is the trained shapes model (models/convllava-shapes), be the right answer.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { ConvLlava } from '../../llm/pipeline.js';
import { serve, type ConvLlavaServer, type ServeOptions } from '../../server/server.js';
import { testGpu } from '../helpers.js';

/** The model folder every server spec loads (one constant): the trained shapes model. */
export const MODEL_DIR = fileURLToPath(new URL('../../models/convllava-shapes', import.meta.url));
/** KV cache positions: small, so that a context overflow is cheap to provoke. */
export const MAX_CONTEXT = 160;
/** The question asked about each image. */
export const QUESTION = 'Describe the image.';
/**
 * Images as files: a 256×256 shapes scene as PNG and as JPEG (quality 90) — the same picture (scene 0
 * of shapes/scene.ts seeded 139, cropped to 256×256) — and a 256×192 picture from outside the family.
 */
export const IMAGES = {
  png: fileURLToPath(new URL('./shapes.png', import.meta.url)),
  jpeg: fileURLToPath(new URL('./shapes.jpg', import.meta.url)),
  otherPng: fileURLToPath(new URL('../fixtures/convllava-tiny/case1.png', import.meta.url)),
};

/** The right answer to QUESTION per image (the picture outside the family has none). */
export function expectedAnswer(image: keyof typeof IMAGES): RegExp | undefined {
  return image === 'otherPng' ? undefined : /^A red circle and a yellow square\.$/;
}

/** The image file as a data URL, as an OpenAI client sends it. */
export function dataUrl(path: string): string {
  const type = path.endsWith('.png') ? 'image/png' : 'image/jpeg';
  return `data:${type};base64,${readFileSync(path).toString('base64')}`;
}

export function loadModel(): Promise<ConvLlava> {
  return testGpu().then((gpu) => ConvLlava.load(MODEL_DIR, { dtype: 'f32', precision: 'f32', maxContext: MAX_CONTEXT, gpu }));
}

/** A server on 127.0.0.1 at a free port over `model`, its log lines collected instead of printed. */
export async function startServer(model: ConvLlava, options: Partial<ServeOptions> = {}): Promise<ConvLlavaServer & { lines: string[] }> {
  const lines: string[] = [];
  const server = await serve({ model, host: '127.0.0.1', port: 0, log: (line) => lines.push(line), ...options });
  return Object.assign(server, { lines });
}

/** Polls `check` every 10 ms until it holds (or fails after `ms`). */
export async function until(check: () => boolean | Promise<boolean>, what: string, ms = 20_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}
