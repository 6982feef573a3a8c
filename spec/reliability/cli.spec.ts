/**
 * The CLI as a hostile or careless user runs it (issue #16): everything checkable from the
 * arguments, the configs, the image and the prompt fails before any weight loads; a closed pipe
 * ends quietly; negative option values parse; `--out` to a directory and a chat whose turn fails
 * get messages and a non-zero exit.
 */
import { expect } from 'chai';
import { mkdtemp, rm } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCli, type CliRun } from '../helpers.js';

const TINY = 'spec/fixtures/convllava-tiny';
const MODEL = `${TINY}/model`;
const IMAGE = `${TINY}/case0.png`;
const golden = JSON.parse(readFileSync(new URL(`../../${TINY}/golden.json`, import.meta.url), 'utf8'));

const cli = runCli;

/** Fails with `pattern` on stderr, exit 1, one line, and no weight was loaded (no progress line). */
function refusedBeforeLoad(r: CliRun, pattern: RegExp): void {
  expect(r.code, r.stderr).to.equal(1);
  expect(r.stderr).to.match(pattern);
  expect(r.stderr, 'weights were loaded first').not.to.match(/loading/);
  expect(r.stderr).not.to.match(/\n\s+at /); // no stack trace
}

const run = (...extra: string[]) => ['run', '--model', MODEL, '--image', IMAGE, '--prompt', golden.question, '--dtype', 'f32', ...extra];

describe('reliability: the CLI checks before it loads', function () {
  this.timeout(120_000);
  let tmp: string;
  before(async () => {
    tmp = await mkdtemp(join(tmpdir(), 'convllava-cli-'));
  });
  after(async () => {
    await rm(tmp, { recursive: true, force: true });
  });

  it('a missing image, /dev/zero and a FIFO-free directory are refused before the weights load', async () => {
    refusedBeforeLoad(await cli(['run', '--model', MODEL, '--image', join(tmp, 'nope.png'), '--prompt', 'hi']), /cannot read image: .*no such file/i);
    refusedBeforeLoad(await cli(['run', '--model', MODEL, '--image', '/dev/zero', '--prompt', 'hi']), /'\/dev\/zero' is a character device, not a regular file/);
    refusedBeforeLoad(await cli(['run', '--model', MODEL, '--image', tmp, '--prompt', 'hi']), /is a directory, not a regular file/);
  });

  it('negative option values parse and meet their range check (not "argument is ambiguous")', async () => {
    const r = await cli(run('--temperature', '-1'));
    refusedBeforeLoad(r, /temperature must be ≥ 0, got -1/);
    expect(r.stderr).not.to.match(/ambiguous/);
    refusedBeforeLoad(await cli(run('--seed', '-5')), /seed must be an integer in 0 … 4294967295/);
    refusedBeforeLoad(await cli(run('--max-new-tokens', '-3')), /maxNewTokens must be an integer ≥ 1, got -3/);
  });

  it('an over-long request and a typed "<image>" are refused before the weights load', async () => {
    refusedBeforeLoad(await cli(run('--max-new-tokens', '5000')), /prompt too long: 0 cached \+ 49 text tokens \+ 16 visual tokens \+ 5000 new tokens/);
    refusedBeforeLoad(
      await cli(['run', '--model', MODEL, '--image', IMAGE, '--prompt', 'What is <image>?']),
      /the question contains '<image>'/,
    );
  });

  it('run --json | head -c1: the closed pipe ends the run quietly (no EPIPE stack)', async () => {
    const r = await cli(run('--max-new-tokens', '4', '--json'), { closeStdoutAfterFirstByte: true });
    expect(r.stderr).not.to.match(/EPIPE|Error|\n\s+at /);
    expect(r.code).to.equal(0);
  });

  it('encode-image --out DIRECTORY gets a message (not a raw EISDIR), before the weights load', async () => {
    const r = await cli(['encode-image', '--model', MODEL, '--image', IMAGE, '--out', tmp]);
    refusedBeforeLoad(r, /--out .* is a directory; give the path of the \.safetensors file to write/);
    expect(r.stderr).not.to.match(/EISDIR/);
    const r2 = await cli(['encode-image', '--model', MODEL, '--image', IMAGE, '--out', join(tmp, 'no', 'such', 'x.safetensors')]);
    refusedBeforeLoad(r2, /the folder .*no\/such does not exist/);
  });

  it('chat: a bad image is reported once, before loading, and cleared; the chat goes on and exits 1', async () => {
    const bad = await cli(['chat', '--model', MODEL, '--image', '/dev/zero', '--dtype', 'f32', '--max-new-tokens', '2'], { stdin: 'one\ntwo\n' });
    expect(bad.stderr.match(/cannot read image/g), bad.stderr).to.have.length(1); // it used to repeat on every turn
    expect(bad.stderr.indexOf('cannot read image')).to.be.lessThan(bad.stderr.indexOf('loading'));
    expect(bad.stderr).to.match(/the image is cleared; the chat goes on without it/);
    expect(bad.stdout.match(/ASSISTANT: \S/g)).to.have.length(2); // both turns answered, text-only
    expect(bad.code).to.equal(1); // it used to exit 0

    // Turn 1 is refused (too long for a 160-position cache); turn 2 still runs; the exit code says a turn failed.
    const r = await cli(['chat', '--model', MODEL, '--image', IMAGE, '--dtype', 'f32', '--max-context', '160', '--max-new-tokens', '2'], {
      stdin: `${'very '.repeat(100)}long\n${golden.question}\n`,
    });
    expect(r.stderr).to.match(/convllava chat: prompt too long/);
    expect(r.stdout.match(/ASSISTANT:/g)).to.have.length(2);
    expect(r.code).to.equal(1);
  });
});
