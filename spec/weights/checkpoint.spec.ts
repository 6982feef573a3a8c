/**
 * Model folders: the tiny fixture loads and matches the name/shape table exactly; index problems,
 * missing tensors, wrong shapes and bad configs are errors naming the file and tensor; extras are
 * warnings; weights stream to the GPU in small chunks with exact conversions.
 */
import { expect } from 'chai';
import { readFile, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { bf16BitsToF32, f16BitsToF32, f32ToF16Bits } from '../../runtime/half.js';
import { Checkpoint, TensorSet } from '../../weights/checkpoint.js';
import { f32BitsToF16Bits } from '../../weights/convert.js';
import { parseConvNextConfig, parseLlavaConfig, visualTokens } from '../../weights/config.js';
import { CheckpointError, WeightsError } from '../../weights/errors.js';
import { expectedLlmTensors, expectedVisionTensors, llmNames, visionNames } from '../../weights/names.js';
import { SafetensorsFile, writeSafetensors, type TensorToWrite } from '../../weights/safetensors.js';
import { testGpu, scratchFolder } from '../helpers.js';

const FIXTURE = 'spec/fixtures/convllava-tiny/model';
const scratch = scratchFolder('convllava-ckpt-');

/** Rewrites a safetensors file after editing its tensor list (data read into memory: tiny files). */
async function rewrite(path: string, edit: (list: TensorToWrite[]) => TensorToWrite[]): Promise<void> {
  const f = await SafetensorsFile.open(path);
  const list: TensorToWrite[] = [];
  for (const t of f.tensors.values()) list.push({ name: t.name, dtype: t.dtype, shape: t.shape, data: await f.readBytes(t.name) });
  await f.close();
  await writeSafetensors(path, edit(list));
}

async function editJson(path: string, edit: (json: any) => void): Promise<void> {
  const json = JSON.parse(await readFile(path, 'utf8'));
  edit(json);
  await writeFile(path, JSON.stringify(json, null, 2));
}

/** Checkpoint.open(dir) must fail with a CheckpointError/SafetensorsError matching `pattern`. */
async function expectRefused(dir: string, pattern: RegExp, tensor?: string): Promise<WeightsError> {
  let caught: unknown;
  try {
    (await Checkpoint.open(dir)).close();
  } catch (e) {
    caught = e;
  }
  expect(caught, `${dir} should be refused (${pattern})`).to.be.instanceOf(WeightsError);
  const err = caught as WeightsError;
  expect(err.message).to.match(pattern);
  if (tensor !== undefined) {
    expect(err.tensor).to.equal(tensor);
    expect(err.message).to.contain(tensor);
  }
  return err;
}

const SHARD1 = 'model-00001-of-00002.safetensors';
const SHARD2 = 'model-00002-of-00002.safetensors';

describe('Checkpoint: the tiny ConvLLaVA fixture', () => {
  let ckpt: Checkpoint;
  before(async () => {
    ckpt = await Checkpoint.open(FIXTURE);
  });
  after(async () => {
    await ckpt.close();
  });

  it('reads the three configs into typed objects', () => {
    expect(ckpt.config.hidden_size).to.equal(64);
    expect(ckpt.config.num_key_value_heads).to.equal(4);
    expect(ckpt.config.head_dim).to.equal(16);
    expect(ckpt.config.mm_projector_type).to.equal('mlp2x_gelu');
    expect(ckpt.visionConfig.hidden_sizes).to.deep.equal([16, 32, 48, 64, 96]);
    expect(ckpt.visionConfig.depths).to.deep.equal([1, 1, 2, 1, 2]);
    expect(ckpt.preprocessorConfig.image_mean[0]).to.be.closeTo(0.48145466, 1e-9);
    expect(ckpt.preprocessorConfig.size.shortest_edge).to.equal(256);
    expect(ckpt.generationConfig?.max_length).to.equal(4096);
    expect(visualTokens(ckpt.config, ckpt.visionConfig)).to.equal(16);
  });

  it('holds exactly the tensors of the name table, with no warnings', () => {
    expect(ckpt.warnings).to.deep.equal([]);
    expect(ckpt.llm.names().sort()).to.deep.equal(expectedLlmTensors(ckpt.config).map((t) => t.name).sort());
    expect(ckpt.vision.names().sort()).to.deep.equal(expectedVisionTensors(ckpt.visionConfig).map((t) => t.name).sort());
    expect(ckpt.llm.shape(llmNames.layer(1).down)).to.deep.equal([64, 172]);
    expect(ckpt.vision.shape(visionNames.block(4, 1).dwconvWeight)).to.deep.equal([96, 1, 7, 7]);
    expect(ckpt.llm.dtype('lm_head.weight')).to.equal('F16');
    // sharded: tensors come from both files
    expect(ckpt.llm.info(llmNames.embedTokens).file).to.match(/00002-of/);
    expect(ckpt.llm.info(llmNames.lmHead).file).to.match(/00001-of/);
  });

  it('readF32 decodes the stored f16 exactly', async () => {
    const name = 'model.mm_projector.2.bias';
    const bits = new Uint16Array((await ckpt.llm.readBytes(name)).slice().buffer);
    const values = await ckpt.llm.readF32(name);
    expect(values.length).to.equal(64);
    expect([...values]).to.deep.equal([...bits].map(f16BitsToF32));
  });

  it('toGpu gives the checkpoint shape and the same values, as f16 and f32', async () => {
    const gpu = await testGpu();
    for (const name of [visionNames.stem.weight, llmNames.layer(0).gate]) {
      const expected = await (name.startsWith('model.') ? ckpt.llm : ckpt.vision).readF32(name);
      const source = name.startsWith('model.') ? ckpt.llm : ckpt.vision;
      for (const dtype of ['f16', 'f32'] as const) {
        const t = await source.toGpu(gpu, name, dtype, { chunkElements: 1000 });
        expect(t.shape).to.deep.equal(source.shape(name));
        expect(t.dtype).to.equal(dtype);
        expect([...(await t.read())]).to.deep.equal([...expected]);
        t.dispose();
      }
    }
  });
});

describe('WeightSource: chunked conversion to the GPU', () => {
  // Odd length, specials (±0, subnormals, inf, NaN, rounding ties, f16 overflow) at chunk edges.
  const specials = [0, -0, 1, -2.5, 65504, 65520, 1e6, -1e-8, 5.960464477539063e-8, 2 ** -25, 3 * 2 ** -26, 1 + 2 ** -11, 1 + 3 * 2 ** -11, Infinity, -Infinity, NaN];
  const values = Float32Array.from({ length: 37 }, (_, i) => (i < specials.length ? specials[i] : Math.sin(i) * 3.7));
  const bf16 = new Uint16Array(values.length);
  const f16 = new Uint16Array(values.length);
  new Float32Array(1);
  const u32 = new Uint32Array(values.buffer);
  for (let i = 0; i < values.length; i++) {
    bf16[i] = u32[i] >>> 16; // truncated: bf16 holds exactly these
    f16[i] = f32ToF16Bits(values[i]);
  }
  let set: TensorSet;
  before(async () => {
    const path = scratch.file('dtypes.safetensors');
    await writeSafetensors(path, [
      { name: 'f32', dtype: 'F32', shape: [37], data: values },
      { name: 'bf16', dtype: 'BF16', shape: [37, 1], data: bf16 },
      { name: 'f16', dtype: 'F16', shape: [1, 37], data: f16 },
      { name: 'i8', dtype: 'I8', shape: [2], data: new Int8Array(2) },
      { name: 'empty', dtype: 'F16', shape: [0, 3], data: new Uint16Array(0) },
    ]);
    set = await TensorSet.openFile(path);
  });
  after(async () => {
    await set.close();
  });

  const asF32 = {
    f32: (i: number) => values[i],
    bf16: (i: number) => bf16BitsToF32(bf16[i]),
    f16: (i: number) => f16BitsToF32(f16[i]),
  };

  it('readF32 is exact for F32, BF16 and F16', async () => {
    for (const name of ['f32', 'bf16', 'f16'] as const) {
      const got = await set.readF32(name);
      expect([...got], name).to.deep.equal(Array.from({ length: 37 }, (_, i) => Math.fround(asF32[name](i))));
    }
  });

  for (const chunk of [2, 6, 36, 1 << 20]) {
    it(`toGpu with ${chunk}-element chunks: f32 exact, f16 rounded to nearest even (F16 bits pass through)`, async () => {
      const gpu = await testGpu();
      for (const name of ['f32', 'bf16', 'f16'] as const) {
        const expectF32 = Array.from({ length: 37 }, (_, i) => Math.fround(asF32[name](i)));
        const t32 = await set.toGpu(gpu, name, 'f32', { chunkElements: chunk });
        expect([...(await t32.read())], `${name} → f32`).to.deep.equal(expectF32);
        const t16 = await set.toGpu(gpu, name, 'f16', { chunkElements: chunk });
        const expectF16 = expectF32.map((v) => f16BitsToF32(f32ToF16Bits(v)));
        expect([...(await t16.read())], `${name} → f16`).to.deep.equal(expectF16);
        t32.dispose();
        t16.dispose();
      }
    });
  }

  it('the integer-bits f32 → f16 conversion agrees with runtime/half.ts for every exponent, ties included', () => {
    const f = new Float32Array(1);
    const u = new Uint32Array(f.buffer);
    let state = 12345;
    const mantissas = [0, 1, 0x1000, 0x1001, 0x0fff, 0x3000, 0x2000, 0x7fe000, 0x7ff000, 0x7fffff, 0x400000];
    for (let k = 0; k < 64; k++) mantissas.push((state = (Math.imul(state, 1103515245) + 12345) >>> 0) & 0x7fffff);
    let checked = 0;
    for (let exp = 0; exp < 256; exp++) {
      for (const sign of [0, 0x80000000]) {
        for (const mant of mantissas) {
          u[0] = (sign | (exp << 23) | mant) >>> 0;
          const want = f32ToF16Bits(f[0]);
          const got = f32BitsToF16Bits(u[0]);
          if (got !== want) throw new Error(`bits 0x${u[0].toString(16)}: got 0x${got.toString(16)}, want 0x${want.toString(16)}`);
          checked++;
        }
      }
    }
    expect(checked).to.equal(256 * 2 * mantissas.length);
  });

  it('refuses integer tensors, names a missing tensor, and handles empty tensors', async () => {
    const gpu = await testGpu();
    let caught: unknown;
    await set.readF32('i8').catch((e) => (caught = e));
    expect(caught).to.be.instanceOf(CheckpointError);
    expect((caught as Error).message).to.match(/'i8' is I8; only F32, F16 and BF16/);
    expect(() => set.shape('nope')).to.throw(CheckpointError, /no tensor 'nope'/);
    const t = await set.toGpu(gpu, 'empty', 'f16');
    expect(t.shape).to.deep.equal([0, 3]);
    t.dispose();
  });
});

describe('Checkpoint: index errors are hard errors naming the index', () => {
  it('a missing shard', async () => {
    const dir = await scratch.copyFixture();
    await unlink(join(dir, SHARD2));
    const err = await expectRefused(dir, new RegExp(`shard '${SHARD2}' is missing`));
    expect(err.file).to.equal(join(dir, 'model.safetensors.index.json'));
  });

  it('a shard path escaping the folder', async () => {
    for (const evil of ['../model-00001-of-00002.safetensors', '/etc/passwd', 'sub/../../x.safetensors']) {
      const dir = await scratch.copyFixture();
      await editJson(join(dir, 'model.safetensors.index.json'), (j) => (j.weight_map['model.norm.weight'] = evil));
      await expectRefused(dir, /leaves the model folder/, 'model.norm.weight');
    }
  });

  it('a tensor listed but absent from every shard', async () => {
    const dir = await scratch.copyFixture();
    await editJson(join(dir, 'model.safetensors.index.json'), (j) => (j.weight_map['model.layers.7.ghost.weight'] = SHARD1));
    await expectRefused(dir, /listed in shard .* but no shard contains it/, 'model.layers.7.ghost.weight');
  });

  it('a tensor listed in the wrong shard', async () => {
    const dir = await scratch.copyFixture();
    await editJson(join(dir, 'model.safetensors.index.json'), (j) => (j.weight_map['model.norm.weight'] = SHARD2));
    await expectRefused(dir, new RegExp(`listed in shard '${SHARD2}' but is in '${SHARD1}'`), 'model.norm.weight');
  });

  it('a tensor in two shards', async () => {
    const dir = await scratch.copyFixture();
    await rewrite(join(dir, SHARD2), (list) => [...list, { name: 'model.norm.weight', dtype: 'F16', shape: [64], data: new Uint16Array(64) }]);
    await expectRefused(dir, /tensor 'model.norm.weight' is in two shards/, 'model.norm.weight');
  });

  it('an index that is not JSON, lacks weight_map, or repeats a tensor', async () => {
    const dir = await scratch.copyFixture();
    const index = join(dir, 'model.safetensors.index.json');
    await writeFile(index, '{"weight_map": ');
    await expectRefused(dir, /index.json: not valid JSON/);
    await writeFile(index, '{"metadata": {}}');
    await expectRefused(dir, /needs a "weight_map" object/);
    await writeFile(index, `{"weight_map": {"lm_head.weight": "${SHARD1}", "lm_head.weight": "${SHARD2}"}}`);
    await expectRefused(dir, /lists 'lm_head.weight' twice/);
  });

  it('a broken shard is reported by its own file', async () => {
    const dir = await scratch.copyFixture();
    const shard = join(dir, SHARD1);
    const bytes = await readFile(shard);
    await writeFile(shard, bytes.subarray(0, bytes.length - 10));
    const err = await expectRefused(dir, /truncated by 10 bytes/);
    expect(err.file).to.equal(shard);
  });
});

describe('Checkpoint: the tensors must be the ones the configs imply', () => {
  it('a missing tensor is named', async () => {
    const dir = await scratch.copyFixture();
    const victim = visionNames.block(4, 1).pwconv2Weight;
    await rewrite(join(dir, 'vision_tower/model.safetensors'), (list) => list.filter((t) => t.name !== victim));
    await expectRefused(dir, /missing tensor 'encoder.stages.4.layers.1.pwconv2.weight' \(required by the config/, victim);
  });

  it('a wrong shape is named with both shapes', async () => {
    const dir = await scratch.copyFixture();
    await rewrite(join(dir, 'vision_tower/model.safetensors'), (list) =>
      list.map((t) => (t.name === visionNames.stem.weight ? { ...t, shape: [16, 3, 16] } : t)),
    );
    await expectRefused(dir, /'embeddings.patch_embeddings.weight' has shape \[16,3,16\] but the config implies \[16,3,4,4\]/, visionNames.stem.weight);
  });

  it('a config that disagrees with the weights (more layers) names the first missing layer', async () => {
    const dir = await scratch.copyFixture();
    await editJson(join(dir, 'config.json'), (j) => (j.num_hidden_layers = 3));
    await expectRefused(dir, /missing tensors 'model.layers.2.input_layernorm.weight'/, 'model.layers.2.input_layernorm.weight');
  });

  it('unexpected extra tensors and unindexed tensors are warnings, not errors', async () => {
    const dir = await scratch.copyFixture();
    await rewrite(join(dir, 'vision_tower/model.safetensors'), (list) => [...list, { name: 'head.fc.weight', dtype: 'F32', shape: [2], data: new Float32Array(2) }]);
    await rewrite(join(dir, SHARD1), (list) => [...list, { name: 'model.unlisted', dtype: 'F32', shape: [1], data: new Float32Array(1) }]);
    const ckpt = await Checkpoint.open(dir);
    await ckpt.close();
    expect(ckpt.warnings.join('\n')).to.match(/1 unexpected tensor \(ignored\): 'head.fc.weight'/);
    expect(ckpt.warnings.join('\n')).to.match(/not in the index \(ignored\): model.unlisted/);
  });

  it('a weight with an integer dtype is refused', async () => {
    const dir = await scratch.copyFixture();
    await rewrite(join(dir, 'vision_tower/model.safetensors'), (list) =>
      list.map((t) => (t.name === visionNames.stem.bias ? { ...t, dtype: 'I16' } : t)),
    );
    await expectRefused(dir, /'embeddings.patch_embeddings.bias' is I16; weights must be F32, F16 or BF16/, visionNames.stem.bias);
  });

  it('a single model.safetensors works as well as shards', async () => {
    const dir = await scratch.copyFixture();
    const list: TensorToWrite[] = [];
    for (const shard of [SHARD1, SHARD2]) {
      const f = await SafetensorsFile.open(join(dir, shard));
      for (const t of f.tensors.values()) list.push({ name: t.name, dtype: t.dtype, shape: t.shape, data: await f.readBytes(t.name) });
      await f.close();
      await unlink(join(dir, shard));
    }
    await unlink(join(dir, 'model.safetensors.index.json'));
    await writeSafetensors(join(dir, 'model.safetensors'), list);
    const ckpt = await Checkpoint.open(dir);
    expect(ckpt.llm.files.length).to.equal(1);
    await ckpt.close();
  });
});

describe('Checkpoint: folder and config errors', () => {
  it('no folder, a file instead of a folder, no weights, pickle weights', async () => {
    await expectRefused(scratch.file('does-not-exist'), /no such folder/);
    await expectRefused(join(FIXTURE, 'config.json'), /expected a model folder/);
    const dir = await scratch.copyFixture();
    for (const f of [SHARD1, SHARD2, 'model.safetensors.index.json']) await unlink(join(dir, f));
    await expectRefused(dir, /no model.safetensors or model.safetensors.index.json/);
    await writeFile(join(dir, 'pytorch_model.bin'), 'x');
    await expectRefused(dir, /PyTorch pickle weights/);
  });

  it('missing or invalid configs name the file and field', async () => {
    let dir = await scratch.copyFixture();
    await unlink(join(dir, 'vision_tower/preprocessor_config.json'));
    await expectRefused(dir, /preprocessor_config.json: missing/);
    dir = await scratch.copyFixture();
    await writeFile(join(dir, 'config.json'), '{');
    await expectRefused(dir, /config.json: not valid JSON/);
    dir = await scratch.copyFixture();
    await editJson(join(dir, 'config.json'), (j) => (j.hidden_size = '64'));
    await expectRefused(dir, /config.json: 'hidden_size' must be an integer ≥ 1, got "64"/);
    dir = await scratch.copyFixture();
    await editJson(join(dir, 'config.json'), (j) => (j.mm_hidden_size = 64));
    await expectRefused(dir, /mm_hidden_size 64 ≠ the last vision stage width 96/);
    dir = await scratch.copyFixture();
    await editJson(join(dir, 'vision_tower/config.json'), (j) => (j.depths = [1, 1, 2]));
    await expectRefused(dir, /'depths' must be an array of 5 positive integers/);
  });
});

describe('names: the expected tensor table follows the config', () => {
  const base = JSON.parse(JSON.stringify(await_config()));
  function await_config() {
    return {
      hidden_size: 64, intermediate_size: 172, num_attention_heads: 4, num_hidden_layers: 2, vocab_size: 100,
      mm_hidden_size: 96, mm_projector_type: 'mlp2x_gelu', mm_vision_resolution: 256,
    };
  }

  it('tie_word_embeddings drops lm_head; attention_bias adds biases; GQA shrinks k/v', () => {
    const tied = expectedLlmTensors(parseLlavaConfig({ ...base, tie_word_embeddings: true }, 'c'));
    expect(tied.map((t) => t.name)).to.not.include('lm_head.weight');
    const biased = expectedLlmTensors(parseLlavaConfig({ ...base, attention_bias: true, num_key_value_heads: 2 }, 'c'));
    const byName = new Map(biased.map((t) => [t.name, t.shape]));
    expect(byName.get('model.layers.1.self_attn.k_proj.bias')).to.deep.equal([32]);
    expect(byName.get('model.layers.1.self_attn.k_proj.weight')).to.deep.equal([32, 64]);
    expect(byName.get('model.layers.1.self_attn.q_proj.weight')).to.deep.equal([64, 64]);
    expect(byName.get('lm_head.weight')).to.deep.equal([100, 64]);
  });

  it('projector types: mlp2x_gelu, mlp3x_gelu, linear, identity', () => {
    const names = (type: string) =>
      expectedLlmTensors(parseLlavaConfig({ ...base, mm_projector_type: type }, 'c'))
        .filter((t) => t.part === 'projector')
        .map((t) => `${t.name}:${t.shape}`);
    expect(names('mlp2x_gelu')).to.deep.equal(['model.mm_projector.0.weight:64,96', 'model.mm_projector.0.bias:64', 'model.mm_projector.2.weight:64,64', 'model.mm_projector.2.bias:64']);
    expect(names('mlp3x_gelu')).to.have.length(6);
    expect(names('linear')).to.deep.equal(['model.mm_projector.weight:64,96', 'model.mm_projector.bias:64']);
    expect(names('identity')).to.deep.equal([]);
    expect(() => names('qformer')).to.throw(/unsupported mm_projector_type 'qformer'/);
  });

  it('a 4-stage vision config plus vision_add_five_stage gets the fifth stage from the llava config', () => {
    const llava = parseLlavaConfig({ ...base, mm_hidden_size: 80, vision_add_five_stage: 3, vision_five_stage_width: 80 }, 'c');
    const vision = parseConvNextConfig({ hidden_sizes: [8, 16, 24, 32], depths: [1, 1, 1, 1], num_stages: 4, layer_scale_init_value: 0 }, 'v', llava);
    expect(vision.hidden_sizes).to.deep.equal([8, 16, 24, 32, 80]);
    expect(vision.depths).to.deep.equal([1, 1, 1, 1, 3]);
    expect(vision.five_stage_from_llava).to.equal(true);
    const names = new Map(expectedVisionTensors(vision).map((t) => [t.name, t.shape]));
    expect(names.get('encoder.stages.4.downsampling_layer.1.weight')).to.deep.equal([80, 32, 2, 2]);
    expect(names.get('encoder.stages.4.layers.2.pwconv1.weight')).to.deep.equal([320, 80]);
    expect(names.has('encoder.stages.0.layers.0.layer_scale_parameter')).to.equal(false, 'layer_scale_init_value 0: no layer scale');
    expect(names.has('encoder.stages.0.downsampling_layer.0.weight')).to.equal(false, 'stage 0 has no downsampling');
    expect(visualTokens({ ...llava, mm_vision_resolution: 1536 }, vision)).to.equal(576);
  });
});
