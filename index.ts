/// <reference types="@webgpu/types" preserve="true" />
/**
 * convllava — ConvLLaVA (arXiv 2405.15738) on WebGPU: every float op is a hand-written WGSL kernel.
 *
 *   import { ConvLlava } from 'convllava';
 *   const model = await ConvLlava.load('ConvLLaVA-pretrain-768', { onProgress: (p) => … });
 *   const { text } = await model.generate({ image: 'cat.png', prompt: 'What is shown?', onToken: (t) => write(t.text) });
 *   for await (const t of model.stream({ image, prompt })) …       // async-iterator form
 *   const chat = model.chat({ image }); await chat.send('…'); await chat.send('and then?');
 *   const server = await serve({ model, port: 8080 });   // OpenAI-compatible HTTP: POST /v1/chat/completions
 *   await model.dispose();
 */
export { ConvLlava, ChatSession, EncodedImage } from './llm/pipeline.js';
export type { ChatOptions, GenerateOptions, GenerateRequest, GenerateResult, ImageInput, LoadOptions, LoadProgress, Timings } from './llm/pipeline.js';
export type { FinishReason, SamplingOptions, TokenEvent } from './llm/generate.js';
export { LlamaTokenizer, StreamDecoder, type TextTokenizer } from './llm/tokenizer.js';
export { IMAGE_TOKEN_INDEX, VICUNA_V1_SYSTEM, conversationIds, imageQuestionIds, tokenizerImageToken, vicunaV1Prompt, type Turn } from './llm/prompt.js';
export { LlamaDecoder } from './llm/llama.js';
export { VisionTower } from './convnext/model.js';
export { Llava, inputsEmbeds } from './llm/llava.js';
// nn/: modules written once over TensorOps; load on a Gpu (kernels) or on cpuOps (their CPU twins).
export { Projector } from './nn/projector.js';
export { cpuOps, gpuOps, type Nd, type TensorOps } from './nn/ops.js';
export { tidy } from './nn/tidy.js';
export { Gpu } from './runtime/gpu.js';
export type { RawImage } from './convnext/preprocess.js';
// The OpenAI-compatible HTTP server (Node only: node:http is imported when serve() runs).
export { serve, SERVE_DEFAULTS, type ConvLlavaServer, type ServeOptions, type ServerStats } from './server/server.js';
// Model folders: Checkpoint.open(dir) in Node; in a browser Checkpoint.openFrom(new UrlFolderReader(url))
// (HTTP Range requests) or Checkpoint.openFrom(BlobFolderReader.fromFiles(input.files)), then ConvLlava.load(checkpoint).
export { Checkpoint } from './weights/checkpoint.js';
export type { ModelFolderReader } from './weights/folder.js';
export { UrlByteSource, UrlFolderReader, type UrlSourceOptions } from './weights/url-source.js';
export { BlobByteSource, BlobFolderReader } from './weights/blob-source.js';
// Browsers: a model folder under a URL downloaded once into the Cache API (progress in bytes).
// The worker engine (the model in a Web Worker or a Node worker thread) is 'convllava/worker'.
export { CachedUrlFolderReader, clearModelCache, type CachedFolderOptions, type DownloadProgress } from './browser/cached-folder.js';
