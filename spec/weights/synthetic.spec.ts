import { expect } from 'chai';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Checkpoint } from '../../weights/checkpoint.js';
import { expectedLlmTensors, expectedVisionTensors } from '../../weights/names.js';
import { syntheticCheckpoint, writeSyntheticCheckpoint } from '../../synthetic/checkpoint.js';
import { PRESET_NAMES } from '../../synthetic/presets.js';
import { runModelBench } from '../../bench/model.js';
import { expectClose, testGpu } from '../helpers.js';

describe('synthetic checkpoints', () => {
  it('every preset yields the tensor set the loader expects', () => {
    for (const name of PRESET_NAMES) {
      const c = syntheticCheckpoint(name);
      const llm = expectedLlmTensors(c.config).filter((t) => !c.visionOnly || t.part === 'projector');
      const want = [...llm, ...expectedVisionTensors(c.visionConfig)].filter((t) => !t.optional);
      expect(c.llm.names().length + c.vision.names().length, name).to.equal(want.length);
    }
  });

  it('has the real ConvLLaVA-1536 sizes: 576 visual tokens, ~7B LLM, ~670M vision tower', () => {
    const c = syntheticCheckpoint('convllava-1536');
    expect(c.config.mm_vision_resolution).to.equal(1536);
    expect(c.visionConfig.hidden_sizes).to.deep.equal([192, 384, 768, 1536, 3072]);
    expect(c.llm.parameters).to.be.within(6.7e9, 7.1e9);
    const visionOnly = syntheticCheckpoint('convllava-1536-vision');
    expect(visionOnly.llm.names().every((n) => n.startsWith('model.mm_projector.'))).to.equal(true);
    expect(visionOnly.vision.parameters).to.be.within(0.65e9, 0.69e9); // ConvNeXt-L + stage 5: ~670 M
  });

  it('GPU-generated weights equal the CPU-generated ones', async () => {
    const gpu = await testGpu();
    const c = syntheticCheckpoint('tiny');
    for (const name of ['model.layers.0.self_attn.q_proj.weight', 'model.norm.weight']) {
      const t = await c.llm.toGpu(gpu, name, 'f32');
      expectClose(await t.read(), await c.llm.readF32(name), { atol: 0, rtol: 0 }, name);
      t.dispose();
    }
  });

  it('writes a folder that Checkpoint.open validates and reads back identically', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'convllava-synth-'));
    try {
      await writeSyntheticCheckpoint('tiny', dir, { shardBytes: 3 << 20 }); // forces 2+ shards
      const ckpt = await Checkpoint.open(dir);
      const synth = syntheticCheckpoint('tiny');
      expect(ckpt.warnings).to.deep.equal([]);
      const name = 'model.layers.1.mlp.down_proj.weight';
      const fromDisk = await ckpt.llm.readF32(name);
      const generated = await synth.llm.readF32(name);
      expectClose(fromDisk, generated, { atol: 1e-3, rtol: 1e-3 }, name); // f16 on disk
      await ckpt.close();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('runModelBench (bench/model.ts)', () => {
  it('refuses a resolution off the tower stride before loading, and holds no GPU memory after a failure', async () => {
    const gpu = await testGpu();
    await gpu.sync();
    const live = gpu.pool.liveBytes;
    const options = { preset: 'tiny', resolutions: [100], nPrompt: 0, nGen: 0, runs: 1, dtype: 'f32' as const };
    const error = await runModelBench(gpu, options).catch((e: Error) => e);
    expect((error as Error).message).to.match(/resolution 100 is not a multiple of the tower's stride 64/);
    expect(gpu.pool.liveBytes).to.equal(live);
  });
});
