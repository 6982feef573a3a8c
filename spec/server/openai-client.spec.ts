/**
 * The official `openai` npm client against `serve()` over loopback: the served answers (plain and
 * streamed, PNG and JPEG data URLs) equal ConvLlava.generate's on the same image and prompt, token for
 * token, with the same usage counts; multi-turn histories and a system message reach the prompt.
 */
import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import OpenAI from 'openai';
import type { ChatCompletionMessageParam } from 'openai/resources/chat/completions';
import type { ConvLlava, GenerateRequest } from '../../llm/pipeline.js';
import { dataUrl, expectedAnswer, IMAGES, loadModel, QUESTION, startServer } from './fixture.js';

const MAX_TOKENS = 16;

describe('server: the openai client (server/server.ts)', function () {
  let model: ConvLlava;
  let server: Awaited<ReturnType<typeof startServer>>;
  let client: OpenAI;

  before(async () => {
    model = await loadModel();
    server = await startServer(model);
    client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'unused', maxRetries: 0 });
  });
  after(async () => {
    await server?.close();
    await model?.dispose();
  });

  /** The library's answer: its text, the streamed pieces, and usage as the server counts it. */
  async function reference(request: GenerateRequest) {
    const pieces: string[] = [];
    const r = await model.generate({ ...request, onToken: (e) => pieces.push(e.text) });
    const prompt = r.inputIds.length - 1 + r.visualTokens;
    return { text: r.text, streamed: pieces.join('').trimStart(), usage: { prompt_tokens: prompt, completion_tokens: r.ids.length, total_tokens: prompt + r.ids.length }, r };
  }

  const question = (image: string): ChatCompletionMessageParam[] => [
    { role: 'user', content: [{ type: 'text', text: QUESTION }, { type: 'image_url', image_url: { url: dataUrl(image) } }] },
  ];

  it('lists the model and reports health', async () => {
    const models = await client.models.list();
    expect(models.data.map((m) => m.id)).to.deep.equal(['convllava-shapes']);
    const health = await (await fetch(`${server.url}/health`)).json();
    expect(health).to.include({ status: 'ok', model: 'convllava-shapes', busy: false, queued: 0 });
  });

  for (const kind of ['png', 'jpeg'] as const) {
    it(`${kind.toUpperCase()} data URL: the plain and the streamed answers equal ConvLlava.generate, with its usage`, async () => {
      const ref = await reference({ image: readFileSync(IMAGES[kind]), prompt: QUESTION, maxNewTokens: MAX_TOKENS });
      expect(ref.r.visualTokens).to.equal(model.visualTokens);

      const plain = await client.chat.completions.create({ model: 'model', messages: question(IMAGES[kind]), max_tokens: MAX_TOKENS, temperature: 0 });
      expect(plain.object).to.equal('chat.completion');
      expect(plain.choices).to.have.length(1);
      expect(plain.choices[0].message).to.include({ role: 'assistant', content: ref.text });
      expect(plain.choices[0].finish_reason).to.equal(ref.r.finishReason === 'length' ? 'length' : 'stop');
      expect(plain.usage).to.deep.equal(ref.usage);
      const expected = expectedAnswer(kind);
      if (expected) expect(plain.choices[0].message.content).to.match(expected);

      const stream = await client.chat.completions.create({
        model: 'model',
        messages: question(IMAGES[kind]),
        max_completion_tokens: MAX_TOKENS,
        stream: true,
        stream_options: { include_usage: true },
      });
      let text = '';
      const finishes: (string | null)[] = [];
      let streamedUsage;
      for await (const chunk of stream) {
        expect(chunk.object).to.equal('chat.completion.chunk');
        if (chunk.usage) streamedUsage = chunk.usage;
        for (const choice of chunk.choices) {
          text += choice.delta.content ?? '';
          finishes.push(choice.finish_reason);
        }
      }
      expect(text).to.equal(ref.streamed);
      expect(text.trim()).to.equal(ref.text);
      expect(finishes.filter((f) => f !== null)).to.deep.equal([plain.choices[0].finish_reason]);
      expect(streamedUsage).to.deep.equal(ref.usage);
    });
  }

  it('a multi-turn history with a system message is the library conversation; seeded sampling repeats', async () => {
    const history = [{ user: QUESTION, assistant: 'A red circle.' }];
    const system = 'You answer in one word.';
    const ref = await reference({ image: readFileSync(IMAGES.otherPng), prompt: 'And its colour?', history, system, maxNewTokens: 4, temperature: 0.9, seed: 7 });
    const messages: ChatCompletionMessageParam[] = [
      { role: 'system', content: system },
      { role: 'user', content: [{ type: 'image_url', image_url: { url: dataUrl(IMAGES.otherPng) } }, { type: 'text', text: QUESTION }] },
      { role: 'assistant', content: 'A red circle.' },
      { role: 'user', content: 'And its colour?' },
    ];
    const answers = [];
    for (let i = 0; i < 2; i++) answers.push(await client.chat.completions.create({ model: 'model', messages, max_tokens: 4, temperature: 0.9, seed: 7 }));
    for (const a of answers) {
      expect(a.choices[0].message.content).to.equal(ref.text);
      expect(a.usage).to.deep.equal(ref.usage);
    }
  });

  it('a stop string ends the answer before it (finish_reason stop)', async function () {
    const ref = await reference({ image: readFileSync(IMAGES.png), prompt: QUESTION, maxNewTokens: MAX_TOKENS });
    const words = ref.text.split(/\s+/);
    if (words.length < 2) this.skip(); // needs an answer of two words or more to cut
    const stop = words[1];
    const cut = await reference({ image: readFileSync(IMAGES.png), prompt: QUESTION, maxNewTokens: MAX_TOKENS, stop: [stop] });
    const a = await client.chat.completions.create({ model: 'model', messages: question(IMAGES.png), max_tokens: MAX_TOKENS, stop });
    expect(a.choices[0].message.content).to.equal(cut.text);
    expect(a.choices[0].finish_reason).to.equal('stop');
    expect(a.choices[0].message.content).to.not.include(stop);
  });

  it('logs one line per request: method, path, status, tokens, ms', () => {
    const chat = server.lines.filter((l) => l.startsWith('POST /v1/chat/completions 200 '));
    expect(chat.length).to.be.at.least(6);
    for (const line of chat) expect(line).to.match(/^POST \/v1\/chat\/completions 200 \d+\+\d+ tokens \d+ ms$/);
    expect(server.lines.filter((l) => l.startsWith('GET '))).to.have.length(2);
    for (const line of server.lines.filter((l) => l.startsWith('GET '))) expect(line).to.match(/^GET \/(v1\/models|health) 200 \d+ ms$/);
  });
});
