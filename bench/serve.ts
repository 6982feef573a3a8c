/**
 * Load check for `convllava serve`: N concurrent openai clients × M streamed requests over loopback,
 * some aborted mid-answer, against one model; reports throughput, latency, time to first token,
 * refusals, and whether GPU memory and RSS stay flat.
 *
 *   npm run bench:serve [-- --model DIR] [--clients 8] [--requests 25] [--max-tokens 16]
 *                        [--abort-rate 0.15] [--max-queue 4] [--max-seconds 300] [--dtype f16|f32] [--json]
 *
 * Default model: the trained shapes model (models/convllava-shapes), asked to describe a 256×256 scene.
 * Each client alternates the scene's PNG and its JPEG, always greedy, and checks every complete
 * answer against the model's own answer for that image (asked once before the run): a mismatch is
 * counted as wrong. A client told 429 waits the Retry-After seconds and moves on to its next request.
 * An aborted request stops reading after its first content chunk (the server must stop generating).
 * No new request starts after --max-seconds. GPU live bytes (the buffer pool's count of allocated
 * bytes) and RSS are taken after a warm-up request and after the run (after a GC when node runs with
 * --expose-gc, as the npm script does). Client and server share this process, so RSS includes both.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import OpenAI from 'openai';
import { ConvLlava } from '../llm/pipeline.js';
import { uniformStream } from '../llm/generate.js';
import { serve } from '../server/server.js';

const ROOT = new URL('..', import.meta.url);
const IMAGES = [
  { name: 'shapes.png', url: `data:image/png;base64,${readFileSync(new URL('spec/server/shapes.png', ROOT)).toString('base64')}` },
  { name: 'shapes.jpg', url: `data:image/jpeg;base64,${readFileSync(new URL('spec/server/shapes.jpg', ROOT)).toString('base64')}` },
];
const QUESTION = 'Describe the image.';

interface Sample {
  outcome: 'ok' | 'aborted' | 'rejected' | 'error' | 'wrong';
  latencyMs: number;
  ttftMs?: number;
  tokens: number;
}

function percentile(values: number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

/** Memory now, after a GC when node runs with --expose-gc. `done`: requests finished so far. */
function memory(model: ConvLlava, done: number) {
  (globalThis as { gc?: () => void }).gc?.();
  const { rss, heapUsed } = process.memoryUsage();
  const pool = model.gpu?.pool;
  return { done, gpuLiveBytes: pool?.liveBytes ?? 0, gpuPoolHeldBytes: pool?.heldBytes ?? 0, rssMiB: rss / 2 ** 20, heapMiB: heapUsed / 2 ** 20 };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      model: { type: 'string', default: fileURLToPath(new URL('models/convllava-shapes', ROOT)) },
      clients: { type: 'string', default: '8' },
      requests: { type: 'string', default: '25' },
      'max-tokens': { type: 'string', default: '16' },
      'abort-rate': { type: 'string', default: '0.15' },
      'max-queue': { type: 'string', default: '4' },
      'max-seconds': { type: 'string', default: '300' },
      dtype: { type: 'string', default: 'f16' },
      json: { type: 'boolean', default: false },
    },
  });
  const clients = Number(values.clients);
  const requests = Number(values.requests);
  const maxTokens = Number(values['max-tokens']);
  const abortRate = Number(values['abort-rate']);
  const deadline = performance.now() + Number(values['max-seconds']) * 1000;
  const dtype = values.dtype === 'f32' ? 'f32' : 'f16';

  const model = await ConvLlava.load(values.model!, { dtype });
  let logLines = 0;
  const server = await serve({ model, port: 0, maxQueue: Number(values['max-queue']), log: () => logLines++ });
  const client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'unused', maxRetries: 0 });
  const ask = (image: number) => ({
    model: server.modelId,
    max_tokens: maxTokens,
    temperature: 0,
    messages: [{ role: 'user' as const, content: [{ type: 'text' as const, text: QUESTION }, { type: 'image_url' as const, image_url: { url: IMAGES[image].url } }] }],
  });

  // Warm-up (compiles the pipelines) and the reference answer for each image.
  const expected: string[] = [];
  for (let i = 0; i < IMAGES.length; i++) expected.push((await client.chat.completions.create(ask(i))).choices[0].message.content ?? '');
  const before = memory(model, 0);

  const samples: Sample[] = [];
  // Memory after each quarter of the requests: a leak grows steadily, a cache fills once and stays.
  const quarters: ReturnType<typeof memory>[] = [];
  const total = clients * requests;
  const record = (sample: Sample) => {
    samples.push(sample);
    if (samples.length % Math.ceil(total / 4) === 0) quarters.push(memory(model, samples.length));
  };
  const start = performance.now();
  await Promise.all(
    Array.from({ length: clients }, async (_, c) => {
      const random = uniformStream(1000 + c);
      for (let r = 0; r < requests && performance.now() < deadline; r++) {
        const image = (c + r) % IMAGES.length;
        const abortAfterFirst = random() < abortRate;
        const t0 = performance.now();
        const controller = new AbortController();
        let ttftMs: number | undefined;
        let text = '';
        let tokens = 0;
        try {
          const stream = await client.chat.completions.create({ ...ask(image), stream: true }, { signal: controller.signal });
          for await (const chunk of stream) {
            const piece = chunk.choices[0]?.delta.content ?? '';
            if (piece === '') continue;
            tokens++;
            ttftMs ??= performance.now() - t0;
            text += piece;
            if (abortAfterFirst) controller.abort();
          }
          const outcome = abortAfterFirst ? 'aborted' : text.trim() === expected[image] ? 'ok' : 'wrong';
          record({ outcome, latencyMs: performance.now() - t0, ttftMs, tokens });
        } catch (e) {
          if (e instanceof OpenAI.RateLimitError) {
            record({ outcome: 'rejected', latencyMs: performance.now() - t0, tokens: 0 });
            const wait = Number(e.headers?.get('retry-after') ?? 1);
            await new Promise((resolve) => setTimeout(resolve, Math.min(wait, 10) * 1000));
          } else {
            record({ outcome: 'error', latencyMs: performance.now() - t0, tokens });
            console.error(`client ${c} request ${r}: ${(e as Error).message}`);
          }
        }
      }
    }),
  );
  const wallS = (performance.now() - start) / 1000;
  while (server.stats().busy) await new Promise((resolve) => setTimeout(resolve, 20)); // the last aborted generation winds down
  const after = memory(model, samples.length);
  const stats = server.stats();
  await server.close();
  await model.dispose();

  const by = (o: Sample['outcome']) => samples.filter((s) => s.outcome === o);
  const ok = by('ok');
  const report = {
    model: values.model,
    dtype,
    clients,
    requests_per_client: requests,
    max_tokens: maxTokens,
    abort_rate: abortRate,
    max_queue: Number(values['max-queue']),
    sent: samples.length,
    ok: ok.length,
    aborted: by('aborted').length,
    rejected_429: by('rejected').length,
    wrong_answers: by('wrong').length,
    errors: by('error').length,
    wall_s: wallS,
    req_per_s: ok.length / wallS,
    completion_tok_per_s: ok.reduce((n, s) => n + s.tokens, 0) / wallS,
    latency_ms: { p50: percentile(ok.map((s) => s.latencyMs), 50), p95: percentile(ok.map((s) => s.latencyMs), 95) },
    ttft_ms: {
      p50: percentile([...ok, ...by('aborted')].map((s) => s.ttftMs!).filter(Number.isFinite), 50),
      p95: percentile([...ok, ...by('aborted')].map((s) => s.ttftMs!).filter(Number.isFinite), 95),
    },
    server: { ...stats, log_lines: logLines },
    gpu_live_bytes: { before: before.gpuLiveBytes, after: after.gpuLiveBytes },
    rss_mib: { before: before.rssMiB, after: after.rssMiB },
    memory: [before, ...quarters, after],
    gc: typeof (globalThis as { gc?: unknown }).gc === 'function',
  };
  if (values.json) {
    console.log(JSON.stringify(report));
    return;
  }
  const f = (x: number, d = 0) => x.toFixed(d);
  console.log(`bench:serve — ${clients} clients × ${requests} requests, ${maxTokens} tokens max, abort rate ${abortRate}, queue ${report.max_queue}, ${dtype}`);
  console.log(`  sent ${report.sent}: ok ${report.ok}, aborted ${report.aborted}, rejected (429) ${report.rejected_429}, wrong ${report.wrong_answers}, errors ${report.errors}`);
  console.log(`  ${f(report.req_per_s, 2)} req/s, ${f(report.completion_tok_per_s, 1)} completion tok/s over ${f(wallS, 1)} s`);
  console.log(`  latency p50 ${f(report.latency_ms.p50)} ms, p95 ${f(report.latency_ms.p95)} ms; TTFT p50 ${f(report.ttft_ms.p50)} ms, p95 ${f(report.ttft_ms.p95)} ms`);
  console.log(`  GPU live bytes ${before.gpuLiveBytes} → ${after.gpuLiveBytes}; RSS ${f(before.rssMiB, 1)} → ${f(after.rssMiB, 1)} MiB${report.gc ? '' : ' (no --expose-gc)'}`);
  console.log(`  after n requests: ${report.memory.map((m) => `${m.done}: RSS ${f(m.rssMiB)} MiB, JS heap ${f(m.heapMiB)} MiB, GPU live ${f(m.gpuLiveBytes / 2 ** 20, 2)} / pool ${f(m.gpuPoolHeldBytes / 2 ** 20, 2)} MiB`).join('\n                     ')}`);
  console.log(`  server: served ${stats.served}, aborted ${stats.aborted}, rejected ${stats.rejected}, ${logLines} log lines`);
  if (report.wrong_answers || report.errors || after.gpuLiveBytes !== before.gpuLiveBytes) process.exitCode = 1;
}

await main();
