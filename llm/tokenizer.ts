/**
 * The LLaMA / Vicuna SentencePiece tokenizer (32000 pieces, byte fallback), from `llama-tokenizer-js`:
 * pure JavaScript with the vocabulary and merge table bundled, so it runs unchanged in a browser.
 *
 * SentencePiece conventions that matter for reproducing LLaVA's ids exactly:
 *   - a space is the piece "▁" (id 29871); every encoded text gets a "dummy prefix" space, so
 *     "USER" encodes as "▁US" "ER" and "\nWhat" as "▁" "<0x0A>" "What";
 *   - BOS (<s>, id 1) is prepended by the caller when it asks for it (LLaVA: once, at the start);
 *   - decoding drops the dummy prefix space and skips the special ids <unk>, <s>, </s>.
 */
import llamaTokenizer from 'llama-tokenizer-js';

export interface EncodeOptions {
  /** Prepend BOS. Default true. */
  bos?: boolean;
  /** Add SentencePiece's dummy prefix space. Default true (what HF's LlamaTokenizer does per text chunk). */
  prefixSpace?: boolean;
}

/** What the prompt builder and the generator need from a tokenizer. */
export interface TextTokenizer {
  readonly bosId: number;
  readonly eosId: number;
  readonly vocabSize: number;
  encode(text: string, options?: EncodeOptions): number[];
  /** Text of `ids` with special tokens skipped and the leading dummy-prefix space removed. */
  decode(ids: readonly number[]): string;
}

const UNK_ID = 0;

export class LlamaTokenizer implements TextTokenizer {
  readonly bosId = 1;
  readonly eosId = 2;
  readonly vocabSize: number = llamaTokenizer.vocabById.length;

  encode(text: string, { bos = true, prefixSpace = true }: EncodeOptions = {}): number[] {
    if (text.length === 0) return bos ? [this.bosId] : [];
    return llamaTokenizer.encode(text, bos, prefixSpace);
  }

  decode(ids: readonly number[]): string {
    const pieces = ids.filter((id) => id !== UNK_ID && id !== this.bosId && id !== this.eosId);
    for (const id of pieces) {
      if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize) {
        throw new Error(`tokenizer.decode: token id ${id} is outside the vocabulary [0, ${this.vocabSize})`);
      }
    }
    return llamaTokenizer.decode(pieces, false, true);
  }
}

/**
 * Incremental detokenizer for streaming: SentencePiece pieces are not independent (the first piece
 * loses its leading space, and byte-fallback pieces only form a character together), so each push
 * decodes the whole answer so far and returns the new suffix, holding back an incomplete UTF-8
 * sequence (decoded as U+FFFD) until its remaining bytes arrive.
 */
export class StreamDecoder {
  private ids: number[] = [];
  private emitted = '';

  constructor(private readonly tokenizer: TextTokenizer) {}

  /** Adds one token; returns the text it completes ('' while a multi-byte character is pending). */
  push(id: number): string {
    this.ids.push(id);
    const text = this.tokenizer.decode(this.ids);
    if (text.endsWith('\uFFFD') || !text.startsWith(this.emitted)) return '';
    const delta = text.slice(this.emitted.length);
    this.emitted = text;
    return delta;
  }

  /** Everything decoded so far (including a pending partial character, as U+FFFD). */
  get text(): string {
    return this.tokenizer.decode(this.ids);
  }
}
