// attention_prefill.wgsl — causal grouped-query attention for many queries (prompt prefill),
// flash-attention style: K/V tiles staged in workgroup memory, online softmax, no T×S score matrix.
//
//   o[t, h] = Σ_k softmax_k( q[t, h] · K[k, g(h)] / √D ) · V[k, g(h)]
//   over keys k ≤ queryOffset + t and k < kvLength;  g(h) = ⌊h / (nHeads / nKvHeads)⌋
//
// Bindings:  @0 uniform Params   @1 q: act[T, nHeads·D]   @2 k: act[S, nKvHeads·D]
//            @3 v: act[S, nKvHeads·D]   @4 o: act[T, nHeads·D]
// Dispatch:  workgroups (⌈T / BQ⌉, nHeads): one workgroup per (block of BQ queries, head).
//            WG = BQ · TPQ invocations: TPQ invocations share each query.
// Per key tile of BK keys: the workgroup loads K into workgroup memory; invocation (query qi, lane j)
// computes scores for keys j, j + TPQ, … (all at once, reading each q element once); then V replaces K in the same tile memory and each
// invocation rescales and accumulates its D / TPQ output dims (j, j + TPQ, …) of query qi with the
// online-softmax update  m' = max(m, max s),  acc = acc·e^(m−m') + Σ e^(s−m')·v,  l likewise.
// Rows of the Q and K/V tiles are padded by one float so lanes reading different rows at the
// same column hit different banks.
//
// Precision (ops/precision.ts): `act` is f32, or f16 in the +f16(act) variant (q, the KV cache and
// the output). The tiles in workgroup memory stay f32 (they hold the f16 values exactly), and the
// scores, the softmax statistics m, l and the P·V accumulators are f32; the only rounding to f16 is
// the store of o.

alias act = f32;

struct Params {
  T: u32,
  nHeads: u32,
  nKvHeads: u32,
  queryOffset: u32,
  kvLength: u32,
  scale: f32,          // 1 / √D
}

override HEAD_DIM: u32 = 128;  // D, a multiple of TPQ, ≤ TPQ · MAX_DPT
override BQ: u32 = 16;         // queries per workgroup
override BK: u32 = 32;         // keys per tile, a multiple of TPQ
override TPQ: u32 = 8;         // invocations per query
const MAX_DPT: u32 = 32;       // output dims one invocation may own (D / TPQ)      } consts: they size register
const MAX_KPT: u32 = 8;        // keys per tile one invocation scores (BK / TPQ)    } arrays; copied in ops/attention.ts
override KPT: u32 = BK / TPQ;

override WG: u32 = BQ * TPQ;
override ROW: u32 = HEAD_DIM + 1;   // padded row stride of the tiles

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> q: array<act>;
@group(0) @binding(2) var<storage, read> k: array<act>;
@group(0) @binding(3) var<storage, read> v: array<act>;
@group(0) @binding(4) var<storage, read_write> o: array<act>;

var<workgroup> qTile: array<f32, BQ * ROW>;     // this block's queries, pre-scaled by 1/√D
var<workgroup> kvTile: array<f32, BK * ROW>;    // K of the tile, then V of the tile
var<workgroup> scores: array<f32, BQ * BK>;

const MASKED: f32 = -1e30;   // score of a key a query may not see (finite: no inf − inf)

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let D = HEAD_DIM;
  let h = wid.y;
  let q0 = wid.x * BQ;
  let kvh = h / (p.nHeads / p.nKvHeads);
  let qStride = p.nHeads * D;
  let kvStride = p.nKvHeads * D;
  let qi = lid / TPQ;
  let j = lid % TPQ;
  let t = q0 + qi;
  let qpos = p.queryOffset + t;
  // the last key any query of this block may see, plus one
  let kEnd = min(p.kvLength, p.queryOffset + min(p.T, q0 + BQ));

  for (var e = lid; e < BQ * D; e += WG) {
    let r = e / D;
    let c = e % D;
    var value = 0.0;
    if (q0 + r < p.T) { value = f32(q[(q0 + r) * qStride + h * D + c]) * p.scale; }
    qTile[r * ROW + c] = value;
  }

  var acc: array<f32, MAX_DPT>;
  var m = MASKED;
  var l = 0.0;
  let dpt = D / TPQ;

  for (var k0 = 0u; k0 < kEnd; k0 += BK) {
    workgroupBarrier();   // the previous tile's V is no longer read (and qTile is complete)
    for (var e = lid; e < BK * D; e += WG) {
      let r = e / D;
      let c = e % D;
      var value = 0.0;
      if (k0 + r < kEnd) { value = f32(k[(k0 + r) * kvStride + kvh * D + c]); }
      kvTile[r * ROW + c] = value;
    }
    workgroupBarrier();

    // scores of keys j, j + TPQ, …: each q element read once for all of them (register blocking)
    var dots: array<f32, MAX_KPT>;
    for (var b = 0u; b < KPT; b++) { dots[b] = 0.0; }   // (explicit: some compilers hoist the zeroing out of the loop)
    for (var c = 0u; c < D; c++) {
      let qc = qTile[qi * ROW + c];
      for (var b = 0u; b < KPT; b++) { dots[b] += qc * kvTile[(j + b * TPQ) * ROW + c]; }
    }
    for (var b = 0u; b < KPT; b++) {
      let kk = j + b * TPQ;
      let key = k0 + kk;
      let visible = t < p.T && key < kEnd && key <= qpos;
      scores[qi * BK + kk] = select(MASKED, dots[b], visible);
    }
    workgroupBarrier();

    for (var e = lid; e < BK * D; e += WG) {
      let r = e / D;
      let c = e % D;
      var value = 0.0;
      if (k0 + r < kEnd) { value = f32(v[(k0 + r) * kvStride + kvh * D + c]); }
      kvTile[r * ROW + c] = value;
    }
    workgroupBarrier();

    var tileMax = MASKED;
    for (var kk = 0u; kk < BK; kk++) { tileMax = max(tileMax, scores[qi * BK + kk]); }
    let mNew = max(m, tileMax);
    let correction = exp(m - mNew);
    l *= correction;
    for (var dd = 0u; dd < dpt; dd++) { acc[dd] *= correction; }
    for (var kk = 0u; kk < BK; kk++) {
      let s = scores[qi * BK + kk];
      if (s == MASKED) { continue; }
      let pk = exp(s - mNew);
      l += pk;
      for (var dd = 0u; dd < dpt; dd++) { acc[dd] += pk * kvTile[kk * ROW + j + dd * TPQ]; }
    }
    m = mNew;
  }

  if (t < p.T) {
    for (var dd = 0u; dd < dpt; dd++) { o[t * qStride + h * D + j + dd * TPQ] = act(acc[dd] / l); }
  }
}
