import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import { LlamaTokenizer, StreamDecoder } from '../../llm/tokenizer.js';
import {
  IMAGE_TOKEN_INDEX,
  conversationIds,
  followUpIds,
  imageQuestionIds,
  tokenizerImageToken,
  vicunaV1Prompt,
} from '../../llm/prompt.js';

const FIXTURES = new URL('../fixtures/', import.meta.url);
const golden = JSON.parse(readFileSync(new URL('convllava-tiny/golden.json', FIXTURES), 'utf8'));
const prompts = JSON.parse(readFileSync(new URL('tools/prompts.json', FIXTURES), 'utf8'));

/** The int64 tensor `name` of a .safetensors file, as numbers (a few lines: no dependency on weights/). */
function safetensorsInts(url: URL, name: string): number[] {
  const bytes = readFileSync(url);
  const headerLength = Number(bytes.readBigUInt64LE(0));
  const header = JSON.parse(bytes.subarray(8, 8 + headerLength).toString('utf8'));
  const entry = header[name];
  if (entry.dtype !== 'I64') throw new Error(`${name}: expected I64, got ${entry.dtype}`);
  const [begin, end] = entry.data_offsets as [number, number];
  const out: number[] = [];
  for (let o = 8 + headerLength + begin; o < 8 + headerLength + end; o += 8) out.push(Number(bytes.readBigInt64LE(o)));
  return out;
}

describe('tokenizer + vicuna_v1 prompt (llm/tokenizer.ts, llm/prompt.ts)', () => {
  const tokenizer = new LlamaTokenizer();

  it('builds the fixture prompt text exactly', () => {
    expect(vicunaV1Prompt([{ user: golden.question }])).to.equal(golden.prompt);
    expect(prompts.visible.prompt).to.equal(golden.prompt);
  });

  it("reproduces the fixture's input_ids (tokenizer_image_token: BOS once, -200 at <image>)", () => {
    const ids = imageQuestionIds(tokenizer, golden.question);
    for (const c of [0, 1]) {
      const truth = safetensorsInts(new URL('convllava-tiny/golden.safetensors', FIXTURES), `case${c}.input_ids`);
      expect(ids).to.deep.equal(truth);
    }
    expect(ids).to.deep.equal(golden.input_ids);
    expect(ids.filter((i) => i === IMAGE_TOKEN_INDEX)).to.have.length(1);
    expect(ids.filter((i) => i === tokenizer.bosId)).to.have.length(1);
  });

  it('splits on every <image> and keeps BOS only at the start', () => {
    const ids = tokenizerImageToken(tokenizer, 'a <image> b <image> c');
    expect(ids[0]).to.equal(tokenizer.bosId);
    expect(ids.filter((i) => i === IMAGE_TOKEN_INDEX)).to.have.length(2);
    expect(ids.slice(1).includes(tokenizer.bosId)).to.equal(false);
  });

  it('a follow-up turn continues the full re-tokenised conversation exactly', () => {
    // The KV cache holds: first prompt + the answer's ids. The follow-up ids must equal what the
    // whole two-turn prompt tokenises to after that point.
    const answer = 'A red square.';
    const first = imageQuestionIds(tokenizer, golden.question);
    const answerIds = tokenizer.encode(answer, { bos: false, prefixSpace: true });
    // "</s>" is a special token (EOS): HF tokenises the text on each side of it as separate chunks.
    const [before, after] = vicunaV1Prompt([{ user: golden.question, assistant: answer }, { user: 'And the circle?' }]).split('</s>');
    const reference = [...tokenizerImageToken(tokenizer, before), tokenizer.eosId, ...tokenizer.encode(after, { bos: false })];
    expect([...first, ...answerIds, ...followUpIds(tokenizer, 'And the circle?')]).to.deep.equal(reference);
  });

  it('conversationIds: one turn is imageQuestionIds; a history is what a chat builds turn by turn; system replaces the template', () => {
    expect(conversationIds(tokenizer, [{ user: golden.question }])).to.deep.equal(golden.input_ids);
    expect(conversationIds(tokenizer, [{ user: 'Hi' }], false)).to.deep.equal(imageQuestionIds(tokenizer, 'Hi', false));
    const answer = 'A red square.';
    const turnByTurn = [
      ...imageQuestionIds(tokenizer, golden.question),
      ...tokenizer.encode(answer, { bos: false, prefixSpace: true }),
      ...followUpIds(tokenizer, 'And the circle?'),
    ];
    expect(conversationIds(tokenizer, [{ user: golden.question, assistant: answer }, { user: 'And the circle?' }])).to.deep.equal(turnByTurn);
    const custom = conversationIds(tokenizer, [{ user: 'Hi' }], true, 'You count shapes.');
    expect(custom).to.deep.equal(tokenizerImageToken(tokenizer, 'You count shapes. USER: <image>\nHi ASSISTANT:'));
  });

  it('decodes text, skipping special ids and the dummy prefix space', () => {
    const ids = tokenizer.encode('Hello world, héllo 世界!\nnew line', { bos: true });
    expect(tokenizer.decode([...ids, tokenizer.eosId])).to.equal('Hello world, héllo 世界!\nnew line');
    expect(() => tokenizer.decode([32000])).to.throw(/outside the vocabulary/);
  });

  it('streams text piece by piece, holding back partial UTF-8 characters', () => {
    const text = 'Le café 世界 🙂 ok';
    const ids = tokenizer.encode(text, { bos: false });
    const stream = new StreamDecoder(tokenizer);
    const deltas = ids.map((id) => stream.push(id));
    expect(deltas.join('')).to.equal(text);
    expect(deltas.every((d) => !d.includes('\uFFFD'))).to.equal(true);
  });
});
