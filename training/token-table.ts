/**
 * Writes training/tokens.json: the token ids of every question prompt (vicuna_v1, with −200 at the
 * image) and every answer (with EOS) of the shapes task, made by the same tokenizer and prompt
 * builder inference uses, so the training code needs no tokenizer of its own.
 *
 * usage: npx tsx training/token-table.ts   (the question/answer lists come from shapes_data.py)
 *
 * The answer ids are the ids the whole text "… ASSISTANT: {answer}" has after the prompt's ids, then
 * EOS (vicuna_v1's "</s>"); checked for every (question, answer) pair.
 */
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { LlamaTokenizer } from '../llm/tokenizer.js';
import { tokenizerImageToken, vicunaV1Prompt } from '../llm/prompt.js';

const here = new URL('.', import.meta.url).pathname;
const lists = JSON.parse(
  execFileSync('/usr/bin/python3', ['-c', 'import json,shapes_data as s; q,a=s.all_questions_and_answers(); print(json.dumps([q,a]))'], { cwd: here }).toString(),
) as [string[], string[]];
const [questions, answers] = lists;
const tok = new LlamaTokenizer();
const prompts: Record<string, number[]> = {};
const answerIds: Record<string, number[]> = {};
for (const q of questions) {
  const promptText = vicunaV1Prompt([{ user: q }]);
  const p = tokenizerImageToken(tok, promptText);
  prompts[q] = p;
  for (const a of answers) {
    // The conversation goes on with " {answer}</s>": the prompt's ids must be a prefix of the ids of
    // the whole text, or training on (prompt ‖ answer) would not be what generation continues from.
    const full = tokenizerImageToken(tok, `${promptText} ${a}`);
    if (p.some((id, i) => full[i] !== id)) throw new Error(`"${q}" + "${a}": the answer merges with the prompt's last token`);
    const ids = [...full.slice(p.length), tok.eosId];
    if (answerIds[a] && answerIds[a].join() !== ids.join()) throw new Error(`answer "${a}" tokenises two ways`);
    if (tok.decode(ids) !== a) throw new Error(`answer "${a}" decodes as "${tok.decode(ids)}"`);
    answerIds[a] = ids;
  }
}
writeFileSync(`${here}tokens.json`, JSON.stringify({ prompts, answers: answerIds }) + '\n');
console.log(`${questions.length} prompts (${Math.min(...Object.values(prompts).map((p) => p.length))}–${Math.max(...Object.values(prompts).map((p) => p.length))} ids), ${answers.length} answers`);
console.log(prompts['How many shapes are there?'].join(' '));
