/**
 * The multimodal prompt, exactly as LLaVA builds it for ConvLLaVA (conversation template
 * `vicuna_v1`, separator style TWO: sep " ", sep2 "</s>"):
 *
 *   "{system} USER: <image>\n{question} ASSISTANT:"
 *
 * and tokenised like LLaVA's `tokenizer_image_token`: the text is split on "<image>", each chunk is
 * tokenised on its own (with BOS and the dummy prefix space), BOS is kept once at the very start, and
 * IMAGE_TOKEN_INDEX (−200) marks where the projected image rows are spliced in.
 */
import type { TextTokenizer } from './tokenizer.js';

export const IMAGE_TOKEN_INDEX = -200;
export const IMAGE_PLACEHOLDER = '<image>';

export const VICUNA_V1_SYSTEM =
  'A chat between a curious user and an artificial intelligence assistant. ' +
  "The assistant gives helpful, detailed, and polite answers to the user's questions.";

/** One exchange; `assistant` is absent for the turn the model is about to answer. */
export interface Turn {
  user: string;
  assistant?: string;
}

/**
 * The vicuna_v1 prompt text for a conversation. The first user message gets "<image>\n" in front
 * of it when `withImage` (LLaVA's `DEFAULT_IMAGE_TOKEN + '\n' + question`). `system` replaces the
 * template's system message (LLaVA's `conv.system`).
 */
export function vicunaV1Prompt(turns: readonly Turn[], withImage = true, system = VICUNA_V1_SYSTEM): string {
  let text = system + ' ';
  turns.forEach((turn, i) => {
    const user = i === 0 && withImage ? `${IMAGE_PLACEHOLDER}\n${turn.user}` : turn.user;
    text += `USER: ${user} ASSISTANT:`;
    if (turn.assistant !== undefined) text += ` ${turn.assistant}</s>`;
  });
  return text;
}

/** LLaVA's `tokenizer_image_token`: ids with BOS once and −200 at each "<image>". */
export function tokenizerImageToken(tokenizer: TextTokenizer, prompt: string): number[] {
  const chunks = prompt.split(IMAGE_PLACEHOLDER).map((chunk) => tokenizer.encode(chunk, { bos: true, prefixSpace: true }));
  const ids: number[] = [...chunks[0]];
  for (const chunk of chunks.slice(1)) {
    ids.push(IMAGE_TOKEN_INDEX);
    ids.push(...chunk.slice(1)); // drop this chunk's BOS: BOS appears once
  }
  return ids;
}

/**
 * Ids of a whole conversation (earlier exchanges, then the question to answer), as LLaVA tokenises
 * its multi-turn prompt: HF's tokenizer splits the text at each special "</s>", so every turn after
 * the first is a fresh chunk (EOS, then the text with its dummy prefix space, no BOS) — the same ids
 * a ChatSession builds turn by turn with followUpIds.
 */
export function conversationIds(tokenizer: TextTokenizer, turns: readonly Turn[], withImage = true, system = VICUNA_V1_SYSTEM): number[] {
  const [first, ...rest] = vicunaV1Prompt(turns, withImage, system).split('</s>');
  const ids = tokenizerImageToken(tokenizer, first);
  for (const chunk of rest) ids.push(tokenizer.eosId, ...tokenizer.encode(chunk, { bos: false, prefixSpace: true }));
  return ids;
}

/**
 * Refuses a question that contains the image placeholder: the image goes before the first question
 * by itself, and a typed "<image>" would splice a second image slot into the prompt.
 */
export function checkQuestion(question: string): void {
  if (typeof question !== 'string') throw new Error(`the question must be a string, got ${typeof question}`);
  if (question.includes(IMAGE_PLACEHOLDER)) {
    throw new Error(`the question contains '${IMAGE_PLACEHOLDER}', the placeholder where the image goes; remove it (the image is placed before the question automatically)`);
  }
}

/** Prompt ids for a first question about an image: what `convllava run` feeds the model. */
export function imageQuestionIds(tokenizer: TextTokenizer, question: string, withImage = true): number[] {
  return tokenizerImageToken(tokenizer, vicunaV1Prompt([{ user: question }], withImage));
}

/**
 * Ids that continue a conversation whose KV cache already holds everything up to the assistant's
 * last generated token: the turn separator "</s>" (EOS) then "USER: {question} ASSISTANT:" — the
 * same ids the full re-tokenised prompt has there (HF tokenises the text after a special token as a
 * fresh chunk, with its dummy prefix space).
 */
export function followUpIds(tokenizer: TextTokenizer, question: string): number[] {
  return [tokenizer.eosId, ...tokenizer.encode(`USER: ${question} ASSISTANT:`, { bos: false, prefixSpace: true })];
}
