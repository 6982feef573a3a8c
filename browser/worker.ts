/**
 * The Web Worker entry of the worker engine: `new Worker(new URL('./worker.js', import.meta.url),
 * { type: 'module' })` (what WorkerEngine.create() does by default). The model lives here.
 */
import { serveEngine, type EnginePort } from './engine-host.js';

serveEngine(self as unknown as EnginePort);
