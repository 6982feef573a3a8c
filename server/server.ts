/**
 * `serve()`: an OpenAI-compatible HTTP server in front of one ConvLlava model (node:http, no framework).
 *
 *   GET  /health                 {status, model, busy, queued, max_queue, served, rejected, aborted}
 *   GET  /v1/models              the one model this server holds
 *   POST /v1/chat/completions    OpenAI chat format (server/request.ts), plain JSON or SSE (stream: true)
 *
 * One chat request, in order; every refusal comes before any GPU work:
 *   body (≤ maxBodyBytes, else 413) → JSON → fields (400) → image: data URL, pixel cap from the
 *   header, decode (400) → prompt ids, prompt + visual + max tokens ≤ context (400)
 *   → FIFO queue (full: 429 + Retry-After) → model.generate / model.stream → JSON or SSE chunks.
 * A client that disconnects aborts its generation (the decode loop stops at the next token) or leaves
 * the queue; the model is then free for the next request at once. The server keeps no state between
 * requests, so scaling out is one server per GPU behind any HTTP load balancer.
 * One log line per request: method, path, status, prompt+completion tokens, ms, and why it ended.
 */
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { ConvLlava, type GenerateRequest, type GenerateResult, type LoadOptions } from '../llm/pipeline.js';
import type { FinishReason } from '../llm/generate.js';
import { conversationIds, IMAGE_TOKEN_INDEX } from '../llm/prompt.js';
import { ApiError } from './errors.js';
import { readImage, type ImageLimits } from './image.js';
import { FifoQueue, QueueFullError } from './queue.js';
import { parseChatRequest, type ChatRequest } from './request.js';

export interface ServeOptions {
  /** A loaded model (the caller disposes it) or a model folder (loaded here, disposed by close()). */
  model: ConvLlava | string;
  /** How to load `model` when it is a folder. */
  load?: LoadOptions;
  /** Default '127.0.0.1' (loopback only); '0.0.0.0' listens on every interface. */
  host?: string;
  /** Default 8080; 0 picks a free port (see `port` on the result). */
  port?: number;
  /** Requests that may wait while one generates; more get 429. Default 8. */
  maxQueue?: number;
  /** Largest request body in bytes (413 above). Default 20 MiB. */
  maxBodyBytes?: number;
  /** Largest image in pixels, read from its header before decoding (400 above). Default 4096 × 4096. */
  maxImagePixels?: number;
  /** Fetch http(s) image URLs. Default false: they are refused and the server makes no outbound requests. */
  allowRemoteImages?: boolean;
  /** The id /v1/models lists and responses carry. Default: the model folder's name. */
  modelId?: string;
  /** Receives one line per request. Default: stderr. */
  log?: (line: string) => void;
}

export interface ServerStats {
  busy: boolean;
  queued: number;
  /** Chat requests answered completely. */
  served: number;
  /** Chat requests refused with 429 (queue full). */
  rejected: number;
  /** Chat requests whose client disconnected before the answer was complete. */
  aborted: number;
}

export interface ConvLlavaServer {
  /** e.g. 'http://127.0.0.1:8080' (the OpenAI base URL is this + '/v1'). */
  readonly url: string;
  readonly port: number;
  readonly model: ConvLlava;
  readonly modelId: string;
  stats(): ServerStats;
  /** Stops listening, ends running and queued requests (503), closes connections; disposes an owned model. */
  close(): Promise<void>;
}

export const SERVE_DEFAULTS = { host: '127.0.0.1', port: 8080, maxQueue: 8, maxBodyBytes: 20 * 2 ** 20, maxImagePixels: 4096 * 4096 };

/** The abort reasons of a generation the server stopped. */
class ClientGone extends Error {
  constructor() {
    super('the client disconnected');
  }
}
class ServerClosing extends Error {
  constructor() {
    super('the server is shutting down');
  }
}

/** What the request's log line reports. */
interface LogEntry {
  promptTokens?: number;
  completionTokens: number;
  note?: string;
}

const ROUTES: Record<string, string> = { '/health': 'GET', '/v1/models': 'GET', '/v1/chat/completions': 'POST' };
/** A body this much over the cap is not even drained: the connection is cut. */
const DRAIN_LIMIT_FACTOR = 4;

export async function serve(options: ServeOptions): Promise<ConvLlavaServer> {
  const { createServer } = await import('node:http'); // Node only: index.ts stays importable in browsers
  const owned = typeof options.model === 'string';
  const model = typeof options.model === 'string' ? await ConvLlava.load(options.model, options.load) : options.model;
  const app = new ChatServer(model, options);
  const server = createServer((req, res) =>
    // handle() answers every error itself; this is the last guard that keeps the process alive.
    app.handle(req, res).catch((e: unknown) => {
      res.destroy();
      (options.log ?? console.error)(`${req.method} ${req.url} internal error: ${(e as Error)?.stack ?? e}`);
    }),
  );
  server.on('clientError', (err: Error & { code?: string }, socket) => {
    // Malformed HTTP (bad request line, oversized headers): answer if the socket still can, never crash.
    if (!socket.writable) return socket.destroy();
    const body = JSON.stringify(new ApiError(400, `malformed HTTP request (${err.code ?? err.message})`, { code: 'bad_http' }).body());
    socket.end(`HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
  });
  try {
    await listen(server, options.port ?? SERVE_DEFAULTS.port, options.host ?? SERVE_DEFAULTS.host);
  } catch (e) {
    if (owned) await model.dispose();
    throw e;
  }
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  const host = options.host ?? SERVE_DEFAULTS.host;
  let closed: Promise<void> | null = null;
  return {
    url: `http://${host.includes(':') ? `[${host}]` : host}:${port}`,
    port,
    model,
    modelId: app.modelId,
    stats: () => app.stats(),
    close: () =>
      (closed ??= (async () => {
        const stopped = new Promise<void>((resolve) => server.close(() => resolve()));
        await app.shutdown();
        server.closeAllConnections();
        await stopped;
        if (owned) await model.dispose();
      })()),
  };
}

function listen(server: Server, port: number, host: string): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
}

class ChatServer {
  readonly modelId: string;
  private readonly queue: FifoQueue;
  private readonly maxBodyBytes: number;
  private readonly imageLimits: ImageLimits;
  private readonly log: (line: string) => void;
  private readonly created = Math.floor(Date.now() / 1000);
  private readonly counts = { served: 0, rejected: 0, aborted: 0 };
  /** Running and queued generations (close() aborts them). */
  private readonly generations = new Set<AbortController>();
  /** Requests being handled, until their response is sent (close() waits for them). */
  private readonly handlers = new Set<Promise<void>>();
  /** Moving average of how long a request holds the model (s), for Retry-After. */
  private serviceSeconds = 1;
  private closing = false;

  constructor(
    private readonly model: ConvLlava,
    options: ServeOptions,
  ) {
    this.modelId = options.modelId ?? (model.checkpoint.dir.replace(/[/\\]+$/, '').split(/[/\\]/).pop() || 'convllava');
    this.queue = new FifoQueue(options.maxQueue ?? SERVE_DEFAULTS.maxQueue);
    this.maxBodyBytes = options.maxBodyBytes ?? SERVE_DEFAULTS.maxBodyBytes;
    this.imageLimits = {
      maxPixels: options.maxImagePixels ?? SERVE_DEFAULTS.maxImagePixels,
      maxBytes: this.maxBodyBytes,
      allowRemote: options.allowRemoteImages ?? false,
      fetchTimeoutMs: 10_000,
    };
    this.log = options.log ?? ((line) => process.stderr.write(`${line}\n`));
  }

  stats(): ServerStats {
    return { busy: this.queue.busy, queued: this.queue.waiting, ...this.counts };
  }

  async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const start = performance.now();
    const path = (req.url ?? '/').split('?')[0];
    const entry: LogEntry = { completionTokens: 0 };
    const closed = new Promise((resolve) => res.once('close', resolve));
    let handled!: () => void;
    const handling = new Promise<void>((resolve) => (handled = resolve));
    this.handlers.add(handling);
    try {
      if (this.closing) throw new ApiError(503, 'the server is shutting down', { code: 'server_closing' });
      const method = ROUTES[path];
      if (!method) throw new ApiError(404, `no route ${req.method} ${path}; this server has GET /health, GET /v1/models, POST /v1/chat/completions`, { code: 'unknown_url' });
      if (req.method !== method) throw new ApiError(405, `${path} takes ${method}, not ${req.method}`, { code: 'method_not_allowed', headers: { allow: method } });
      if (path === '/health') sendJson(res, 200, { status: 'ok', model: this.modelId, max_queue: this.queue.maxWaiting, ...this.stats() });
      else if (path === '/v1/models') sendJson(res, 200, { object: 'list', data: [this.modelCard()] });
      else await this.chat(req, res, entry);
    } catch (e) {
      this.fail(res, e, entry);
    } finally {
      this.handlers.delete(handling);
      handled();
    }
    // The log line waits for both the handler (a stopped generation's final count) and the response.
    await closed;
    const tokens = entry.promptTokens === undefined ? '' : ` ${entry.promptTokens}+${entry.completionTokens} tokens`;
    const status = res.headersSent ? String(res.statusCode) : '---';
    this.log(`${req.method} ${path} ${status}${tokens} ${Math.round(performance.now() - start)} ms${entry.note ? ` ${entry.note}` : ''}`);
  }

  private modelCard() {
    return { id: this.modelId, object: 'model', created: this.created, owned_by: 'convllava' };
  }

  private async chat(req: IncomingMessage, res: ServerResponse, entry: LogEntry): Promise<void> {
    const body = await readBody(req, this.maxBodyBytes);
    let json: unknown;
    try {
      json = JSON.parse(body.toString('utf8'));
    } catch (e) {
      throw new ApiError(400, `the request body is not valid JSON (${(e as Error).message})`, { code: 'invalid_json' });
    }
    const request = parseChatRequest(json);
    const image = request.image ? await readImage(request.image.url, request.image.param, this.imageLimits) : undefined;

    // The context check, from the same ids the pipeline will build: before the queue and any GPU work.
    const { model } = this;
    const ids = conversationIds(model.tokenizer, request.turns, image !== undefined, request.system);
    const visualTokens = ids.includes(IMAGE_TOKEN_INDEX) ? model.visualTokens : 0;
    const promptTokens = ids.length - (visualTokens ? 1 : 0) + visualTokens;
    const context = model.backend.maxContext;
    const maxTokens = request.maxTokens ?? context - promptTokens;
    entry.promptTokens = promptTokens;
    if (maxTokens < 1 || promptTokens + maxTokens > context) {
      throw new ApiError(
        400,
        `this request needs ${promptTokens} prompt tokens (${visualTokens} of them the image's visual tokens) + ` +
          `${request.maxTokens ?? 'at least 1'} completion tokens, more than the model's context of ${context} tokens; ` +
          'shorten the messages or lower max_tokens',
        { param: request.maxTokens ? 'max_tokens' : 'messages', code: 'context_length_exceeded' },
      );
    }

    // Queue: wait for the model; a client that disconnects meanwhile leaves the line.
    const abort = new AbortController();
    res.on('close', () => {
      if (!res.writableFinished) abort.abort(new ClientGone());
    });
    if (res.destroyed) abort.abort(new ClientGone());
    this.generations.add(abort);
    let generating = false;
    try {
      let release: () => void;
      try {
        release = await this.queue.enter(abort.signal);
      } catch (e) {
        if (e instanceof QueueFullError) {
          this.counts.rejected++;
          const retryAfter = Math.max(1, Math.ceil(this.serviceSeconds * (this.queue.waiting + 1)));
          throw new ApiError(429, `the server is busy: ${e.message}; retry in about ${retryAfter} s`, {
            type: 'rate_limit_error',
            code: 'queue_full',
            headers: { 'retry-after': String(retryAfter) },
          });
        }
        throw e;
      }
      const started = performance.now();
      generating = true;
      try {
        const generation = this.generateRequest(request, image, maxTokens, abort.signal);
        if (request.stream) await this.streamAnswer(res, request, generation, entry);
        else await this.answer(res, generation, entry);
        this.counts.served++;
      } finally {
        release();
        this.serviceSeconds = 0.8 * this.serviceSeconds + 0.2 * ((performance.now() - started) / 1000);
      }
    } catch (e) {
      if (abort.signal.aborted && abort.signal.reason instanceof ClientGone) {
        this.counts.aborted++;
        entry.note = `client disconnected (${generating ? 'generation stopped' : 'left the queue'})`;
        return;
      }
      throw abort.signal.reason instanceof ServerClosing ? new ApiError(503, 'the server is shutting down', { code: 'server_closing' }) : e;
    } finally {
      this.generations.delete(abort);
    }
  }

  private generateRequest(request: ChatRequest, image: GenerateRequest['image'], maxTokens: number, signal: AbortSignal): GenerateRequest {
    const temperature = request.temperature ?? 0;
    return {
      image,
      prompt: request.turns.at(-1)!.user,
      history: request.turns.slice(0, -1),
      system: request.system,
      maxNewTokens: maxTokens,
      temperature,
      topP: request.topP,
      topK: request.topK,
      // Sampling without a seed should differ between requests; greedy ignores the seed.
      seed: request.seed ?? (temperature > 0 ? Math.floor(Math.random() * 2 ** 31) : undefined),
      repetitionPenalty: request.repetitionPenalty,
      stop: request.stop,
      signal,
    };
  }

  private completionId(): string {
    return `chatcmpl-${crypto.randomUUID().replaceAll('-', '')}`;
  }

  private async answer(res: ServerResponse, generation: GenerateRequest, entry: LogEntry): Promise<void> {
    const result = await this.model.generate({ ...generation, onToken: () => entry.completionTokens++ });
    sendJson(res, 200, {
      id: this.completionId(),
      object: 'chat.completion',
      created: Math.floor(Date.now() / 1000),
      model: this.modelId,
      choices: [{ index: 0, message: { role: 'assistant', content: result.text, refusal: null }, logprobs: null, finish_reason: finishReason(result) }],
      usage: usage(result),
    });
  }

  /** Server-sent events: a role chunk, content chunks, a chunk with finish_reason, [usage], [DONE]. */
  private async streamAnswer(res: ServerResponse, request: ChatRequest, generation: GenerateRequest, entry: LogEntry): Promise<void> {
    const head = { id: this.completionId(), object: 'chat.completion.chunk', created: Math.floor(Date.now() / 1000), model: this.modelId };
    const send = (data: unknown) => res.destroyed || res.write(`data: ${JSON.stringify(data)}\n\n`);
    const chunk = (delta: object, finish: string | null = null) => send({ ...head, choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }] });
    res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', connection: 'keep-alive' });
    chunk({ role: 'assistant', content: '' });
    const tokens = this.model.stream(generation);
    let started = false; // the answer is trimmed (as LLaVA's): drop leading whitespace until the first visible text
    let step;
    while (!(step = await tokens.next()).done) {
      entry.completionTokens++;
      const text = started ? step.value.text : step.value.text.trimStart();
      if (text === '') continue;
      started = true;
      chunk({ content: text });
    }
    chunk({}, finishReason(step.value));
    if (request.includeUsage) send({ ...head, choices: [], usage: usage(step.value) });
    res.end('data: [DONE]\n\n');
  }

  /** Answers an error as OpenAI's error object — or, once an event stream has begun, as its last event. */
  private fail(res: ServerResponse, e: unknown, entry: LogEntry): void {
    if (e instanceof ClientGone) {
      entry.note = 'client disconnected';
      return;
    }
    const error = toApiError(e);
    entry.note ??= error.options.code ?? error.type;
    if (error.status >= 500) entry.note += `: ${error.message}`;
    if (res.destroyed) return;
    if (res.headersSent) {
      res.end(`data: ${JSON.stringify(error.body())}\n\n`);
      return;
    }
    sendJson(res, error.status, error.body(), error.options.headers);
  }

  /**
   * Stops accepting work, aborts running and queued generations, and waits (up to `graceMs`) until
   * their requests are answered; a request still sending its body then is cut off with the connections.
   */
  async shutdown(graceMs = 5000): Promise<void> {
    this.closing = true;
    for (const abort of this.generations) abort.abort(new ServerClosing());
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([Promise.all(this.handlers), new Promise((resolve) => (timer = setTimeout(resolve, graceMs)))]);
    clearTimeout(timer);
  }
}

function finishReason(result: GenerateResult): 'stop' | 'length' {
  const reasons: Record<FinishReason, 'stop' | 'length'> = { eos: 'stop', stop: 'stop', length: 'length' };
  return reasons[result.finishReason];
}

/** Prompt tokens count the image's visual tokens (the rows spliced in at −200), not the −200 marker. */
function usage(result: GenerateResult) {
  const prompt = result.inputIds.length - (result.visualTokens ? 1 : 0) + result.visualTokens;
  return { prompt_tokens: prompt, completion_tokens: result.ids.length, total_tokens: prompt + result.ids.length };
}

/** Library errors that are the request's fault become 400s; anything else is a 500 with its message. */
function toApiError(e: unknown): ApiError {
  if (e instanceof ApiError) return e;
  const message = e instanceof Error ? e.message : String(e);
  if (/^prompt too long/.test(message)) return new ApiError(400, message, { code: 'context_length_exceeded' });
  if (/^generation options:/.test(message)) return new ApiError(400, message, { code: 'invalid_value' });
  return new ApiError(500, `internal error: ${message}`, { code: 'internal_error' });
}

function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), ...headers });
  res.end(text);
}

/** The request body, or 413 past `maxBytes` (the rest is drained so the client reads the answer). */
function readBody(req: IncomingMessage, maxBytes: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const tooLarge = (size: string) =>
      new ApiError(413, `the request body is ${size}, over this server's limit of ${maxBytes} bytes; send a smaller image`, { code: 'body_too_large' });
    const declared = Number(req.headers['content-length']);
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size <= maxBytes) chunks.push(chunk);
      else if (size > DRAIN_LIMIT_FACTOR * maxBytes) req.destroy(); // not worth draining: cut the connection
    });
    req.on('end', () => (size > maxBytes ? reject(tooLarge(`${size} bytes`)) : resolve(Buffer.concat(chunks))));
    req.on('error', reject);
    // Closed before its end: cut off above (too large) or the client went away mid-body.
    req.on('close', () => reject(size > maxBytes ? tooLarge(Number.isFinite(declared) ? `${declared} bytes` : `over ${size} bytes`) : new ClientGone()));
  });
}
