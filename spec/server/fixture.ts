/**
 * What every server spec runs against: one model folder, its images and question, one loaded model.
 *
 * The specs check the server against the library: the greedy answer over HTTP (plain and streamed, PNG
 * and JPEG) must equal ConvLlava.generate on the same image and prompt, with the same token counts.
 * That holds for any model, including the tiny random-weight fixture used here, whose answers are
 * meaningless but deterministic.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { ConvLlava } from '../../llm/pipeline.js';
import { serve, type ConvLlavaServer, type ServeOptions } from '../../server/server.js';
import { testGpu } from '../helpers.js';

const TINY = new URL('../fixtures/convllava-tiny/', import.meta.url);

/** The model folder every server spec loads (one constant). */
export const MODEL_DIR = fileURLToPath(new URL('model', TINY));
/** KV cache positions: small, so that a context overflow is cheap to provoke. */
export const MAX_CONTEXT = 160;
/** The question asked about each image. */
export const QUESTION: string = JSON.parse(readFileSync(new URL('golden.json', TINY), 'utf8')).question;
/** Images as files: a PNG, and a JPEG made from it (`cjpeg -quality 90`, libjpeg-turbo 2.1.5). */
export const IMAGES = {
  png: fileURLToPath(new URL('case0.png', TINY)),
  jpeg: fileURLToPath(new URL('./case0.jpg', import.meta.url)),
  otherPng: fileURLToPath(new URL('case1.png', TINY)),
};

// ==== For a trained model ===========================================================================
// With a model whose answers mean something (models/convllava-shapes), point MODEL_DIR at it (and
// QUESTION, IMAGES and MAX_CONTEXT at what it was trained on: IMAGES.jpeg must show the same picture
// as IMAGES.png), and return the known answer per image here: the openai-client spec then also checks
// the served answer against it, besides the equality with ConvLlava.generate it always checks. The
// tiny fixture's answers are random text, so it returns undefined.
export function expectedAnswer(image: keyof typeof IMAGES): RegExp | undefined {
  void image;
  return undefined;
}
// ====================================================================================================

/** The image file as a data URL, as an OpenAI client sends it. */
export function dataUrl(path: string): string {
  const type = path.endsWith('.png') ? 'image/png' : 'image/jpeg';
  return `data:${type};base64,${readFileSync(path).toString('base64')}`;
}

export function loadModel(): Promise<ConvLlava> {
  return testGpu().then((gpu) => ConvLlava.load(MODEL_DIR, { dtype: 'f32', maxContext: MAX_CONTEXT, gpu }));
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
