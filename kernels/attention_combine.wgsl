// attention_combine.wgsl — split-K attention, phase 2 of 2: merge the per-chunk partial softmax
// results of kernels/attention_decode.wgsl into the output.
//
//   M = max_c m_c,   w_c = e^(m_c − M),   o[t, h, d] = Σ_c w_c · acc_c[d] / Σ_c w_c · l_c
// (a chunk with no visible key has m_c = −1e30, l_c = 0, so w_c = 0; chunk 0 always holds key 0.)
//
// Bindings:  @0 uniform Params { rows = T·nHeads, nChunks }   @1 partial: f32[rows, nChunks, D + 2]
//            @2 o: act[rows · D]  (= [T, nHeads·D])
// Dispatch:  one workgroup of WG invocations per (t, h) row: workgroups (rows).
// One invocation produces output dims d = lid, lid + WG, … (each recomputes M and Σ w·l: nChunks
// is small).
//
// Precision (ops/precision.ts): `act` is f32, or f16 in the +f16(act) variant. The partials stay
// f32 and the merge is f32; the store of o is the attention's only rounding to f16.

alias act = f32;

struct Params { rows: u32, nChunks: u32 }

override HEAD_DIM: u32 = 128;
override WG: u32 = 128;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> partial: array<f32>;
@group(0) @binding(2) var<storage, read_write> o: array<act>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let D = HEAD_DIM;
  let row = wid.x;
  let base = row * p.nChunks * (D + 2u);
  var M = -1e30;
  for (var c = 0u; c < p.nChunks; c++) { M = max(M, partial[base + c * (D + 2u) + D]); }
  var L = 0.0;
  for (var c = 0u; c < p.nChunks; c++) {
    let at = base + c * (D + 2u);
    L += exp(partial[at + D] - M) * partial[at + D + 1u];
  }
  for (var d = lid; d < D; d += WG) {
    var sum = 0.0;
    for (var c = 0u; c < p.nChunks; c++) {
      let at = base + c * (D + 2u);
      sum += exp(partial[at + D] - M) * partial[at + d];
    }
    o[row * D + d] = act(sum / L);
  }
}
