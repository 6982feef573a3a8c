/**
 * `convllava serve` as a user runs it: a child process on the shapes model, asked over plain HTTP (as
 * curl would), stopped with SIGTERM. Its greedy answer is the right answer about the picture.
 */
import { expect } from 'chai';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { imageQuestionIds } from '../../llm/prompt.js';
import { LlamaTokenizer } from '../../llm/tokenizer.js';
import { dataUrl, expectedAnswer, IMAGES, MODEL_DIR, QUESTION } from './fixture.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

describe('convllava serve (cli/serve.ts)', () => {
  it('serves /v1/chat/completions on a free port, logs each request, and exits 0 on SIGTERM', async () => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'cli/main.ts', 'serve', '--model', MODEL_DIR, '--port', '0', '--dtype', 'f32', '--max-context', '160', '--model-id', 'shapes'], {
      cwd: ROOT,
      env: { ...process.env, XDG_RUNTIME_DIR: process.env.XDG_RUNTIME_DIR ?? '/tmp' },
    });
    let stderr = '';
    let completionTokens = -1;
    const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
    try {
      const url = await new Promise<string>((resolve, reject) => {
        child.stderr.on('data', (d) => {
          stderr += d;
          const found = /on (http:\/\/127\.0\.0\.1:\d+) — OpenAI base URL/.exec(stderr);
          if (found) resolve(found[1]);
        });
        child.on('close', () => reject(new Error(`serve exited early:\n${stderr}`)));
      });
      const models = await (await fetch(`${url}/v1/models`)).json();
      expect(models.data.map((m: { id: string }) => m.id)).to.deep.equal(['shapes']);
      const response = await fetch(`${url}/v1/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({
          model: 'shapes',
          max_tokens: 16,
          messages: [{ role: 'user', content: [{ type: 'text', text: QUESTION }, { type: 'image_url', image_url: { url: dataUrl(IMAGES.png) } }] }],
        }),
      });
      expect(response.status).to.equal(200);
      const completion = await response.json();
      expect(completion.choices[0].message.content).to.match(expectedAnswer('png')!);
      expect(completion.choices[0].finish_reason).to.equal('stop');
      expect(completion.usage.prompt_tokens).to.equal(imageQuestionIds(new LlamaTokenizer(), QUESTION).length - 1 + 16);
      completionTokens = completion.usage.completion_tokens;
    } finally {
      child.kill('SIGTERM');
    }
    expect(await exited, stderr).to.equal(0);
    expect(stderr).to.match(/^GET \/v1\/models 200 \d+ ms$/m);
    expect(stderr).to.match(new RegExp(`^POST /v1/chat/completions 200 \\d+\\+${completionTokens} tokens \\d+ ms$`, 'm'));
    expect(stderr).to.match(/convllava serve: SIGTERM, shutting down/);
  });

  it('refuses bad flags with one message', async () => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'cli/main.ts', 'serve', '--model', MODEL_DIR, '--max-queue', 'many'], { cwd: ROOT });
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    expect(await new Promise((resolve) => child.on('close', resolve))).to.equal(1);
    expect(stderr.trim()).to.equal("convllava serve: --max-queue must be an integer ≥ 0, got 'many'");
  });
});
