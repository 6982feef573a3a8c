// append_id.wgsl — append a token id chosen on the GPU to an id list on the GPU.
//
//   ids[at] = token[0]
//
// The pipelined decode loop (llm/generate.ts) records step N+1 before token N has been read back,
// and step N+1's repetition penalty must already see token N: this writes it where the sampler
// reads the answer's ids (ops/sample.ts `recentIds`), without a buffer copy (a copy would end the
// compute pass) and without a CPU round trip.
//
// Bindings:  @0 uniform Params   @1 token: u32[1]   @2 ids: u32[M], at < M
// Dispatch:  one workgroup of one invocation: workgroups (1).

struct Params {
  at: u32,   // index in ids to write
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> token: array<u32>;
@group(0) @binding(2) var<storage, read_write> ids: array<u32>;

@compute @workgroup_size(1)
fn main() {
  ids[p.at] = token[0];
}
