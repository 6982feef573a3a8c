// random_fill.wgsl — deterministic pseudo-random weights, generated on the GPU (synthetic models).
//
//   u(i)  = ⌊pcg(i ^ pcg(seed)) / 2⁸⌋ / 2²⁴       the top 24 bits (exact in f32); a hash, not a sequence
//   x[i]  = center + halfWidth · (2·u(i) − 1)    uniform in [center − halfWidth, center + halfWidth)
//
// Bindings:  @0 uniform Params { words, wordOffset, seed, center, halfWidth }
//            @1 out: array<u32> — the output words of this chunk (f32 bits, or two packed halves)
// Entry points:  main_f32  one invocation per f32 element:  element = wordOffset + word
//                main_f16  one invocation per u32 word = elements 2·(wordOffset + word) and +1,
//                          packed with pack2x16float (low half first, as the f16 tensor layout)
// Dispatch:  1-D over `words` (folded: word = gid.x + gid.y · GRID_X · WG). Tensors larger than one
//            storage binding are filled chunk by chunk at 256-byte aligned word offsets.

struct Params {
  words: u32,
  wordOffset: u32,
  seed: u32,
  center: f32,
  halfWidth: f32,
}

override WG: u32 = 256;
override GRID_X: u32 = 32768;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> out: array<u32>;

// PCG-RXS-M-XS 32-bit hash (O'Neill); ops/randomFill.ts has the same function for the CPU.
fn pcg(v: u32) -> u32 {
  let state = v * 747796405u + 2891336453u;
  let word = ((state >> ((state >> 28u) + 4u)) ^ state) * 277803737u;
  return (word >> 22u) ^ word;
}

fn value(element: u32) -> f32 {
  let u = f32(pcg(element ^ pcg(p.seed)) >> 8u) / 16777216.0; // 24 random bits → [0, 1)
  return p.center + p.halfWidth * (2.0 * u - 1.0);
}

@compute @workgroup_size(WG)
fn main_f32(@builtin(global_invocation_id) gid: vec3u) {
  let word = gid.x + gid.y * GRID_X * WG;
  if (word >= p.words) { return; }
  out[word] = bitcast<u32>(value(p.wordOffset + word));
}

@compute @workgroup_size(WG)
fn main_f16(@builtin(global_invocation_id) gid: vec3u) {
  let word = gid.x + gid.y * GRID_X * WG;
  if (word >= p.words) { return; }
  let element = 2u * (p.wordOffset + word);
  out[word] = pack2x16float(vec2f(value(element), value(element + 1u)));
}
