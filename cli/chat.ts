/**
 * `convllava chat --model DIR [--image FILE] [options]` — an interactive conversation about an image.
 * Each input line is a user turn; the KV cache carries the conversation, so a turn prefills only its
 * own tokens. Works with piped stdin (one question per line). '/exit' or end of input quits.
 */
import { createInterface } from 'node:readline';
import { loadImage, type RawImage } from '../convnext/preprocess.js';
import { ImageInputError } from '../llm/pipeline.js';
import { GENERATION_USAGE, loadPrepared, parseGenerationArgs, prepare, streamAnswer } from './generation-args.js';

const USAGE = `usage: convllava chat --model DIR [--image FILE] [options]

${GENERATION_USAGE}
  --json                   after each answer, print a JSON line {input_ids, generated_ids, text, timings}

Type a question and press Enter; '/exit' or Ctrl-D quits.`;

export async function run(argv: string[]): Promise<number> {
  const args = parseGenerationArgs(argv, 'chat');
  if (args.help) {
    console.log(USAGE);
    return 0;
  }
  // Configs and image first, before the weights load. An image that cannot be read or decoded is
  // reported now, once, and cleared: the chat goes on without it (and exits 1 at the end).
  let failures = 0;
  const { ckpt } = await prepare({ ...args, image: undefined });
  let image: RawImage | undefined;
  if (args.image !== undefined) {
    try {
      image = await loadImage(args.image);
    } catch (e) {
      failures++;
      process.stderr.write(`convllava chat: ${(e as Error).message}\nconvllava chat: the image is cleared; the chat goes on without it\n`);
    }
  }
  const model = await loadPrepared(ckpt, args);
  let session = model.chat({ image });
  const interactive = process.stdin.isTTY;
  const lines = createInterface({ input: process.stdin, terminal: interactive });
  try {
    if (interactive) process.stdout.write('USER: ');
    for await (const line of lines) {
      const question = line.trim();
      if (question === '/exit') break;
      if (question === '') continue;
      if (!interactive) process.stdout.write(`USER: ${question}\n`);
      process.stdout.write('ASSISTANT: ');
      let result;
      try {
        result = await session.send(question, { ...args.sampling, onToken: streamAnswer() });
      } catch (e) {
        // A refused or failed turn (e.g. the context is full) leaves the session consistent: the
        // history keeps what was said and the cache is rebuilt from it. Say why and go on.
        process.stdout.write('\n');
        process.stderr.write(`convllava chat: ${(e as Error).message}\n`);
        failures++;
        if (e instanceof ImageInputError) {
          // The image cannot be used: without this, every later turn would retry it and fail the same way.
          session.dispose();
          session = model.chat();
          process.stderr.write('convllava chat: the image is cleared; the chat goes on without it\n');
        }
        if (interactive) process.stdout.write('USER: ');
        continue;
      }
      process.stdout.write('\n');
      if (args.json) {
        console.log(JSON.stringify({ input_ids: result.inputIds, generated_ids: result.ids, text: result.text, timings: result.timings }));
      }
      if (interactive) process.stdout.write('USER: ');
    }
    return failures ? 1 : 0; // a chat in which a turn failed exits non-zero (scripts piping questions see it)
  } finally {
    lines.close();
    session.dispose();
    await model.dispose();
  }
}
