// transpose.wgsl — 2-D transpose of a row-major [rows, cols] matrix into [cols, rows]; the
// layout changes of the vision tower are this with one side being the pixels:
//   nchwToNhwc: [C, H·W] → [H·W, C]        nhwcToNchw: [H·W, C] → [C, H·W]
//
//   y[c · rows + r] = x[r · cols + c]
//
// Bindings:  @0 uniform Params { rows, cols, col_tiles }   @1 x: act[rows·cols]   @2 y: act[cols·rows]
// Dispatch:  one workgroup of TILE × ROWS_PER_PASS invocations per TILE × TILE tile; tiles are
//            numbered t = wid.x + wid.y · GRID_X (folded grid), tile (t / col_tiles, t mod col_tiles).
// One workgroup copies its tile into workgroup memory with reads along x's rows (adjacent
// invocations read adjacent floats), then writes it out along y's rows (adjacent invocations write
// adjacent floats), so both global accesses are coalesced; the +1 column of padding keeps the
// column-wise reads of the tile free of bank conflicts. Each invocation moves TILE / ROWS_PER_PASS
// elements.
//
// Precision (ops/precision.ts): `act` is f32, or f16 in the +f16(act) variant (the tile too). The
// values are moved, never converted, so both variants are exact copies.

alias act = f32;

struct Params { rows: u32, cols: u32, col_tiles: u32 }

override TILE: u32 = 32;
override ROWS_PER_PASS: u32 = 8;
override GRID_X: u32 = 32768;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<act>;
@group(0) @binding(2) var<storage, read_write> y: array<act>;

var<workgroup> tile: array<act, TILE * (TILE + 1)>;

@compute @workgroup_size(TILE, ROWS_PER_PASS)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let t = wid.x + wid.y * GRID_X;
  let r0 = (t / p.col_tiles) * TILE;   // first row of x in this tile
  let c0 = (t % p.col_tiles) * TILE;   // first column of x in this tile
  // Workgroups past the last tile have r0 ≥ rows and touch nothing (but still reach the barrier).

  for (var j = lid.y; j < TILE; j += ROWS_PER_PASS) {
    let r = r0 + j;
    let c = c0 + lid.x;
    if (r < p.rows && c < p.cols) { tile[j * (TILE + 1u) + lid.x] = x[r * p.cols + c]; }
  }
  workgroupBarrier();
  for (var j = lid.y; j < TILE; j += ROWS_PER_PASS) {
    let c = c0 + j;        // row of y
    let r = r0 + lid.x;    // column of y
    if (c < p.cols && r < p.rows) { y[c * p.rows + r] = tile[lid.x * (TILE + 1u) + j]; }
  }
}
