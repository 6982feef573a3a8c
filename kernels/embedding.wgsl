// embedding.wgsl — token embedding lookup (gather rows of the embedding table).
//
//   y[t, d] = table[ids[t], d]        (the table is f32, or f16 packed two per u32, or q8 / q4)
//
// A LLaMA-7B table (32000 × 4096 f16 = 262 MB) is larger than one storage binding may be (128 MiB),
// so the op binds the table one row range ("chunk") at a time and dispatches this kernel once per
// chunk: rows [rowStart, rowStart + rowCount) appear at the start of the bound range. A dispatch
// writes only the output rows whose id falls in its chunk; the first dispatch (rowStart = 0) also
// writes zeros for ids ≥ vocab, so every output row is defined (ops/embedding.ts documents this).
//
// Bindings:  @0 uniform Params   @1 ids: u32[T]   @2 table chunk: f32[rowCount · D] (or u32 words for
//            f16, entry `main_f16`)   @3 y: act[T · D]
//            (or quantized rows, entry `main_q`: W_BITS 8 | 4, runtime/quant.ts — qRowWords words per
//            row, codes then f16 group scales from word qScaleWord; dequantized as gathered)
// Dispatch:  1-D over T · D output elements in workgroups of WG (ops/util.ts grid1d).
// One invocation produces one output element.
//
// Precision (ops/precision.ts): the table is a weight and keeps its own dtype; the output rows are
// activations: `act` is f32, or f16 in the +f16(act) variant. There an element is read as before
// (an f32, an unpacked f16, or a dequantized code · scale in f32) and rounded once to f16 at the
// store — exact for an f16 table, the f16 rounding of the f32 value otherwise.

alias act = f32;

struct Params {
  n: u32,          // T · D
  dim: u32,        // D
  rowStart: u32,   // first table row in the bound chunk
  rowCount: u32,   // rows in the bound chunk
  vocab: u32,      // V: ids ≥ V give zero rows
  qRowWords: u32,  // main_q: words per table row
  qScaleWord: u32, // main_q: word of a row where its scales start
}

override WG: u32 = 256;
override GRID_X: u32 = 32768;
override W_BITS: u32 = 8; // main_q: 8 (q8) or 4 (q4)

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> ids: array<u32>;
@group(0) @binding(2) var<storage, read> table: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<act>;

@group(0) @binding(2) var<storage, read> tableF16: array<u32>;

/** The chunk-relative row of output element i's id, or -1 when this dispatch does not own it. */
fn localRow(i: u32) -> i32 {
  let id = ids[i / p.dim];
  if (id >= p.vocab) {
    if (p.rowStart == 0u) { y[i] = 0.0; }
    return -1;
  }
  if (id < p.rowStart || id >= p.rowStart + p.rowCount) { return -1; }
  return i32(id - p.rowStart);
}

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let i = gid.x + gid.y * GRID_X * WG;
  if (i >= p.n) { return; }
  let r = localRow(i);
  if (r < 0) { return; }
  y[i] = act(table[u32(r) * p.dim + i % p.dim]);
}

@compute @workgroup_size(WG)
fn main_f16(@builtin(global_invocation_id) gid: vec3u) {
  let i = gid.x + gid.y * GRID_X * WG;
  if (i >= p.n) { return; }
  let r = localRow(i);
  if (r < 0) { return; }
  let e = u32(r) * p.dim + i % p.dim;        // element index within the chunk (the chunk starts on a word)
  y[i] = act(unpack2x16float(tableF16[e >> 1u])[e & 1u]);
}

@compute @workgroup_size(WG)
fn main_q(@builtin(global_invocation_id) gid: vec3u) {
  let i = gid.x + gid.y * GRID_X * WG;
  if (i >= p.n) { return; }
  let r = localRow(i);
  if (r < 0) { return; }
  let k = i % p.dim;
  let row = u32(r) * p.qRowWords;
  let g = k >> 5u;
  let s = unpack2x16float(tableF16[row + p.qScaleWord + (g >> 1u)])[g & 1u];
  if (W_BITS == 8u) {
    y[i] = act(f32(extractBits(bitcast<i32>(tableF16[row + (k >> 2u)]), 8u * (k & 3u), 8u)) * s);
  } else {
    y[i] = act((f32(extractBits(tableF16[row + (k >> 3u)], 4u * (k & 7u), 4u)) - 8.0) * s);
  }
}
