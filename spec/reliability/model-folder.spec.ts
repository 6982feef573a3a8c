/**
 * A model folder from a stranger (issue #16): nothing outside the folder is read, only regular files
 * are opened, JSON and headers are bounded, and untrusted values never reach a message whole.
 * Every input is crafted here: tmp copies of the tiny fixture, symlinks, FIFOs, devices.
 */
import { expect } from 'chai';
import { execFileSync } from 'node:child_process';
import { cp, mkdir, readFile, rename, rm, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Checkpoint, TensorSet } from '../../weights/checkpoint.js';
import { WeightsError } from '../../weights/errors.js';
import { SafetensorsFile } from '../../weights/safetensors.js';
import { rejection } from './helpers.js';
import { scratchFolder } from '../helpers.js';

const FIXTURE = 'spec/fixtures/convllava-tiny/model';
const scratch = scratchFolder('convllava-hostile-');

/** A secret outside every model folder: its bytes must never be read into a message. */
async function secretFile(): Promise<string> {
  const path = scratch.fresh('secret', '.txt');
  await writeFile(path, 'TOPSECRET-api-key-0123456789abcdef\n');
  return path;
}


async function refusedFolder(dir: string, pattern: RegExp): Promise<WeightsError> {
  const err = await rejection(Checkpoint.open(dir).then((c) => c.close()));
  expect(err, err.stack).to.be.instanceOf(WeightsError);
  expect(err.message).to.match(pattern);
  expect(err.message).not.to.include('TOPSECRET');
  return err as WeightsError;
}

function mkfifo(path: string): void {
  execFileSync('mkfifo', [path]);
}

describe('reliability: a model folder cannot reach outside itself', () => {
  it('a shard that is a symlink to a file outside the folder is refused, naming the entry and its target', async () => {
    const dir = await scratch.copyFixture();
    const secret = await secretFile();
    const shard = join(dir, 'model-00002-of-00002.safetensors');
    await rm(shard);
    await symlink(secret, shard);
    const err = await refusedFolder(dir, /model-00002-of-00002\.safetensors: resolves to .*secret-.*\.txt, outside the model folder/);
    expect(err.message).not.to.match(/header length \d/);
  });

  it('a config.json symlinked outside is refused before it is parsed (its content is never quoted)', async () => {
    const dir = await scratch.copyFixture();
    const secret = await secretFile();
    await rm(join(dir, 'config.json'));
    await symlink(secret, join(dir, 'config.json'));
    await refusedFolder(dir, /config\.json: resolves to .*, outside the model folder/);
  });

  it('a relative symlink climbing out (../../), and a vision_tower/ directory symlinked elsewhere', async () => {
    const dir = await scratch.copyFixture();
    const secret = await secretFile();
    await rm(join(dir, 'vision_tower', 'preprocessor_config.json'));
    await symlink(join('..', '..', secret.split('/').pop()!), join(dir, 'vision_tower', 'preprocessor_config.json'));
    await refusedFolder(dir, /preprocessor_config\.json: resolves to .*outside the model folder/);

    const dir2 = await scratch.copyFixture();
    const elsewhere = scratch.fresh('tower');
    await rename(join(dir2, 'vision_tower'), elsewhere);
    await symlink(elsewhere, join(dir2, 'vision_tower'));
    await refusedFolder(dir2, /vision_tower.*config\.json: resolves to .*outside the model folder/);
  });

  it('symlinks that stay inside the folder still work; a dangling one and a loop are named', async () => {
    const dir = await scratch.copyFixture();
    await rename(join(dir, 'config.json'), join(dir, 'real-config.json'));
    await symlink('real-config.json', join(dir, 'config.json'));
    (await Checkpoint.open(dir)).close();

    const dangling = await scratch.copyFixture();
    await rm(join(dangling, 'config.json'));
    await symlink('nowhere.json', join(dangling, 'config.json'));
    await refusedFolder(dangling, /config\.json: a symbolic link to nowhere\.json, which does not exist/);

    const loop = await scratch.copyFixture();
    await rm(join(loop, 'config.json'));
    await symlink('config.json', join(loop, 'config.json'));
    await refusedFolder(loop, /config\.json: a loop of symbolic links/);
  });

  it('a Hugging Face cache snapshot (files are symlinks into the repo\'s blobs/) loads', async () => {
    // models--org--name/{blobs/<hash>, snapshots/<rev>/<file> → ../../blobs/<hash>}
    const repo = join(scratch.fresh('hub'), 'models--org--ConvLLaVA-tiny');
    const snapshot = join(repo, 'snapshots', 'abc123');
    await mkdir(join(repo, 'blobs'), { recursive: true });
    await mkdir(join(snapshot, 'vision_tower'), { recursive: true });
    const files = ['config.json', 'generation_config.json', 'model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors',
      'model.safetensors.index.json', 'vision_tower/config.json', 'vision_tower/model.safetensors', 'vision_tower/preprocessor_config.json'];
    for (const [i, f] of files.entries()) {
      await cp(join(FIXTURE, f), join(repo, 'blobs', `blob${i}`));
      await symlink(join(f.includes('/') ? '../../../blobs' : '../../blobs', `blob${i}`), join(snapshot, f));
    }
    const ckpt = await Checkpoint.open(snapshot);
    expect(ckpt.llm.names().length).to.be.greaterThan(0);
    expect(ckpt.warnings).to.deep.equal([]);
    await ckpt.close();

    // …but a snapshot file pointing into *another* repo's blobs is still outside.
    const other = join(repo, '..', 'models--evil--repo', 'blobs');
    await mkdir(other, { recursive: true });
    await writeFile(join(other, 'x'), '{}');
    await rm(join(snapshot, 'config.json'));
    await symlink(join('../../../models--evil--repo/blobs/x'), join(snapshot, 'config.json'));
    await refusedFolder(snapshot, /config\.json: resolves to .*models--evil--repo.*outside the model folder/);
  });
});

describe('reliability: only regular files are read, with bounded sizes', () => {
  it('a FIFO as config.json, as a shard, and as `inspect`\'s file is refused at once (no hang)', async () => {
    const dir = await scratch.copyFixture();
    await rm(join(dir, 'config.json'));
    mkfifo(join(dir, 'config.json'));
    await refusedFolder(dir, /config\.json: is a FIFO \(named pipe\), not a regular file/);

    const dir2 = await scratch.copyFixture();
    await rm(join(dir2, 'model-00001-of-00002.safetensors'));
    mkfifo(join(dir2, 'model-00001-of-00002.safetensors'));
    await refusedFolder(dir2, /model-00001-of-00002\.safetensors: is a FIFO/);

    const fifo = scratch.fresh('fifo');
    mkfifo(fifo);
    const err = await rejection(SafetensorsFile.open(fifo));
    expect(err.message).to.match(/is a FIFO \(named pipe\), not a regular file/);
    expect((await rejection(TensorSet.openFile(fifo))).message).to.match(/FIFO/);
  });

  it('a shard that is a directory, or a device, is named as such (not "does not exist")', async () => {
    const dir = await scratch.copyFixture();
    await rm(join(dir, 'model-00002-of-00002.safetensors'));
    await mkdir(join(dir, 'model-00002-of-00002.safetensors'));
    await refusedFolder(dir, /model-00002-of-00002\.safetensors: is a directory, not a regular file/);
    // A device opened directly is refused by type (a symlink to /dev/zero would resolve outside the folder).
    expect((await rejection(SafetensorsFile.open('/dev/zero'))).message).to.match(/is a character device, not a regular file/);
  });

  it('a device node inside the folder, as a shard, is refused by type (needs root to create; skipped otherwise)', async function () {
    const dir = await scratch.copyFixture();
    const shard = join(dir, 'model-00001-of-00002.safetensors');
    await rm(shard);
    try {
      execFileSync('mknod', [shard, 'c', '1', '5'], { stdio: 'ignore' }); // the /dev/zero device
    } catch {
      this.skip();
    }
    await refusedFolder(dir, /model-00001-of-00002\.safetensors: is a character device, not a regular file/);
  });

  it('a config over the JSON size cap is refused by its size (not reported as "missing")', async () => {
    const dir = await scratch.copyFixture();
    const config = JSON.parse(await readFile(join(dir, 'config.json'), 'utf8'));
    config.padding = 'x'.repeat(17 << 20);
    await writeFile(join(dir, 'config.json'), JSON.stringify(config));
    await refusedFolder(dir, /config\.json is \d+ bytes, over the 16777216-byte limit for a JSON file/);
  });

  it('a deeply nested header or config is refused by depth (not "Maximum call stack size exceeded")', async () => {
    const deep = '['.repeat(200_000) + ']'.repeat(200_000);
    const dir = await scratch.copyFixture();
    await writeFile(join(dir, 'config.json'), `{"x": ${deep}}`);
    await refusedFolder(dir, /config\.json: JSON nested deeper than 64 levels/);

    const header = Buffer.from(`{"t": ${deep}}`);
    const file = scratch.fresh('deep', '.safetensors');
    const prefix = Buffer.alloc(8);
    prefix.writeBigUInt64LE(BigInt(header.length));
    await writeFile(file, Buffer.concat([prefix, header]));
    const err = await rejection(SafetensorsFile.open(file));
    expect(err.message).to.match(/the header is JSON nested deeper than 64 levels/);
  });
});

describe('reliability: untrusted values in messages', () => {
  it('a non-safetensors file: its first 8 bytes are never printed as a header length', async () => {
    const secret = await secretFile();
    const err = await rejection(SafetensorsFile.open(secret));
    expect(err.message).to.match(/the 8-byte header length exceeds the 100000000-byte limit/);
    const asNumber = Buffer.from('TOPSECRET-api-key-0123456789abcdef').readBigUInt64LE(0).toString();
    expect(err.message).not.to.include(asNumber);
    // A small length prefix that runs past the end: not printed either.
    const file = scratch.fresh('short', '.safetensors');
    await writeFile(file, Buffer.from([0x39, 0x30, 0, 0, 0, 0, 0, 0, 0x7b]));
    const short = await rejection(SafetensorsFile.open(file));
    expect(short.message).to.match(/header length runs past the end of the 9-byte file/);
    expect(short.message).not.to.include('12345');
  });

  it('a 50 MB header value and a 1 MB tensor name are cut to 120 characters in the message', async () => {
    const big = 'A'.repeat(50 << 20);
    const header = Buffer.from(JSON.stringify({ t: { dtype: big, shape: [1], data_offsets: [0, 4] } }));
    const prefix = Buffer.alloc(8);
    prefix.writeBigUInt64LE(BigInt(header.length));
    const file = scratch.fresh('bigvalue', '.safetensors');
    await writeFile(file, Buffer.concat([prefix, header, Buffer.alloc(4)]));
    const err = await rejection(SafetensorsFile.open(file), 20000);
    expect(err.message).to.match(/unknown dtype "A+… \(52428802 characters\)/);
    expect(err.message.length).to.be.lessThan(500);

    const name = 'n'.repeat(1 << 20);
    const header2 = Buffer.from(JSON.stringify({ [name]: { dtype: 'F32', shape: [2], data_offsets: [0, 4] } }));
    prefix.writeBigUInt64LE(BigInt(header2.length));
    await writeFile(file, Buffer.concat([prefix, header2, Buffer.alloc(4)]));
    const err2 = await rejection(SafetensorsFile.open(file));
    expect(err2.message).to.match(/tensor 'n+…' \(1048576 characters\): shape \[2\] of F32 needs 8 bytes/);
    expect(err2.message.length).to.be.lessThan(500);
  });

  it('invalid JSON in config.json: the parser\'s quote of the content is cut short', async () => {
    const dir = await scratch.copyFixture();
    await writeFile(join(dir, 'config.json'), `{"secret": "${'s'.repeat(10_000)}" oops}`);
    const err = await refusedFolder(dir, /config\.json: not valid JSON/);
    expect(err.message.length).to.be.lessThan(400);
  });

  it('"./shard" and "sub/../shard" in an index are one shard, not "a tensor in two shards"', async () => {
    const dir = await scratch.copyFixture();
    const indexPath = join(dir, 'model.safetensors.index.json');
    const index = JSON.parse(await readFile(indexPath, 'utf8'));
    // Both spellings within each shard (a per-shard counter: the fixture's index interleaves its shards).
    const seen = new Map<string, number>();
    for (const [tensor, shard] of Object.entries(index.weight_map as Record<string, string>)) {
      const k = seen.get(shard) ?? 0;
      seen.set(shard, k + 1);
      index.weight_map[tensor] = k % 2 ? `./${shard}` : `sub/../${shard}`;
    }
    await writeFile(indexPath, JSON.stringify(index));
    const ckpt = await Checkpoint.open(dir);
    expect(ckpt.llm.files.length).to.equal(2);
    await ckpt.close();
  });
});
