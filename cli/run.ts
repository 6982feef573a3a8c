/**
 * `convllava run --model DIR --image FILE --prompt "question" [options]` — answers one question about
 * an image, streaming the answer to stdout. With --json the last stdout line is a JSON record of the
 * prompt ids, generated ids, text, visual token count and timings.
 */
import { checkFirstTurn } from '../llm/pipeline.js';
import { GENERATION_USAGE, loadPrepared, parseGenerationArgs, prepare, streamAnswer } from './generation-args.js';

const USAGE = `usage: convllava run --model DIR --image FILE --prompt "question" [options]

${GENERATION_USAGE}
  --prompt TEXT            the question
  --json                   print a JSON record as the last stdout line:
                           {input_ids, generated_ids, text, visual_tokens, finish_reason, timings}`;

export async function run(argv: string[]): Promise<number> {
  const args = parseGenerationArgs(argv, 'run');
  if (args.help) {
    console.log(USAGE);
    return 0;
  }
  if (!args.image) throw new Error('--image FILE is required');
  if (args.prompt === undefined || args.prompt.trim() === '') throw new Error('--prompt "question" is required');
  const prompt = args.prompt;

  // Configs, image and prompt length first (milliseconds); then the weights (minutes for a 7B).
  const { ckpt, image } = await prepare(args, (c) => checkFirstTurn(c, prompt, { ...args.sampling, hasImage: true, maxContext: args.maxContext }));
  const model = await loadPrepared(ckpt, args);
  try {
    for (const w of model.checkpoint.warnings) process.stderr.write(`warning: ${w}\n`);
    const result = await model.generate({ ...args.sampling, image, prompt, onToken: streamAnswer() });
    process.stdout.write('\n');
    if (args.json) {
      const { timings } = result;
      console.log(
        JSON.stringify({
          input_ids: result.inputIds,
          generated_ids: result.ids,
          text: result.text,
          visual_tokens: result.visualTokens,
          finish_reason: result.finishReason,
          timings: { load_ms: model.loadMs, ...timings },
        }),
      );
    }
    return 0;
  } finally {
    await model.dispose();
  }
}
