/**
 * Config values are checked by meaning, not only by type (issue #16): an epsilon, rope_theta or a
 * scale factor ≤ 0, a zero std, or a crop that disagrees with the resolution used to be accepted
 * and gave NaN activations or a wrong visual-token count.
 */
import { expect } from 'chai';
import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Checkpoint } from '../../weights/checkpoint.js';
import { WeightsError } from '../../weights/errors.js';

const FIXTURE = 'spec/fixtures/convllava-tiny/model';
let tmp: string;
let n = 0;
before(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'convllava-configs-'));
});
after(async () => {
  await rm(tmp, { recursive: true, force: true });
});

async function withEdit(file: string, edit: (json: any) => void): Promise<string> {
  const dir = join(tmp, `m${n++}`);
  await cp(FIXTURE, dir, { recursive: true });
  const json = JSON.parse(await readFile(join(dir, file), 'utf8'));
  edit(json);
  await writeFile(join(dir, file), JSON.stringify(json));
  return dir;
}

async function refused(dir: string, pattern: RegExp): Promise<void> {
  let caught: unknown;
  try {
    await (await Checkpoint.open(dir)).close();
  } catch (e) {
    caught = e;
  }
  expect(caught, `expected a refusal matching ${pattern}`).to.be.instanceOf(WeightsError);
  expect((caught as Error).message).to.match(pattern);
}

describe('reliability: config values validated by meaning', () => {
  for (const [key, value] of [['rms_norm_eps', -1], ['rms_norm_eps', 0], ['rope_theta', 0], ['rope_theta', -10000]] as const) {
    it(`config.json ${key} ${value} is refused`, async () => {
      await refused(await withEdit('config.json', (j) => (j[key] = value)), new RegExp(`config\\.json: '${key}' must be a finite number > 0, got ${value}`));
    });
  }

  it('vision_tower/config.json layer_norm_eps 0 is refused', async () => {
    await refused(await withEdit('vision_tower/config.json', (j) => (j.layer_norm_eps = 0)), /config\.json: 'layer_norm_eps' must be a finite number > 0, got 0/);
  });

  it('image_std [0, 0, 0] and rescale_factor 0 are refused', async () => {
    await refused(
      await withEdit('vision_tower/preprocessor_config.json', (j) => (j.image_std = [0, 0, 0])),
      /preprocessor_config\.json: 'image_std' must be an array of 3 non-zero numbers, got \[0,0,0\]/,
    );
    await refused(
      await withEdit('vision_tower/preprocessor_config.json', (j) => (j.rescale_factor = 0)),
      /'rescale_factor' must be a finite number > 0/,
    );
  });

  it('a crop larger than the resolution (64 rows spliced while 16 were counted) is refused with both counts', async () => {
    await refused(
      await withEdit('vision_tower/preprocessor_config.json', (j) => (j.crop_size = { height: 512, width: 512 })),
      /crop_size 512 ≠ config\.json mm_vision_resolution 256 \(the image would be encoded at 512² into 64 visual tokens, not 16\)/,
    );
  });
});
