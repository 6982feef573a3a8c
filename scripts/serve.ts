/**
 * A tiny static file server for the browser smoke test (scripts/browser-smoke.sh): serves a folder
 * (default: the repository) on 127.0.0.1 with HTTP Range support (206 Partial Content), the way a
 * CDN or `python -m http.server`'s betters serve model weights, so the browser reads safetensors
 * tensors by byte range instead of downloading whole files.
 *
 *   tsx scripts/serve.ts [--root DIR] [--port N] [--no-range]
 *
 * It also accepts `POST /__report` (a text body): the page posts its result there and the server
 * prints it to stdout as `REPORT <body>`, so a headless browser needs no remote-debugging channel.
 * `--no-range` ignores Range headers (always 200 with the whole file), to exercise the client's
 * fallback. Prints `LISTENING http://127.0.0.1:PORT/` once it accepts connections.
 */
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { extname, join, resolve, sep } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.json': 'application/json',
  '.wgsl': 'text/plain; charset=utf-8',
  '.png': 'image/png',
  '.jpg': 'image/jpeg',
  '.wasm': 'application/wasm',
  '.map': 'application/json',
  '.css': 'text/css; charset=utf-8',
};

export interface ServeOptions {
  root: string;
  port?: number;
  /** Honour Range requests (default true). */
  ranges?: boolean;
  /** Called with the body of each POST /__report. */
  onReport?: (text: string) => void;
}

/** Starts the server; resolves with its base URL and a close function. */
export async function serve(options: ServeOptions): Promise<{ url: string; close: () => Promise<void> }> {
  const root = resolve(options.root);
  const ranges = options.ranges ?? true;
  const server = createServer((req, res) => {
    handle(req, res, root, ranges, options.onReport).catch((e) => {
      if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain' });
      res.end(`internal error: ${(e as Error).message}`);
    });
  });
  await new Promise<void>((ok, fail) => {
    server.once('error', fail);
    server.listen(options.port ?? 0, '127.0.0.1', ok);
  });
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : options.port;
  return {
    url: `http://127.0.0.1:${port}/`,
    close: () => new Promise((ok) => server.close(() => ok())),
  };
}

async function handle(
  req: IncomingMessage,
  res: ServerResponse,
  root: string,
  ranges: boolean,
  onReport?: (text: string) => void,
): Promise<void> {
  const url = new URL(req.url ?? '/', 'http://localhost');
  if (req.method === 'POST' && url.pathname === '/__report') {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    onReport?.(Buffer.concat(chunks).toString('utf8'));
    res.writeHead(204).end();
    return;
  }
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.writeHead(405, { allow: 'GET, HEAD' }).end();
    return;
  }
  // Stay inside the root: the decoded path, resolved, must start with it.
  const path = resolve(root, '.' + decodeURIComponent(url.pathname));
  if (path !== root && !path.startsWith(root + sep)) {
    res.writeHead(403).end();
    return;
  }
  let file = path;
  let st = await stat(file).catch(() => null);
  if (st?.isDirectory()) {
    file = join(path, 'index.html');
    st = await stat(file).catch(() => null);
  }
  if (!st?.isFile()) {
    res.writeHead(404, { 'content-type': 'text/plain' }).end(`not found: ${url.pathname}`);
    return;
  }
  const headers: Record<string, string | number> = {
    'content-type': TYPES[extname(file)] ?? 'application/octet-stream',
    'cache-control': 'no-store',
  };
  if (ranges) headers['accept-ranges'] = 'bytes';

  const range = ranges ? req.headers.range : undefined;
  let start = 0;
  let end = st.size - 1;
  let status = 200;
  if (range) {
    // One range only: bytes=a-b, bytes=a-, bytes=-n.
    const m = /^bytes=(\d*)-(\d*)$/.exec(range.trim());
    if (!m || (m[1] === '' && m[2] === '')) {
      res.writeHead(416, { 'content-range': `bytes */${st.size}` }).end();
      return;
    }
    if (m[1] === '') {
      start = Math.max(0, st.size - Number(m[2]));
    } else {
      start = Number(m[1]);
      end = m[2] === '' ? st.size - 1 : Math.min(Number(m[2]), st.size - 1);
    }
    if (start > end || start >= st.size) {
      res.writeHead(416, { 'content-range': `bytes */${st.size}` }).end();
      return;
    }
    status = 206;
    headers['content-range'] = `bytes ${start}-${end}/${st.size}`;
  }
  headers['content-length'] = st.size === 0 ? 0 : end - start + 1;
  res.writeHead(status, headers);
  if (req.method === 'HEAD' || st.size === 0) {
    res.end();
    return;
  }
  createReadStream(file, { start, end }).pipe(res);
}

// CLI
if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const { values } = parseArgs({
    options: {
      root: { type: 'string', default: process.cwd() },
      port: { type: 'string', default: '0' },
      'no-range': { type: 'boolean', default: false },
    },
  });
  const { url } = await serve({
    root: values.root!,
    port: Number(values.port),
    ranges: !values['no-range'],
    onReport: (text) => console.log(`REPORT ${text}`),
  });
  console.log(`LISTENING ${url}`);
}
