/**
 * `npm run demo` / `convllava demo`: the whole pipeline — PNG decode, pad to square, PIL-exact bicubic
 * resize, ConvNeXt stages 1–5, projector, LLaMA prefill and streamed greedy decoding — on the embedded
 * tiny checkpoint (spec/fixtures/convllava-tiny: the official layout at toy size, random weights) and
 * its sample image. Prints the image size, visual tokens, the streamed text and the timings.
 */
import { fileURLToPath } from 'node:url';
import { decodeImage } from '../convnext/decode.js';
import { readFile } from 'node:fs/promises';
import { ConvLlava } from '../llm/pipeline.js';

export const DEMO_MODEL = fileURLToPath(new URL('../spec/fixtures/convllava-tiny/model', import.meta.url));
export const DEMO_IMAGE = fileURLToPath(new URL('../spec/fixtures/convllava-tiny/case1.png', import.meta.url));
const QUESTION = 'What is in this image?';

export async function run(argv: string[]): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    console.log('usage: convllava demo    (no options: runs the embedded tiny model on its sample image)');
    return 0;
  }
  console.log('convllava demo — ConvLLaVA on WebGPU, every float op in hand-written WGSL.');
  console.log('NOTE: the embedded checkpoint has the official layout but RANDOM weights at toy size,');
  console.log('so the generated text is meaningless. For real answers, download an official checkpoint');
  console.log('(ConvLLaVA-768 / -1024 / -1536) and run:');
  console.log('  npx convllava run --model /path/to/ConvLLaVA-1536 --image photo.jpg --prompt "What is shown?"\n');

  const bytes = new Uint8Array(await readFile(DEMO_IMAGE));
  const image = await decodeImage(bytes, DEMO_IMAGE);
  const model = await ConvLlava.load(DEMO_MODEL, { dtype: 'f32' });
  try {
    const s = model.gpu?.summary;
    if (s) console.log(`adapter:        ${s.vendor} ${s.device} ${s.description} (${s.backend})`);
    console.log(`model:          ${DEMO_MODEL}`);
    console.log(`image:          ${DEMO_IMAGE} (${image.width}×${image.height}, padded to square, resized to ${model.checkpoint.config.mm_vision_resolution}²)`);
    console.log(`visual tokens:  ${model.visualTokens}`);
    console.log(`question:       ${QUESTION}`);
    process.stdout.write('answer:         ');
    const result = await model.generate({
      image: bytes,
      prompt: QUESTION,
      temperature: 0,
      maxNewTokens: 12,
      onToken: ({ text }) => process.stdout.write(text),
    });
    process.stdout.write('\n');
    const t = result.timings;
    console.log(`generated ids:  [${result.ids.join(', ')}] (${result.finishReason})`);
    console.log(
      `timings:        load ${model.loadMs.toFixed(0)} ms · preprocess ${t.preprocess_ms.toFixed(0)} ms · image encode ${t.image_encode_ms.toFixed(0)} ms · ` +
        `prefill ${t.prefill_ms.toFixed(0)} ms (${t.prefill_tok_s.toFixed(0)} tok/s) · first token ${t.ttft_ms.toFixed(0)} ms · decode ${t.decode_tok_s.toFixed(1)} tok/s`,
    );
    return 0;
  } finally {
    await model.dispose();
  }
}
