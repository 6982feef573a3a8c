/**
 * `npm run demo` / `convllava demo [--image FILE] [--prompt "…"]`: the whole pipeline — image decode, pad
 * to square, PIL-exact bicubic resize, ConvNeXt stages 1–5, projector, LLaMA prefill and streamed greedy
 * decoding — on the embedded trained model (models/convllava-shapes: the ConvLLaVA architecture at micro
 * size, trained on the shapes world) and its bundled sample images.
 */
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { decodeImage } from '../convnext/decode.js';
import { ConvLlava } from '../llm/pipeline.js';

export const DEMO_MODEL = fileURLToPath(new URL('../models/convllava-shapes', import.meta.url));
/** Bundled samples (drawn by shapes/scene.ts, never seen in training) and the questions the demo asks. */
export const DEMO_SAMPLES: { file: string; questions: string[] }[] = [
  {
    file: fileURLToPath(new URL('../models/convllava-shapes/samples/sample1.png', import.meta.url)),
    questions: ['How many shapes are there?', 'Describe the image.'],
  },
  {
    file: fileURLToPath(new URL('../models/convllava-shapes/samples/sample2.jpg', import.meta.url)),
    questions: ['What shape is the yellow one?', 'Is there a red square?'],
  },
];

const ABOUT = `The model is a micro ConvLLaVA (ConvNeXt stages 1–5 → mlp2x_gelu projector → 4-layer LLaMA, 6.1 M
parameters, f16) trained only on a toy world: 1–3 circles, squares or triangles, red/green/blue/yellow,
on a light background. It answers "How many shapes are there?", "What color is the {shape}?",
"What shape is the {color} one?", "Is there a {color} {shape}?" and "Describe the image." about such
pictures. Anything else — photos, other questions — gets a confident answer from that world, not a real one.`;

export async function run(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      image: { type: 'string' },
      prompt: { type: 'string' },
      model: { type: 'string', default: DEMO_MODEL },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    console.log('usage: convllava demo [--image FILE] [--prompt "question"] [--model DIR]');
    console.log('  no options: the embedded shapes model answers questions about its two bundled sample images\n');
    console.log(ABOUT);
    return 0;
  }
  if (values.prompt !== undefined && values.image === undefined) throw new Error('--prompt needs --image FILE');
  const samples = values.image
    ? [{ file: values.image, questions: [values.prompt ?? 'Describe the image.'] }]
    : DEMO_SAMPLES;
  const images = await Promise.all(
    samples.map(async (s) => {
      const bytes = new Uint8Array(await readFile(s.file));
      return { ...s, bytes, decoded: await decodeImage(bytes, s.file) };
    }),
  );

  console.log('convllava demo — ConvLLaVA on WebGPU, every float op in hand-written WGSL.\n');
  console.log(ABOUT + '\n');
  const model = await ConvLlava.load(values.model, { dtype: 'f32' });
  try {
    const s = model.gpu?.summary;
    const res = model.checkpoint.config.mm_vision_resolution;
    if (s) console.log(`adapter:        ${s.vendor} ${s.device} ${s.description} (${s.backend})`);
    console.log(`model:          ${values.model} (loaded in ${model.loadMs.toFixed(0)} ms)`);
    for (const { file, questions, bytes, decoded } of images) {
      const side = Math.max(decoded.width, decoded.height);
      const pad =
        decoded.width === decoded.height
          ? 'square, no padding'
          : `padded to ${side}×${side} with the mean colour (${side - decoded.width} px added across, ${side - decoded.height} px down)`;
      console.log(`\nimage:          ${file}`);
      console.log(`                ${decoded.width}×${decoded.height}, ${pad}, resized to ${res}×${res}`);
      console.log(`visual tokens:  ${model.visualTokens} (${res}/64 × ${res}/64 cells of the last ConvNeXt stage)`);
      for (const question of questions) {
        console.log(`question:       ${question}`);
        process.stdout.write('answer:         ');
        const result = await model.generate({
          image: bytes,
          prompt: question,
          temperature: 0,
          maxNewTokens: 32,
          onToken: ({ text }) => process.stdout.write(text),
        });
        process.stdout.write('\n');
        const t = result.timings;
        console.log(
          `timings:        preprocess ${t.preprocess_ms.toFixed(0)} ms · image encode ${t.image_encode_ms.toFixed(0)} ms · ` +
            `prefill ${t.prefill_ms.toFixed(0)} ms (${t.prefill_tok_s.toFixed(0)} tok/s) · first token ${t.ttft_ms.toFixed(0)} ms · ` +
            `decode ${t.decode_tok_s.toFixed(1)} tok/s (${result.ids.length} tokens, ${result.finishReason})`,
        );
      }
    }
    return 0;
  } finally {
    await model.dispose();
  }
}
