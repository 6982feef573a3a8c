/** Reading the PyTorch oracle's float32 tensors (golden.safetensors, preprocess.safetensors) in vision specs. */
import { fileURLToPath } from 'node:url';
import { SafetensorsFile } from '../weights/safetensors.js';

export const FIXTURES = fileURLToPath(new URL('./fixtures/', import.meta.url));
export const TINY_MODEL = `${FIXTURES}convllava-tiny/model`;

/** One F32 tensor of a fixture file, with its shape. */
export async function readFixture(file: string, name: string): Promise<{ data: Float32Array; shape: number[] }> {
  const st = await SafetensorsFile.open(file);
  try {
    const info = st.info(name);
    if (info.dtype !== 'F32') throw new Error(`${file}: ${name} is ${info.dtype}, expected F32`);
    const bytes = await st.readBytes(name);
    const data = new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
    return { data, shape: info.shape };
  } finally {
    await st.close();
  }
}
