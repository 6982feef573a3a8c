/**
 * Typed errors for everything under weights/. Each names the file (and the tensor when there is one)
 * so a message can say exactly what is wrong and where; the CLI prints `message` alone, never a stack.
 */
export class WeightsError extends Error {
  constructor(
    message: string,
    /** The file (or folder) the problem is in. */
    readonly file: string,
    /** The tensor concerned, when the problem is about one tensor. */
    readonly tensor?: string,
  ) {
    super(message);
    this.name = new.target.name;
  }
}

/** A .safetensors file that breaks the format (header, dtypes, offsets, sizes, metadata). */
export class SafetensorsError extends WeightsError {}

/** A model folder that is incomplete or inconsistent (configs, index, expected tensors and shapes). */
export class CheckpointError extends WeightsError {}

/** Longest untrusted value (from a file, a header, a config) quoted in a message. */
export const MAX_QUOTED_CHARS = 120;

/**
 * An untrusted value for a message: JSON-quoted and cut to MAX_QUOTED_CHARS, saying how long it was,
 * so a 50 MB header value or a secret file's content is never echoed whole.
 */
export function quote(value: unknown): string {
  let text: string;
  try {
    text = typeof value === 'string' ? JSON.stringify(value) : (JSON.stringify(value) ?? String(value));
  } catch {
    text = String(value);
  }
  return truncated(text);
}

/** `text` cut to MAX_QUOTED_CHARS (e.g. a parser's message that quotes the input). */
export function truncated(text: string): string {
  return text.length <= MAX_QUOTED_CHARS ? text : `${text.slice(0, MAX_QUOTED_CHARS)}… (${text.length} characters)`;
}

/** A name from a file (a tensor, a shard, a key) in single quotes, cut like `quote`. */
export function named(name: string): string {
  return name.length <= MAX_QUOTED_CHARS ? `'${name}'` : `'${name.slice(0, MAX_QUOTED_CHARS)}…' (${name.length} characters)`;
}
