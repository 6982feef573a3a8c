/**
 * The shapes world, in TypeScript: seeded scenes, their pixels, PNG/JPEG files, and every question with
 * its answer. The same family (and the same answer key) as training/shapes_data.py, which drew the
 * training images in Python; this module draws the evaluation and demo images, with its own generator
 * (mulberry32), so an evaluation seed never reproduces a training scene.
 *
 * A scene: canvas 160–512 px each side; one light background colour (each channel 190–255); 1–3
 * filled objects — circle, square (axis-aligned), triangle (pointing up) — coloured red, green, blue or
 * yellow (each channel jittered by ±20); bounding-box side 18–35 % of the shorter canvas side; inside
 * the canvas, not overlapping (2 px apart); no two objects with both the same shape and colour.
 * A pixel belongs to a shape when its centre lies inside it (no antialiasing).
 */
import { PNG } from 'pngjs';
import { uniformStream } from '../llm/generate.js';

export const SHAPES = ['circle', 'square', 'triangle'] as const;
export const COLORS = ['red', 'green', 'blue', 'yellow'] as const;
export type Shape = (typeof SHAPES)[number];
export type Color = (typeof COLORS)[number];
export const RGB: Record<Color, [number, number, number]> = {
  red: [220, 40, 40],
  green: [40, 170, 60],
  blue: [40, 80, 220],
  yellow: [235, 200, 30],
};
const GAP = 2;
const COUNT_WORDS = ['One.', 'Two.', 'Three.'];

export interface SceneObject {
  shape: Shape;
  color: Color;
  /** Bounding box: top-left corner and side, in pixels. */
  x: number;
  y: number;
  size: number;
  rgb: [number, number, number];
}

export interface Scene {
  width: number;
  height: number;
  background: [number, number, number];
  objects: SceneObject[];
  format: 'png' | 'jpeg';
}

export type QuestionKind = 'count' | 'color' | 'shape' | 'yesno' | 'describe';

export interface Question {
  kind: QuestionKind;
  question: string;
  answer: string;
}

/** A seeded source of scenes (and of the random choices made when picking questions). */
export class SceneSource {
  private readonly u: () => number;

  constructor(seed: number) {
    this.u = uniformStream(seed);
  }

  /** Uniform integer in [lo, hi]. */
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.u() * (hi - lo + 1));
  }

  pick<T>(items: readonly T[]): T {
    return items[this.int(0, items.length - 1)];
  }

  scene(): Scene {
    for (;;) {
      const width = this.int(160, 512);
      const height = this.int(160, 512);
      const background: [number, number, number] = [this.int(190, 255), this.int(190, 255), this.int(190, 255)];
      const n = this.int(1, 3);
      const pairs = SHAPES.flatMap((shape) => COLORS.map((color) => ({ shape, color })));
      const chosen = [];
      for (let i = 0; i < n; i++) chosen.push(pairs.splice(this.int(0, pairs.length - 1), 1)[0]);
      const m = Math.min(width, height);
      const lo = Math.ceil(0.18 * m);
      const hi = Math.floor(0.35 * m);
      const objects: SceneObject[] = [];
      for (const { shape, color } of chosen) {
        for (let attempt = 0; attempt < 200; attempt++) {
          const size = this.int(lo, hi);
          const x = this.int(0, width - size);
          const y = this.int(0, height - size);
          const apart = objects.every(
            (o) => x + size + GAP <= o.x || o.x + o.size + GAP <= x || y + size + GAP <= o.y || o.y + o.size + GAP <= y,
          );
          if (!apart) continue;
          const rgb = RGB[color].map((v) => Math.min(255, Math.max(0, v + this.int(-20, 20)))) as [number, number, number];
          objects.push({ shape, color, x, y, size, rgb });
          break;
        }
      }
      if (objects.length === n) return { width, height, background, objects, format: this.u() < 0.5 ? 'jpeg' : 'png' };
    }
  }

  /**
   * Every applicable question: the count; the colour of each shape held by exactly one object; the shape
   * of each colour held by exactly one object; "Is there a …?" for every object present and for as many
   * absent pairs (alternately one sharing a present object's shape or colour, and any other); the description.
   */
  questions(scene: Scene): Question[] {
    const objs = scene.objects;
    const out: Question[] = [{ kind: 'count', question: 'How many shapes are there?', answer: COUNT_WORDS[objs.length - 1] }];
    for (const shape of SHAPES) {
      const having = objs.filter((o) => o.shape === shape);
      if (having.length === 1) out.push({ kind: 'color', question: `What color is the ${shape}?`, answer: `${capital(having[0].color)}.` });
    }
    for (const color of COLORS) {
      const having = objs.filter((o) => o.color === color);
      if (having.length === 1) out.push({ kind: 'shape', question: `What shape is the ${color} one?`, answer: `${capital(having[0].shape)}.` });
    }
    const present = (s: Shape, c: Color) => objs.some((o) => o.shape === s && o.color === c);
    const absent = SHAPES.flatMap((shape) => COLORS.map((color) => ({ shape, color }))).filter((p) => !present(p.shape, p.color));
    const near = absent.filter((p) => objs.some((o) => o.shape === p.shape || o.color === p.color));
    const far = absent.filter((p) => !near.includes(p));
    for (const o of sortedObjects(objs)) out.push({ kind: 'yesno', question: `Is there a ${o.color} ${o.shape}?`, answer: 'Yes.' });
    for (let i = 0; i < objs.length; i++) {
      const pool = (i % 2 === 0 && near.length) || !far.length ? near : far;
      const p = pool.splice(this.int(0, pool.length - 1), 1)[0];
      out.push({ kind: 'yesno', question: `Is there a ${p.color} ${p.shape}?`, answer: 'No.' });
    }
    out.push({ kind: 'describe', question: 'Describe the image.', answer: describe(objs) });
    return out;
  }
}

function capital(s: string): string {
  return s[0].toUpperCase() + s.slice(1);
}

/** Objects in the description's order: by shape (circle, square, triangle), then colour (red, green, blue, yellow). */
function sortedObjects(objs: readonly SceneObject[]): SceneObject[] {
  return [...objs].sort((a, b) => SHAPES.indexOf(a.shape) - SHAPES.indexOf(b.shape) || COLORS.indexOf(a.color) - COLORS.indexOf(b.color));
}

/** "A red circle.", "A red circle and a blue square.", "A red circle, a blue square and a yellow triangle." */
export function describe(objs: readonly SceneObject[]): string {
  const parts = sortedObjects(objs).map((o) => `a ${o.color} ${o.shape}`);
  const text = parts.length === 1 ? parts[0] : `${parts.slice(0, -1).join(', ')} and ${parts[parts.length - 1]}`;
  return `${capital(text)}.`;
}

/** Does the pixel whose centre is (px, py), relative to the box's top-left, lie inside the shape? */
function inside(shape: Shape, size: number, px: number, py: number): boolean {
  if (shape === 'square') return true;
  if (shape === 'circle') {
    const r = size / 2;
    return (px - r) ** 2 + (py - r) ** 2 <= r * r;
  }
  return py <= size && Math.abs(px - size / 2) <= py / 2; // triangle: apex (size/2, 0), base at y = size
}

/** RGB pixels [height, width, 3] of a scene. */
export function render(scene: Scene): Uint8Array {
  const { width, height } = scene;
  const px = new Uint8Array(width * height * 3);
  for (let i = 0; i < width * height; i++) px.set(scene.background, i * 3);
  for (const o of scene.objects) {
    for (let y = 0; y < o.size; y++) {
      for (let x = 0; x < o.size; x++) {
        if (inside(o.shape, o.size, x + 0.5, y + 0.5)) px.set(o.rgb, ((o.y + y) * width + o.x + x) * 3);
      }
    }
  }
  return px;
}

/** The scene as a file: PNG (pngjs) or JPEG quality 90 (jpeg-js's encoder, 4:2:0). */
export async function encodeScene(scene: Scene): Promise<Uint8Array> {
  const rgb = render(scene);
  const rgba = new Uint8Array(scene.width * scene.height * 4);
  for (let i = 0; i < scene.width * scene.height; i++) {
    rgba.set(rgb.subarray(i * 3, i * 3 + 3), i * 4);
    rgba[i * 4 + 3] = 255;
  }
  if (scene.format === 'jpeg') {
    const { default: jpeg } = await import('jpeg-js');
    return new Uint8Array(jpeg.encode({ data: rgba, width: scene.width, height: scene.height }, 90).data);
  }
  const png = new PNG({ width: scene.width, height: scene.height });
  png.data = Buffer.from(rgba);
  return new Uint8Array(PNG.sync.write(png));
}
