/**
 * Bad requests: each gets its status and an OpenAI-style error object naming what was wrong (read
 * through the openai client where the request is well-formed HTTP + JSON, raw fetch where it is not),
 * none reaches the GPU, and the server stays up throughout.
 */
import { expect } from 'chai';
import { createServer } from 'node:http';
import { connect } from 'node:net';
import { readFileSync } from 'node:fs';
import OpenAI from 'openai';
import type { ConvLlava } from '../../llm/pipeline.js';
import { dataUrl, IMAGES, loadModel, MAX_CONTEXT, QUESTION, startServer } from './fixture.js';

const MAX_BODY = 300_000; // the PNG fixture as a data URL is ~194 kB
const MAX_PIXELS = 256 * 240; // case0.png (256×256) is over, case1.png (256×192) under

const user = (content: unknown) => ({ messages: [{ role: 'user', content }] });
const withImage = (url: string, text = QUESTION) => user([{ type: 'text', text }, { type: 'image_url', image_url: { url } }]);
const png = readFileSync(IMAGES.otherPng);
const b64 = (bytes: Uint8Array, type = 'image/png') => `data:${type};base64,${Buffer.from(bytes).toString('base64')}`;

/** [what, request body, status, error.code, message pattern] — sent through the openai client. */
const TABLE: [string, Record<string, unknown>, number, string, RegExp][] = [
  ['no messages', {}, 400, 'invalid_type', /^messages: must be an array of messages, got undefined/],
  ['empty messages', { messages: [] }, 400, 'invalid_value', /^messages: must contain at least one user message/],
  ['content of the wrong type', user(42), 400, 'invalid_type', /^messages\[0\]\.content: must be a string or an array of content parts, got number/],
  ['unknown role', { messages: [{ role: 'tool', content: 'x' }] }, 400, 'invalid_value', /^messages\[0\]\.role: must be 'system', 'developer', 'user' or 'assistant', got "tool"/],
  ['ends with the assistant', { messages: [{ role: 'user', content: 'a' }, { role: 'assistant', content: 'b' }] }, 400, 'invalid_value', /the last message must be from the user/],
  ['system message late', { messages: [{ role: 'user', content: 'a' }, { role: 'system', content: 'b' }] }, 400, 'invalid_value', /^messages\[1\]\.role: system messages must come before/],
  ['temperature a string', { ...user('hi'), temperature: 'hot' }, 400, 'invalid_type', /^temperature: must be a number, got string/],
  ['temperature out of range', { ...user('hi'), temperature: 3 }, 400, 'invalid_value', /^temperature: must be in \[0, 2\], got 3/],
  ['max_tokens 0', { ...user('hi'), max_tokens: 0 }, 400, 'invalid_value', /^max_tokens: must be in \[1, /],
  ['max_tokens fractional', { ...user('hi'), max_tokens: 1.5 }, 400, 'invalid_value', /^max_tokens: must be an integer, got 1.5/],
  ['stop not strings', { ...user('hi'), stop: [1] }, 400, 'invalid_type', /^stop: must be a string or an array of strings/],
  ['five stop strings', { ...user('hi'), stop: ['a', 'b', 'c', 'd', 'e'] }, 400, 'invalid_value', /^stop: at most 4 stop strings, got 5/],
  ['n = 2', { ...user('hi'), n: 2 }, 400, 'unsupported_parameter', /^n: not supported by this server \(one choice per request\)/],
  ['stream not a boolean', { ...user('hi'), stream: 'yes' }, 400, 'invalid_type', /^stream: must be a boolean, got string/],
  ['include_usage without stream', { ...user('hi'), stream_options: { include_usage: true } }, 400, 'invalid_value', /^stream_options: only allowed with stream: true/],
  ['audio content part', user([{ type: 'input_audio', input_audio: {} }]), 400, 'unsupported_content', /^messages\[0\]\.content\[0\]\.type: unsupported content part type "input_audio"/],
  ['a literal <image> in the text', user('look: <image>'), 400, 'invalid_value', /must not contain '<image>'/],
  [
    'two images',
    user([{ type: 'image_url', image_url: { url: b64(png) } }, { type: 'image_url', image_url: { url: b64(png) } }]),
    400,
    'too_many_images',
    /^messages\[0\]\.content\[1\]: one image per conversation/,
  ],
  [
    'an image from the assistant',
    { messages: [{ role: 'user', content: 'a' }, { role: 'assistant', content: [{ type: 'image_url', image_url: { url: b64(png) } }] }, { role: 'user', content: 'b' }] },
    400,
    'invalid_value',
    /images can only be sent in user messages/,
  ],
  ['a GIF', withImage(b64(Uint8Array.from([0x47, 0x49, 0x46, 0x38, 0x39, 0x61]), 'image/gif')), 400, 'unsupported_image', /unsupported image type 'image\/gif'; send PNG or JPEG/],
  ['text labelled PNG', withImage(b64(new TextEncoder().encode('hello, not an image'))), 400, 'invalid_image', /image: not a PNG or JPEG file \(first bytes 68 65 6c/],
  ['broken base64', withImage('data:image/png;base64,!!!!'), 400, 'invalid_image', /the data URL payload is not valid base64/],
  ['a truncated PNG', withImage(b64(png.subarray(0, 2000))), 400, 'invalid_image', /image: truncated PNG/],
  ['a remote URL', withImage('https://example.com/cat.png'), 400, 'remote_image_refused', /remote image URLs are refused \(this server makes no outbound requests\)/],
  ['a file URL', withImage('file:///etc/passwd'), 400, 'invalid_image', /must be a data: URL/],
  ['over the pixel cap', withImage(dataUrl(IMAGES.png)), 400, 'image_too_large', /the image is 256×256 = 65536 pixels, over this server's limit of 61440/],
  ['a JPEG over the pixel cap', withImage(dataUrl(IMAGES.jpeg)), 400, 'image_too_large', /the image is 256×256 = 65536 pixels, over this server's limit of 61440/],
  [
    'image + prompt + max_tokens over the context',
    { ...withImage(b64(png)), max_tokens: MAX_CONTEXT - 60 },
    400,
    'context_length_exceeded',
    new RegExp(`^this request needs \\d+ prompt tokens \\(16 of them the image's visual tokens\\) \\+ ${MAX_CONTEXT - 60} completion tokens, more than the model's context of ${MAX_CONTEXT} tokens`),
  ],
  ['a prompt alone over the context', user('word '.repeat(200)), 400, 'context_length_exceeded', /completion tokens, more than the model's context/],
  ['a body over the cap', user('x'.repeat(MAX_BODY)), 413, 'body_too_large', new RegExp(`^the request body is \\d+ bytes, over this server's limit of ${MAX_BODY} bytes`)],
];

describe('server: bad requests (server/request.ts, server/image.ts)', function () {
  let model: ConvLlava;
  let server: Awaited<ReturnType<typeof startServer>>;
  let client: OpenAI;
  const gpuWork: string[] = [];

  before(async () => {
    model = await loadModel();
    server = await startServer(model, { maxBodyBytes: MAX_BODY, maxImagePixels: MAX_PIXELS });
    client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'unused', maxRetries: 0 });
    // Count the GPU work: none of the refused requests may reach the vision tower or the decoder.
    const { backend } = model;
    const encodeImage = backend.encodeImage.bind(backend);
    const prefill = backend.prefill.bind(backend);
    backend.encodeImage = (...args) => (gpuWork.push('encodeImage'), encodeImage(...args));
    backend.prefill = (...args) => (gpuWork.push('prefill'), prefill(...args));
  });
  after(async () => {
    await server?.close();
    await model?.dispose();
  });

  for (const [what, body, status, code, message] of TABLE) {
    it(`${status} ${code}: ${what}`, async () => {
      const error = await client.chat.completions.create(body as never).then(
        () => expect.fail('the request was accepted'),
        (e: unknown) => e,
      );
      expect(error).to.be.instanceOf(OpenAI.APIError);
      const e = error as InstanceType<typeof OpenAI.APIError>;
      expect(e.status).to.equal(status);
      expect(e.code).to.equal(code);
      expect((e.error as { message: string }).message).to.match(message);
      expect(e.type).to.equal('invalid_request_error');
    });
  }

  it('400 for a body that is not JSON, or not an object (raw HTTP)', async () => {
    for (const [body, pattern] of [
      ['{"messages": [', /^the request body is not valid JSON/],
      ['[1, 2]', /^body: must be a JSON object, got an array/],
    ] as const) {
      const r = await fetch(`${server.url}/v1/chat/completions`, { method: 'POST', body, headers: { 'content-type': 'application/json' } });
      expect(r.status).to.equal(400);
      const { error } = await r.json();
      expect(error.message).to.match(pattern);
      expect(error).to.have.all.keys('message', 'type', 'param', 'code');
    }
  });

  it('404 for an unknown path, 405 with Allow for a wrong method, 400 for malformed HTTP', async () => {
    const missing = await fetch(`${server.url}/v1/completions`, { method: 'POST', body: '{}' });
    expect(missing.status).to.equal(404);
    expect((await missing.json()).error.message).to.match(/^no route POST \/v1\/completions; this server has GET \/health/);
    const wrong = await fetch(`${server.url}/v1/chat/completions`);
    expect(wrong.status).to.equal(405);
    expect(wrong.headers.get('allow')).to.equal('POST');
    const reply = await new Promise<string>((resolve, reject) => {
      const socket = connect(server.port, '127.0.0.1', () => socket.write('NOT HTTP AT ALL\r\n\r\n'));
      let text = '';
      socket.on('data', (d) => (text += d));
      socket.on('end', () => resolve(text));
      socket.on('error', reject);
    });
    expect(reply).to.match(/^HTTP\/1\.1 400 Bad Request/);
    expect(JSON.parse(reply.split('\r\n\r\n')[1]).error).to.include({ code: 'bad_http', type: 'invalid_request_error' });
  });

  it('did no GPU work for any refused request, logged each with its status and code, and is still up', async () => {
    expect(gpuWork).to.deep.equal([]);
    expect(server.lines.length).to.be.at.least(TABLE.length + 4);
    for (const line of [
      /^POST \/v1\/chat\/completions 400 \d+ ms remote_image_refused$/,
      /^POST \/v1\/chat\/completions 400 \d+\+0 tokens \d+ ms context_length_exceeded$/,
      /^POST \/v1\/chat\/completions 413 \d+ ms body_too_large$/,
      /^POST \/v1\/completions 404 \d+ ms unknown_url$/,
    ]) {
      expect(server.lines.some((l) => line.test(l)), `a log line matching ${line}`).to.equal(true);
    }
    const health = await (await fetch(`${server.url}/health`)).json();
    expect(health).to.include({ status: 'ok', busy: false, queued: 0, served: 0 });
  });

  it('an image under the caps is answered after all that; --allow-remote-images fetches an http URL (here from loopback)', async () => {
    const images = createServer((_req, res) => res.end(png)).listen(0, '127.0.0.1');
    await new Promise((r) => images.once('listening', r));
    const remote = await startServer(model, { allowRemoteImages: true });
    try {
      const port = (images.address() as { port: number }).port;
      const ask = (c: OpenAI, url: string) => c.chat.completions.create({ model: 'm', ...(withImage(url) as { messages: never }), max_tokens: 3 });
      const inline = await ask(client, b64(png));
      const fetched = await ask(new OpenAI({ baseURL: `${remote.url}/v1`, apiKey: 'unused', maxRetries: 0 }), `http://127.0.0.1:${port}/case1.png`);
      expect(fetched.choices[0].message.content).to.equal(inline.choices[0].message.content);
      expect(fetched.usage).to.deep.equal(inline.usage);
      expect(gpuWork).to.include.members(['encodeImage', 'prefill']);
    } finally {
      await remote.close();
      images.close();
    }
  });
});
