/**
 * The Node worker-thread entry of the worker engine: `WorkerEngine.createNode()` starts this file in
 * a worker_threads Worker, so a Node app's event loop (an HTTP server, a UI) keeps running while
 * images are decoded and weights converted. The model lives here.
 */
import { parentPort } from 'node:worker_threads';
import { serveEngine } from './engine-host.js';

if (!parentPort) throw new Error('browser/node-worker.js runs as a worker thread (WorkerEngine.createNode())');
const port = parentPort;
serveEngine({
  postMessage: (message, transfer) => port.postMessage(message, transfer as never),
  addEventListener: (_type, listener) => port.on('message', (data) => listener({ data })),
});
