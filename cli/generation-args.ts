/**
 * Options shared by `convllava run` and `convllava chat`: model loading, sampling, output format,
 * and the weight-loading progress bar (stderr).
 */
import { parseArgs } from 'node:util';
import { loadImage, type RawImage } from '../convnext/preprocess.js';
import { Checkpoint } from '../weights/checkpoint.js';
import { ConvLlava, type LoadProgress } from '../llm/pipeline.js';
import { samplingDefaults, type SamplingOptions, type TokenEvent } from '../llm/generate.js';

export const GENERATION_USAGE = `  --model DIR              ConvLLaVA model folder (config.json, weights, vision_tower/)
  --image FILE             PNG or JPEG image
  --max-new-tokens N       most tokens to generate (default 256)
  --temperature T          0 = greedy (default); > 0 samples
  --top-k K                sample among the K most likely tokens (default 0: all)
  --top-p P                nucleus sampling threshold (default 1: off)
  --seed S                 seed of the sampler (default 0): same seed, same answer
  --repetition-penalty R   > 1 discourages repeating answer tokens (default 1)
  --stop TEXT              stop before TEXT (repeatable)
  --dtype f16|f32|q8|q4    weight storage (default f16); q8/q4 quantize the decoder, lm_head,
                           embeddings and projector while loading (groups of 32, f16 scales)
  --quantize-vision        with q8/q4: quantize the vision tower's linears too (default f16)
  --precision f16|f32      activations and KV cache (default f16 where the adapter has shader-f16,
                           else f32; f32 matches the PyTorch fixtures to 1e-4; cpu backend: f32)
  --backend webgpu|cpu     webgpu (default), or the ops' CPU references (slow; for checking)
  --max-context N          KV cache positions (default max_position_embeddings)`;

export interface GenerationArgs {
  model: string;
  image?: string;
  prompt?: string;
  json: boolean;
  help: boolean;
  dtype: 'f16' | 'f32' | 'q8' | 'q4';
  /** Activation precision; undefined = the device's default. */
  precision?: 'f16' | 'f32';
  quantizeVision: boolean;
  backend: 'webgpu' | 'cpu';
  maxContext?: number;
  sampling: SamplingOptions;
}

function number(name: string, value: string | undefined, integer: boolean): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n) || (integer && !Number.isInteger(n))) {
    throw new Error(`--${name} must be ${integer ? 'an integer' : 'a number'}, got '${value}'`);
  }
  return n;
}

/**
 * Node's parseArgs refuses `--temperature -1` ("argument is ambiguous": the value starts with a
 * dash). A value that reads as a negative number is attached as `--temperature=-1`, so it parses
 * and then meets the option's own range check ("temperature must be ≥ 0, got -1").
 */
export function attachNegativeNumbers(argv: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const next = argv[i + 1];
    if (/^--[a-z-]+$/.test(argv[i]) && next !== undefined && /^-(\d|\.\d|Infinity)/.test(next)) {
      out.push(`${argv[i]}=${next}`);
      i++;
    } else {
      out.push(argv[i]);
    }
  }
  return out;
}

export function parseGenerationArgs(argv: string[], command: string): GenerationArgs {
  const { values } = parseArgs({
    args: attachNegativeNumbers(argv),
    options: {
      model: { type: 'string' },
      image: { type: 'string' },
      prompt: { type: 'string' },
      'max-new-tokens': { type: 'string' },
      temperature: { type: 'string' },
      'top-k': { type: 'string' },
      'top-p': { type: 'string' },
      seed: { type: 'string' },
      'repetition-penalty': { type: 'string' },
      stop: { type: 'string', multiple: true },
      dtype: { type: 'string' },
      'quantize-vision': { type: 'boolean', default: false },
      precision: { type: 'string' },
      backend: { type: 'string' },
      'max-context': { type: 'string' },
      json: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
    allowPositionals: false,
  });
  const help = values.help ?? false;
  if (!help && !values.model) throw new Error(`--model DIR is required ('convllava ${command} --help' for usage)`);
  const dtype = values.dtype ?? 'f16';
  if (dtype !== 'f16' && dtype !== 'f32' && dtype !== 'q8' && dtype !== 'q4') throw new Error(`--dtype must be f16, f32, q8 or q4, got '${dtype}'`);
  const quantizeVision = values['quantize-vision'] ?? false;
  if (quantizeVision && dtype !== 'q8' && dtype !== 'q4') throw new Error(`--quantize-vision needs --dtype q8 or q4 (got ${dtype})`);
  const precision = values.precision;
  if (precision !== undefined && precision !== 'f16' && precision !== 'f32') throw new Error(`--precision must be f16 or f32, got '${precision}'`);
  const backend = values.backend ?? 'webgpu';
  if (backend !== 'webgpu' && backend !== 'cpu') throw new Error(`--backend must be webgpu or cpu, got '${backend}'`);
  const maxContext = number('max-context', values['max-context'], true);
  if (maxContext !== undefined && maxContext < 1) throw new Error(`--max-context must be an integer ≥ 1, got ${maxContext}`);
  const sampling: SamplingOptions = {
    maxNewTokens: number('max-new-tokens', values['max-new-tokens'], true),
    temperature: number('temperature', values.temperature, false),
    topK: number('top-k', values['top-k'], true),
    topP: number('top-p', values['top-p'], false),
    seed: number('seed', values.seed, true),
    repetitionPenalty: number('repetition-penalty', values['repetition-penalty'], false),
    stop: values.stop,
  };
  if (!help) samplingDefaults(sampling); // option ranges are checked now, before any weight loads
  return {
    model: values.model ?? '',
    image: values.image,
    prompt: values.prompt,
    json: values.json ?? false,
    help,
    dtype,
    precision,
    quantizeVision,
    backend,
    maxContext,
    sampling,
  };
}

/** A stderr progress bar over the load stages (redrawn in place on a terminal, one line per stage otherwise). */
export function progressBar(stream: NodeJS.WriteStream = process.stderr): (p: LoadProgress) => void {
  const width = 30;
  let lastStage = '';
  return ({ stage, done, total }) => {
    const fraction = total ? done / total : 1;
    const filled = Math.round(fraction * width);
    const line = `loading ${stage.padEnd(9)} [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${String(Math.round(fraction * 100)).padStart(3)}% (${done}/${total} tensors)`;
    if (stream.isTTY) {
      stream.write(`\r${line}${done === total ? '\n' : ''}`);
    } else if (done === total && stage !== lastStage) {
      stream.write(`${line}\n`);
    }
    if (done === total) lastStage = stage;
  };
}

/**
 * An onToken callback that streams one answer's text to stdout. The final answer is trimmed (as
 * LLaVA's), so the stream's start is too: leading whitespace is dropped until the first visible text.
 */
export function streamAnswer(out: NodeJS.WritableStream = process.stdout): (e: TokenEvent) => void {
  let started = false;
  return ({ text }) => {
    const piece = started ? text : text.trimStart();
    if (piece === '') return;
    started = true;
    out.write(piece);
  };
}

/**
 * Opens the model folder's configs and headers (no weights) and decodes the image, so that a bad
 * folder, image or option fails before minutes of weight loading; `check` runs on the opened
 * checkpoint (e.g. the prompt-length check). Returns the checkpoint (to pass to ConvLlava.load) and
 * the decoded image.
 */
export async function prepare(args: GenerationArgs, check: (ckpt: Checkpoint) => void = () => {}): Promise<{ ckpt: Checkpoint; image?: RawImage }> {
  const ckpt = await Checkpoint.open(args.model);
  try {
    const image = args.image !== undefined ? await loadImage(args.image) : undefined;
    check(ckpt);
    return { ckpt, image };
  } catch (e) {
    await ckpt.close();
    throw e;
  }
}

/** Loads the weights of a prepared checkpoint (closing it if the load fails), with the progress bar. */
export async function loadPrepared(ckpt: Checkpoint, args: GenerationArgs): Promise<ConvLlava> {
  try {
    return await ConvLlava.load(ckpt, { dtype: args.dtype, precision: args.precision, quantizeVision: args.quantizeVision, backend: args.backend, maxContext: args.maxContext, onProgress: progressBar() });
  } catch (e) {
    await ckpt.close();
    throw e;
  }
}
