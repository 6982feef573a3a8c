/**
 * Hostile images (issue #16): non-regular files are refused by type, pixel bombs by their header
 * before any decoding, and the largest accepted image decodes in bounded memory. Every image is
 * generated here (spec/reliability/crafted.ts).
 */
import { expect } from 'chai';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeImage } from '../../convnext/decode.js';
import { loadImage } from '../../convnext/preprocess.js';
import { makeJpeg, makePng } from './crafted.js';
import { rejection } from './helpers.js';

let tmp: string;
before(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'convllava-images-'));
});
after(async () => {
  await rm(tmp, { recursive: true, force: true });
});


describe('reliability: image files', () => {
  it('/dev/zero is refused by type at once (it used to be read without end)', async () => {
    const err = await rejection(loadImage('/dev/zero'), 2000);
    expect(err.message).to.match(/cannot read image: '\/dev\/zero' is a character device, not a regular file/);
  });

  it('a FIFO is refused at once (it used to block forever), and a directory is named as one', async () => {
    const fifo = join(tmp, 'image.png');
    execFileSync('mkfifo', [fifo]);
    expect((await rejection(loadImage(fifo), 2000)).message).to.match(/image\.png' is a FIFO \(named pipe\), not a regular file/);
    await mkdir(join(tmp, 'dir.png'));
    expect((await rejection(loadImage(join(tmp, 'dir.png')))).message).to.match(/dir\.png' is a directory, not a regular file/);
  });

  it('a missing file says so', async () => {
    expect((await rejection(loadImage(join(tmp, 'nope.png')))).message).to.match(/cannot read image: .*no such file/i);
  });
});

describe('reliability: pixel bombs are refused from the header', () => {
  it('a 782 KB 16384² PNG (3.4 GiB to decode before) is refused before inflating', async () => {
    const bomb = makePng(16384, 16384, 8, 2);
    expect(bomb.length).to.be.lessThan(1 << 20);
    const t0 = performance.now();
    const err = await rejection(decodeImage(bomb, 'bomb.png'));
    expect(err.message).to.match(/bomb\.png: 16384×16384 \(268435456 pixels\) is too large \(limits: 65536 per side, 67108864 pixels\)/);
    expect(performance.now() - t0).to.be.lessThan(500);
  });

  it('a 16-bit PNG has half the pixel budget (it decodes to twice the bytes)', async () => {
    const err = await rejection(decodeImage(makePng(8192, 8192, 16, 6), 'deep.png'));
    expect(err.message).to.match(/deep\.png: 8192×8192 .* too large \(limits for 16-bit PNG: 65536 per side, 33554432 pixels\)/);
  });

  it('a JPEG header claiming 16000² is refused before anything is allocated', async () => {
    const err = await rejection(decodeImage(makeJpeg(16000, 16000, { scan: new Uint8Array(16) }), 'huge.jpg'));
    expect(err.message).to.match(/huge\.jpg: 16000×16000 \(256000000 pixels\) is too large/);
  });

  it('corrupt JPEG data is called corrupt (not blamed on CMYK or arithmetic coding); CMYK is named', async () => {
    const corrupt = await rejection(decodeImage(makeJpeg(64, 64, { scan: new Uint8Array(300).fill(0xaa) }), 'bad.jpg'));
    expect(corrupt.message).to.match(/bad\.jpg: cannot decode JPEG: corrupt image data \(64×64, 3 components/);
    expect(corrupt.message).not.to.match(/CMYK|arithmetic/);
    const cmyk = await rejection(decodeImage(makeJpeg(64, 64, { components: 4 }), 'cmyk.jpg'));
    expect(cmyk.message).to.match(/cmyk\.jpg: JPEG with 4 colour components \(CMYK\/YCCK\) is not supported/);
  });

  it('the generated images are real: a small PNG and JPEG decode to the expected pixels', async () => {
    const png = await decodeImage(makePng(7, 3, 16, 0));
    expect([png.width, png.height, png.data.length]).to.deep.equal([7, 3, 63]);
    const jpeg = await decodeImage(makeJpeg(17, 9));
    expect([jpeg.width, jpeg.height]).to.deep.equal([17, 9]);
    expect([...jpeg.data.subarray(0, 3)]).to.deep.equal([128, 128, 128]);
  });

  it('the largest accepted image (8192² RGBA PNG) decodes and preprocesses under 1.5 GB peak RSS', async function () {
    this.timeout(120_000);
    const file = join(tmp, 'largest.png');
    await writeFile(file, makePng(8192, 8192, 8, 6));
    // A child process, so the measurement is this decode's alone.
    const script = `
      import { loadImage, preprocess } from './convnext/preprocess.ts';
      let peak = 0;
      const tick = setInterval(() => { peak = Math.max(peak, process.memoryUsage().rss); }, 2);
      const img = await loadImage(${JSON.stringify(file)});
      const { size } = preprocess(img, { size: { shortest_edge: 256 }, crop_size: { height: 256, width: 256 },
        image_mean: [0.48, 0.46, 0.41], image_std: [0.27, 0.26, 0.28], rescale_factor: 1 / 255 });
      clearInterval(tick);
      console.log(JSON.stringify({ width: img.width, size, peak: Math.max(peak, process.memoryUsage().rss) }));`;
    const run = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { encoding: 'utf8' });
    expect(run.status, run.stderr).to.equal(0);
    const { width, size, peak } = JSON.parse(run.stdout.trim().split('\n').pop()!);
    expect([width, size]).to.deep.equal([8192, 256]);
    expect(peak / 2 ** 30, `peak RSS ${(peak / 2 ** 30).toFixed(2)} GiB`).to.be.lessThan(1.5 / 1.0737);
  });
});
