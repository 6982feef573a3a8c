/**
 * Writes the demo's sample images (models/convllava-shapes/samples/): scene 0 of the scene generator
 * seeded 34 (a PNG) and seeded 4 (a JPEG). Neither generator seed is used in training (Python draws the
 * training scenes with its own generator). usage: npx tsx shapes/make-samples.ts
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { encodeScene, SceneSource } from './scene.js';

const dir = new URL('../models/convllava-shapes/samples/', import.meta.url);
mkdirSync(dir, { recursive: true });
for (const [name, seed] of [['sample1.png', 34], ['sample2.jpg', 4]] as const) {
  const source = new SceneSource(seed);
  const scene = source.scene();
  writeFileSync(new URL(name, dir), await encodeScene(scene));
  console.log(name, `${scene.width}×${scene.height}`, scene.objects.map((o) => `${o.color} ${o.shape}`).join(', '));
  for (const q of source.questions(scene)) console.log(`  ${q.question} → ${q.answer}`);
}
