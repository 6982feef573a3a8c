/**
 * `convllava serve --model DIR [options]` — the OpenAI-compatible HTTP server (server/server.ts) on
 * one model until Ctrl-C / SIGTERM, which stops it cleanly (running and queued requests end, the
 * GPU is released).
 */
import { parseArgs } from 'node:util';
import { serve, SERVE_DEFAULTS } from '../server/server.js';
import { progressBar } from './generation-args.js';

const USAGE = `usage: convllava serve --model DIR [options]

  --model DIR              ConvLLaVA model folder (config.json, weights, vision_tower/)
  --host HOST              interface to listen on (default ${SERVE_DEFAULTS.host}: this machine only)
  --port N                 TCP port (default ${SERVE_DEFAULTS.port}; 0 picks a free one)
  --dtype f16|f32|q8|q4    weight storage on the GPU (default f16; q8/q4 quantize the decoder,
                           embeddings and projector while loading)
  --precision f16|f32      activations and KV cache (default f16 where the adapter has shader-f16)
  --max-context N          KV cache positions (default max_position_embeddings)
  --max-queue N            requests that may wait while one generates; more get 429 (default ${SERVE_DEFAULTS.maxQueue})
  --max-body-mb N          largest request body in MiB; larger get 413 (default ${SERVE_DEFAULTS.maxBodyBytes / 2 ** 20})
  --max-image-pixels N     largest image, width × height; larger get 400 (default ${SERVE_DEFAULTS.maxImagePixels})
  --allow-remote-images    fetch http(s) image URLs (default: refused; the server makes no outbound requests)
  --model-id NAME          the model id clients see (default: the folder's name)

Endpoints: GET /health, GET /v1/models, POST /v1/chat/completions (OpenAI chat format, stream: true for SSE).`;

function integer(name: string, value: string | undefined, min: number): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (value.trim() === '' || !Number.isInteger(n) || n < min) throw new Error(`--${name} must be an integer ≥ ${min}, got '${value}'`);
  return n;
}

export async function run(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      model: { type: 'string' },
      host: { type: 'string' },
      port: { type: 'string' },
      dtype: { type: 'string' },
      precision: { type: 'string' },
      'max-context': { type: 'string' },
      'max-queue': { type: 'string' },
      'max-body-mb': { type: 'string' },
      'max-image-pixels': { type: 'string' },
      'allow-remote-images': { type: 'boolean', default: false },
      'model-id': { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
    allowPositionals: false,
  });
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  if (!values.model) throw new Error("--model DIR is required ('convllava serve --help' for usage)");
  const dtype = values.dtype ?? 'f16';
  if (dtype !== 'f16' && dtype !== 'f32' && dtype !== 'q8' && dtype !== 'q4') throw new Error(`--dtype must be f16, f32, q8 or q4, got '${dtype}'`);
  const precision = values.precision;
  if (precision !== undefined && precision !== 'f16' && precision !== 'f32') throw new Error(`--precision must be f16 or f32, got '${precision}'`);
  const port = integer('port', values.port, 0);
  if (port !== undefined && port > 65535) throw new Error(`--port must be ≤ 65535, got ${port}`);
  const maxBodyMb = integer('max-body-mb', values['max-body-mb'], 1);

  const server = await serve({
    model: values.model,
    load: { dtype, precision, maxContext: integer('max-context', values['max-context'], 1), onProgress: progressBar() },
    host: values.host,
    port,
    maxQueue: integer('max-queue', values['max-queue'], 0),
    maxBodyBytes: maxBodyMb === undefined ? undefined : maxBodyMb * 2 ** 20,
    maxImagePixels: integer('max-image-pixels', values['max-image-pixels'], 1),
    allowRemoteImages: values['allow-remote-images'],
    modelId: values['model-id'],
  });
  for (const w of server.model.checkpoint.warnings) process.stderr.write(`warning: ${w}\n`);
  process.stderr.write(
    `convllava serve: '${server.modelId}' (${server.model.visualTokens} visual tokens per image, context ${server.model.backend.maxContext}) ` +
      `on ${server.url} — OpenAI base URL ${server.url}/v1\n`,
  );
  await new Promise<void>((resolve) => {
    const stop = (signal: string) => {
      process.stderr.write(`convllava serve: ${signal}, shutting down\n`);
      resolve();
    };
    process.once('SIGINT', () => stop('SIGINT'));
    process.once('SIGTERM', () => stop('SIGTERM'));
  });
  await server.close();
  return 0;
}
