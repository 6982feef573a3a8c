/**
 * One model, many clients: the FIFO queue on its own, then over HTTP with the openai client — a
 * burst served in arrival order with the queue limit enforced (429 + Retry-After), a client that
 * disconnects mid-stream or while queued stops its generation / leaves the line and the next answers
 * are still exact, no GPU memory is left behind, and close() ends what is in flight.
 */
import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import OpenAI from 'openai';
import type { ConvLlava } from '../../llm/pipeline.js';
import type { TokenSteps } from '../../llm/generate.js';
import { FifoQueue, QueueFullError } from '../../server/queue.js';
import { dataUrl, IMAGES, loadModel, MAX_CONTEXT, QUESTION, startServer, until } from './fixture.js';

const STEP_DELAY_MS = 25;
/** Tokens chosen so far by any generation on the model (counted by the delaying hook). */
let picks = 0;

describe('server: FifoQueue (server/queue.ts)', () => {
  it('runs one at a time in arrival order, refuses past maxWaiting, and lets an aborted waiter leave', async () => {
    const queue = new FifoQueue(2);
    const order: string[] = [];
    const first = await queue.enter();
    expect(queue.busy).to.equal(true);
    const leaving = new AbortController();
    const b = queue.enter().then((release) => (order.push('b'), release));
    const gone = queue.enter(leaving.signal).then(
      () => 'entered',
      (e: Error) => e.message,
    );
    const full = await queue.enter().catch((e: unknown) => e);
    expect(full).to.be.instanceOf(QueueFullError).with.property('message', 'the queue is full (2 requests waiting)');
    leaving.abort(new Error('left the line'));
    expect(await gone).to.equal('left the line');
    expect(queue.waiting).to.equal(1);
    const c = queue.enter().then((release) => (order.push('c'), release));
    first();
    first(); // a second call is a no-op, not a second turn
    (await b)();
    (await c)();
    expect(order).to.deep.equal(['b', 'c']);
    expect(queue.busy).to.equal(false);
    expect(() => new FifoQueue(-1)).to.throw(/queue length must be an integer ≥ 0/);
  });
});

describe('server: queue, disconnects and shutdown over HTTP (server/server.ts)', function () {
  let model: ConvLlava;
  let server: Awaited<ReturnType<typeof startServer>>;
  let client: OpenAI;
  const answers: Record<'png' | 'otherPng', string> = { png: '', otherPng: '' };

  const ask = (image: keyof typeof IMAGES, maxTokens: number) => ({
    model: 'model',
    messages: [{ role: 'user' as const, content: [{ type: 'text' as const, text: QUESTION }, { type: 'image_url' as const, image_url: { url: dataUrl(IMAGES[image]) } }] }],
    max_tokens: maxTokens,
  });
  const health = async () => (await fetch(`${server.url}/health`)).json();
  /** A streaming request that generates until aborted (max_tokens fills the context); resolves once its first token arrived. */
  async function longStream(c: OpenAI) {
    const abort = new AbortController();
    const stream = await c.chat.completions.create({ ...ask('png', MAX_CONTEXT - 80), stream: true }, { signal: abort.signal });
    const chunks = stream[Symbol.asyncIterator]();
    await chunks.next(); // role
    await chunks.next(); // the first token
    const drained = (async () => {
      try {
        for (let step = await chunks.next(); !step.done; step = await chunks.next());
        return 'finished';
      } catch (e) {
        return (e as Error).message;
      }
    })();
    return { abort: () => abort.abort(), drained };
  }

  before(async () => {
    model = await loadModel();
    // The tiny model decodes too fast to hold a long generation open while a test sets up a queue:
    // each token waits STEP_DELAY_MS first, so an 80-token answer takes ≥ 2 s unless it is stopped.
    const { backend } = model;
    const prefill = backend.prefill.bind(backend);
    backend.prefill = (...args) => {
      const slow = (steps: TokenSteps) => {
        const pick = steps.pick.bind(steps);
        steps.pick = async (choice) => (await new Promise((r) => setTimeout(r, STEP_DELAY_MS)), picks++, pick(choice));
        // The pipelined loop's pick: recorded at once (the next step is fed from it), its id delayed.
        const ahead = steps.ahead;
        if (ahead) {
          const startPick = ahead.startPick.bind(ahead);
          ahead.startPick = (choice) => {
            const id = startPick(choice).then(async (v) => (await new Promise((r) => setTimeout(r, STEP_DELAY_MS)), picks++, v));
            id.catch(() => {}); // a discarded step's id is never awaited
            return id;
          };
        }
        return steps;
      };
      const steps = prefill(...args); // a Promise when the request has an abort signal (layer-by-layer prefill)
      return steps instanceof Promise ? steps.then(slow) : slow(steps);
    };
    for (const image of ['png', 'otherPng'] as const) {
      answers[image] = (await model.generate({ image: readFileSync(IMAGES[image]), prompt: QUESTION, maxNewTokens: 4 })).text;
    }
    server = await startServer(model, { maxQueue: 2 });
    client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'unused', maxRetries: 0 });
  });
  after(async () => {
    await server?.close();
    await model?.dispose();
  });

  it('a burst: served in order, the queue limit answered 429 + Retry-After; a disconnect mid-stream frees the model and leaks nothing', async () => {
    const liveBefore = model.gpu!.pool.liveBytes;
    const running = await longStream(client);
    const done: string[] = [];
    const b = client.chat.completions.create(ask('png', 4)).then((r) => (done.push('b'), r));
    await until(async () => (await health()).queued === 1, 'b queued');
    const c = client.chat.completions.create(ask('otherPng', 4)).then((r) => (done.push('c'), r));
    await until(async () => (await health()).queued === 2, 'c queued');

    const refused = await client.chat.completions.create(ask('png', 4)).catch((e: unknown) => e);
    expect(refused).to.be.instanceOf(OpenAI.RateLimitError);
    const e = refused as InstanceType<typeof OpenAI.RateLimitError>;
    expect(e.status).to.equal(429);
    expect(e.code).to.equal('queue_full');
    expect(e.message).to.match(/the server is busy: the queue is full \(2 requests waiting\)/);
    expect(Number(e.headers?.get('retry-after'))).to.be.a('number').and.at.least(1);

    running.abort();
    await running.drained; // the openai client ends an aborted stream quietly
    const [rb, rc] = await Promise.all([b, c]);
    expect(done).to.deep.equal(['b', 'c']);
    expect(rb.choices[0].message.content).to.equal(answers.png);
    expect(rc.choices[0].message.content).to.equal(answers.otherPng);

    const stopped = server.lines.find((l) => l.includes('client disconnected'));
    const [, generated] = /\+(\d+) tokens/.exec(stopped ?? '') ?? [];
    expect(Number(generated), stopped).to.be.within(1, MAX_CONTEXT - 80 - 1);
    // the two answers of 4 tokens (not the disconnected stream's line, which reads +4 tokens too when it was cut after 4)
    expect(server.lines.filter((l) => / 200 \d+\+4 tokens/.test(l) && !l.includes('client disconnected'))).to.have.length(2);
    expect(server.stats()).to.deep.include({ busy: false, queued: 0, served: 2, rejected: 1, aborted: 1 });
    expect(model.gpu!.pool.liveBytes).to.equal(liveBefore);
  });

  it('a client that disconnects while queued leaves the line; the next request is answered exactly', async () => {
    const running = await longStream(client);
    const leaving = new AbortController();
    const queued = client.chat.completions.create(ask('png', 4), { signal: leaving.signal }).catch((e: Error) => e);
    await until(async () => (await health()).queued === 1, 'queued');
    leaving.abort();
    expect(await queued).to.be.instanceOf(Error);
    await until(async () => (await health()).queued === 0, 'the queue to empty');
    running.abort();
    await running.drained;
    const next = await client.chat.completions.create(ask('otherPng', 4));
    expect(next.choices[0].message.content).to.equal(answers.otherPng);
    expect(server.stats()).to.deep.include({ busy: false, queued: 0, aborted: 3 });
  });

  it('a plain (non-streaming) request whose client disconnects mid-answer stops generating too', async () => {
    const leaving = new AbortController();
    const request = client.chat.completions.create(ask('png', MAX_CONTEXT - 80), { signal: leaving.signal }).catch((e: Error) => e);
    const before = picks;
    await until(() => picks >= before + 3, 'three tokens');
    const logged = server.lines.length;
    leaving.abort();
    expect(await request).to.be.instanceOf(Error);
    await until(() => server.lines.length > logged && !server.stats().busy, 'its log line and the model to be free');
    const line = server.lines.at(-1)!;
    expect(line).to.match(/^POST \/v1\/chat\/completions --- \d+\+\d+ tokens \d+ ms client disconnected \(generation stopped\)$/);
    expect(Number(/\+(\d+) tokens/.exec(line)![1])).to.be.within(1, MAX_CONTEXT - 80 - 1);
    expect(server.lines.some((l) => l.endsWith('client disconnected (left the queue)'))).to.equal(true);
  });

  it('close() ends the running stream and answers queued requests 503', async () => {
    const closing = await startServer(model, { maxQueue: 2 });
    const c = new OpenAI({ baseURL: `${closing.url}/v1`, apiKey: 'unused', maxRetries: 0 });
    const running = await longStream(c);
    const queued = c.chat.completions.create(ask('png', 4)).catch((e: unknown) => e);
    await until(async () => (await (await fetch(`${closing.url}/health`)).json()).queued === 1, 'queued');
    await closing.close();
    const refused = (await queued) as InstanceType<typeof OpenAI.APIError>;
    expect(refused.status).to.equal(503);
    expect(refused.message).to.match(/the server is shutting down/);
    expect(await running.drained).to.not.equal('finished');
  });
});
