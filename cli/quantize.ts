/**
 * `convllava quantize SRC DST --dtype q4|q8 [--quantize-vision] [--shard-size 2GB]`
 *
 * Writes a quantized copy of the float model folder SRC into DST (weights/quantize-folder.ts; on-disk
 * format in weights/quantized.ts and README "Quantized checkpoints on disk"), streaming tensor by
 * tensor, then prints what it wrote and the process's peak RSS. DST then loads with `--dtype q4|q8`
 * directly (no requantization). Exit 0 on success, 1 with one message on an error, 2 on a usage error.
 */
import { parseArgs } from 'node:util';
import { DEFAULT_SHARD_BYTES, quantizeFolder } from '../weights/quantize-folder.js';

const USAGE = `usage: convllava quantize SRC DST --dtype q4|q8 [--quantize-vision] [--shard-size 2GB]

  SRC                a ConvLLaVA model folder with float (F32 / F16 / BF16) weights
  DST                a new (or empty) folder for the quantized model
  --dtype q4|q8      the format of the decoder's linears, lm_head, embed_tokens and the projector
  --quantize-vision  also quantize the vision tower's pointwise linears (default: copied as stored)
  --shard-size SIZE  largest weight file, e.g. 2GB (default), 500MB, 64KB, or a byte count`;

/** "2GB" → 2e9, "500MB", "64KB", "1GiB", or a plain byte count. */
export function parseSize(text: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*(B|KB|MB|GB|KiB|MiB|GiB)?$/i.exec(text.trim());
  if (!m) throw new Error(`--shard-size: cannot read '${text}' (use e.g. 2GB, 500MB, 64KB or a byte count)`);
  const unit = (m[2] ?? 'B').toLowerCase();
  const factor = { b: 1, kb: 1e3, mb: 1e6, gb: 1e9, kib: 2 ** 10, mib: 2 ** 20, gib: 2 ** 30 }[unit]!;
  const bytes = Math.floor(Number(m[1]) * factor);
  if (bytes < 1) throw new Error(`--shard-size must be at least 1 byte, got '${text}'`);
  return bytes;
}

export async function run(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: { dtype: { type: 'string' }, 'quantize-vision': { type: 'boolean' }, 'shard-size': { type: 'string' }, help: { type: 'boolean' } },
    });
  } catch (e) {
    console.error(`convllava quantize: ${(e as Error).message}\n\n${USAGE}`);
    return 2;
  }
  const { values, positionals } = parsed;
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  if (positionals.length !== 2 || (values.dtype !== 'q4' && values.dtype !== 'q8')) {
    console.error(positionals.length !== 2 ? USAGE : `convllava quantize: --dtype must be q4 or q8${values.dtype ? `, got '${values.dtype}'` : ''}\n\n${USAGE}`);
    return 2;
  }
  const [src, dst] = positionals;
  const shardBytes = values['shard-size'] ? parseSize(values['shard-size']) : DEFAULT_SHARD_BYTES;
  const started = performance.now();
  const result = await quantizeFolder(src, dst, {
    dtype: values.dtype,
    quantizeVision: values['quantize-vision'],
    shardBytes,
    onProgress: (done, total, name, how) => console.error(`[${done}/${total}] ${name}: ${how}`),
  });
  const seconds = (performance.now() - started) / 1000;
  const peakRss = process.resourceUsage().maxRSS * 1024;
  console.log(
    `${dst}: ${result.tensors} tensors (${result.quantized} quantized ${values.dtype}), ${(result.bytes / 1e9).toFixed(3)} GB of weights ` +
      `in ${result.shards.llm} + ${result.shards.vision} (vision_tower/) weight file(s); copied ${result.copiedFiles.join(', ')}`,
  );
  console.log(`done in ${seconds.toFixed(1)} s; peak RSS ${(peakRss / 2 ** 20).toFixed(0)} MiB`);
  return 0;
}
