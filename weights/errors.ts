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
