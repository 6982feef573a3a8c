/**
 * `convllava run` and `convllava chat` as a user runs them: a child process on the tiny fixture model.
 */
import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import { runCli } from '../helpers.js';

const TINY = 'spec/fixtures/convllava-tiny';
const golden = JSON.parse(readFileSync(new URL(`../../${TINY}/golden.json`, import.meta.url), 'utf8'));

const cli = (args: string[], stdin = '') => runCli(args, { stdin });

describe('convllava run / chat (cli/run.ts, cli/chat.ts)', () => {
  it("run --json: streams the answer, then a JSON line whose input_ids are the fixture's", async () => {
    const { code, stdout, stderr } = await cli([
      'run', '--model', `${TINY}/model`, '--image', `${TINY}/case0.png`, '--prompt', golden.question,
      '--max-new-tokens', '4', '--temperature', '0', '--dtype', 'f32', '--json',
    ]);
    expect(code, stderr).to.equal(0);
    const lines = stdout.trimEnd().split('\n');
    const record = JSON.parse(lines.at(-1)!);
    expect(record.input_ids).to.deep.equal(golden.input_ids);
    expect(record.generated_ids).to.deep.equal(golden.cases[0].generated.slice(0, 4));
    expect(record.visual_tokens).to.equal(16);
    expect(lines.at(-2)).to.equal(record.text); // the streamed answer
    for (const key of ['load_ms', 'preprocess_ms', 'image_encode_ms', 'prefill_ms', 'prefill_tok_s', 'decode_tok_s', 'ttft_ms']) {
      expect(record.timings[key], key).to.be.a('number');
    }
    expect(stderr).to.match(/loading llm .*100% \(21\/21 tensors\)/);
  });

  it('chat: answers each piped line, continuing the conversation', async () => {
    const { code, stdout, stderr } = await cli(
      ['chat', '--model', `${TINY}/model`, '--image', `${TINY}/case1.png`, '--max-new-tokens', '3', '--dtype', 'f32', '--json'],
      `${golden.question}\nAnd the colours?\n`,
    );
    expect(code, stderr).to.equal(0);
    const records = stdout.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l));
    expect(records).to.have.length(2);
    expect(records[0].input_ids).to.deep.equal(golden.input_ids);
    expect(records[0].generated_ids).to.deep.equal(golden.cases[1].generated.slice(0, 3));
    expect(records[1].input_ids[0]).to.equal(2); // the turn starts with "</s>"
    expect(stdout).to.match(/USER: And the colours\?\nASSISTANT: /);
  });

  it('chat: a turn that does not fit the context is refused with the counts, and the chat goes on', async () => {
    // --max-context 90 holds the first turn (49 text + 16 visual + 3 new) but not a long second one.
    const long = Array.from({ length: 40 }, () => 'word').join(' ');
    const { code, stdout, stderr } = await cli(
      ['chat', '--model', `${TINY}/model`, '--image', `${TINY}/case1.png`, '--max-new-tokens', '3', '--dtype', 'f32', '--max-context', '90', '--json'],
      `${golden.question}
${long}
ok?
`,
    );
    expect(code, stderr).to.equal(1); // the chat goes on, but its exit code says a turn failed (issue #16)
    expect(stderr).to.match(/convllava chat: prompt too long: .* > context 90/);
    const records = stdout.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l));
    expect(records).to.have.length(2); // the first and the third turn were answered
    expect(records[0].generated_ids).to.deep.equal(golden.cases[1].generated.slice(0, 3));
  });

  it('run --backend cpu: the same answer from the CPU references', async () => {
    const { code, stdout, stderr } = await cli([
      'run', '--model', `${TINY}/model`, '--image', `${TINY}/case1.png`, '--prompt', golden.question,
      '--max-new-tokens', '5', '--backend', 'cpu', '--json',
    ]);
    expect(code, stderr).to.equal(0);
    const record = JSON.parse(stdout.trimEnd().split('\n').at(-1)!);
    expect(record.generated_ids).to.deep.equal(golden.cases[1].generated.slice(0, 5));
  });

  it('fails with a message naming the missing option', async () => {
    const { code, stderr } = await cli(['run', '--image', `${TINY}/case0.png`, '--prompt', 'hi']);
    expect(code).to.equal(1);
    expect(stderr).to.match(/--model DIR is required/);
  });
});
