/**
 * `convllava <command> [options]` — each command lives in cli/<command>.ts and exports
 * `run(argv: string[]): Promise<number>` (the exit code). Errors a user can fix are printed as one
 * message without a stack trace (set CONVLLAVA_DEBUG=1 for the stack).
 */
const COMMANDS: Record<string, { file: string; summary: string }> = {
  demo: { file: './demo.js', summary: 'run the whole pipeline on the embedded tiny model and sample image' },
  inspect: { file: './inspect.js', summary: 'list / validate a .safetensors file or a ConvLLaVA model folder' },
  quantize: { file: './quantize.js', summary: 'write a q8 / q4 quantized copy of a model folder (loads with --dtype q8|q4)' },
  'encode-image': { file: './encode-image.js', summary: 'preprocess + vision tower + projector; dump every stage' },
  run: { file: './run.js', summary: 'answer a question about an image (streams the answer)' },
  chat: { file: './chat.js', summary: 'interactive multi-turn chat about an image' },
  serve: { file: './serve.js', summary: 'OpenAI-compatible HTTP server (/v1/chat/completions with images)' },
  bench: { file: './bench.js', summary: 'benchmark image encode, prefill, decode and kernels' },
};

function usage(): string {
  const lines = Object.entries(COMMANDS).map(([name, c]) => `  ${name.padEnd(14)} ${c.summary}`);
  return `usage: convllava <command> [options]\n\ncommands:\n${lines.join('\n')}\n\n'convllava <command> --help' for a command's options.`;
}

/**
 * `convllava run --json | head -c1`: once the reader is gone, a write fails with EPIPE, emitted as an
 * 'error' event that would crash with a stack trace. Exit quietly instead, as a Unix filter does.
 */
let pipeGuard = false;
function exitQuietlyOnClosedPipe(): void {
  if (pipeGuard) return;
  pipeGuard = true;
  for (const stream of [process.stdout, process.stderr]) {
    stream.on('error', (e: NodeJS.ErrnoException) => {
      if (e.code === 'EPIPE') process.exit(process.exitCode ?? 0);
      throw e;
    });
  }
}

export async function main(argv: string[]): Promise<number> {
  exitQuietlyOnClosedPipe();
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h') {
    console.log(usage());
    return name ? 0 : 1;
  }
  const command = COMMANDS[name];
  if (!command) {
    console.error(`convllava: unknown command '${name}'\n\n${usage()}`);
    return 2;
  }
  try {
    const mod = (await import(command.file)) as { run(argv: string[]): Promise<number> };
    return await mod.run(rest);
  } catch (e) {
    const err = e as Error;
    console.error(`convllava ${name}: ${process.env.CONVLLAVA_DEBUG ? err.stack : err.message}`);
    return 1;
  }
}

// `tsx cli/main.ts …` (npm scripts) runs this file directly.
if (import.meta.url === `file://${process.argv[1]}`) {
  main(process.argv.slice(2)).then((code) => {
    process.exitCode = code;
  });
}
