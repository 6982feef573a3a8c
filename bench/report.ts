/**
 * `convllava bench --report out.html`: one self-contained HTML page (inline SVG, no scripts, no
 * external assets) drawing the benchmark: per-kernel throughput as a fraction of the measured
 * roofline, image-encode time against resolution (with visual tokens), and prefill / decode tok/s.
 */
import type { KernelResult } from './kernels.js';
import type { ModelBenchResult } from './model.js';

export interface BenchReport {
  adapter: { vendor: string; architecture: string; device: string; description: string; backend: string };
  date: string;
  model: ModelBenchResult | null;
  /** One model result per --precision, in the order given (model is the first). */
  models?: ModelBenchResult[];
  kernels: (KernelResult & { roofline_fraction: number | null })[] | null;
  roofline: { bandwidth_gbs: number; gemm_gflops: number } | null;
}

const esc = (s: string) => s.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]!);
const fmt = (x: number) => (x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2));

/** Horizontal bars: one row per item, value scaled to the widest (or to `max`). */
function hbars(rows: { label: string; value: number; text: string; tone?: string }[], max?: number): string {
  const rowH = 26;
  const labelW = 330;
  const barW = 420;
  const top = Math.max(max ?? 0, ...rows.map((r) => r.value), 1e-12);
  const h = rows.length * rowH + 10;
  const bars = rows
    .map((r, i) => {
      const y = 5 + i * rowH;
      const w = Math.max(1, (r.value / top) * barW);
      return `<text x="${labelW - 8}" y="${y + 17}" text-anchor="end">${esc(r.label)}</text>
<rect x="${labelW}" y="${y + 4}" width="${w.toFixed(1)}" height="${rowH - 8}" fill="${r.tone ?? '#3b6ea8'}"/>
<text x="${labelW + w + 6}" y="${y + 17}">${esc(r.text)}</text>`;
    })
    .join('\n');
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${labelW + barW + 190}" height="${h}" font-family="sans-serif" font-size="13">${bars}</svg>`;
}

/** Image encode ms vs resolution: a line through the points, labelled with visual tokens. */
function encodeChart(points: { resolution: number; tokens: number; ms: number; sd: number }[]): string {
  const W = 640;
  const H = 300;
  const pad = { l: 70, r: 30, t: 20, b: 50 };
  const xs = points.map((p) => p.resolution);
  const xMin = Math.min(...xs) * 0.9;
  const xMax = Math.max(...xs) * 1.05;
  const yMax = Math.max(...points.map((p) => p.ms + p.sd)) * 1.15 || 1;
  const X = (x: number) => pad.l + ((x - xMin) / (xMax - xMin || 1)) * (W - pad.l - pad.r);
  const Y = (y: number) => H - pad.b - (y / yMax) * (H - pad.t - pad.b);
  const path = points.map((p, i) => `${i ? 'L' : 'M'}${X(p.resolution).toFixed(1)},${Y(p.ms).toFixed(1)}`).join(' ');
  const ticks = [0, 0.25, 0.5, 0.75, 1]
    .map((f) => `<line x1="${pad.l}" x2="${W - pad.r}" y1="${Y(f * yMax)}" y2="${Y(f * yMax)}" stroke="#ddd"/><text x="${pad.l - 6}" y="${Y(f * yMax) + 4}" text-anchor="end">${fmt(f * yMax)}</text>`)
    .join('');
  const dots = points
    .map(
      (p) => `<circle cx="${X(p.resolution)}" cy="${Y(p.ms)}" r="5" fill="#c0504d"/>
<line x1="${X(p.resolution)}" x2="${X(p.resolution)}" y1="${Y(p.ms - p.sd)}" y2="${Y(p.ms + p.sd)}" stroke="#c0504d"/>
<text x="${X(p.resolution)}" y="${Y(p.ms) - 10}" text-anchor="middle">${fmt(p.ms)} ms · ${p.tokens} tok</text>
<text x="${X(p.resolution)}" y="${H - pad.b + 18}" text-anchor="middle">${p.resolution}²</text>`,
    )
    .join('\n');
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif" font-size="12">
${ticks}<path d="${path}" fill="none" stroke="#c0504d" stroke-width="2"/>${dots}
<text x="${(W + pad.l) / 2}" y="${H - 8}" text-anchor="middle">input resolution (visual tokens = (R/64)²)</text>
<text x="16" y="${(H - pad.b) / 2}" transform="rotate(-90 16 ${(H - pad.b) / 2})" text-anchor="middle">ms per image</text></svg>`;
}

export function renderReport(r: BenchReport): string {
  const a = r.adapter;
  const sections: string[] = [];
  if (r.kernels?.length) {
    const ours = r.kernels.filter((k) => k.implementation === 'convllava WGSL');
    const fractionRows = ours
      .filter((k) => k.roofline_fraction !== null)
      .map((k) => ({
        label: `${k.kernel} ${k.shape}`,
        value: k.roofline_fraction!,
        text: `${(k.roofline_fraction! * 100).toFixed(1)} % (${fmt(k.throughput)} ${k.unit})`,
        tone: k.unit === 'GB/s' ? '#4f8a3c' : '#3b6ea8',
      }));
    sections.push(`<h2>Kernels: achieved fraction of the measured roofline</h2>
<p>Roofline measured on this adapter: copy bandwidth ${r.roofline ? fmt(r.roofline.bandwidth_gbs) : '?'} GB/s (green bars, memory-bound kernels),
best GEMM ${r.roofline ? fmt(r.roofline.gemm_gflops) : '?'} GFLOP/s (blue bars, compute-bound kernels).</p>
${hbars(fractionRows, 1)}`);
    const gemm = r.kernels.filter((k) => k.kernel === 'linear (f32 weights)');
    if (gemm.length > 1) {
      sections.push(`<h2>GEMM ${esc(gemm[0].shape)}: hand-written vs generated WGSL vs CPU</h2>
${hbars(gemm.map((k) => ({ label: k.implementation, value: k.throughput, text: `${fmt(k.throughput)} GFLOP/s · ${fmt(k.ms)} ms` })))}`);
    }
  }
  if (r.model) {
    const m = r.model;
    if (m.image_encode.length) {
      sections.push(`<h2>Image encode (vision tower + projector), ${esc(m.model)}, ${m.dtype} weights</h2>
${encodeChart(m.image_encode.map((e) => ({ resolution: e.resolution, tokens: e.visual_tokens, ms: e.ms.mean, sd: e.ms.sd })))}`);
    }
    const llm = [
      m.pp && { label: `prefill pp${m.pp.n_prompt}`, value: m.pp.avg_ts, text: `${fmt(m.pp.avg_ts)} ± ${fmt(m.pp.stddev_ts)} tok/s` },
      m.tg && { label: `decode tg${m.tg.n_gen}`, value: m.tg.avg_ts, text: `${fmt(m.tg.avg_ts)} ± ${fmt(m.tg.stddev_ts)} tok/s` },
    ].filter(Boolean) as { label: string; value: number; text: string }[];
    if (llm.length) sections.push(`<h2>LLM throughput</h2>${hbars(llm)}`);
    const profileBars = (rows: { kernel: string; count: number; ms: number; share: number }[]) =>
      hbars(rows.map((k) => ({ label: `${k.kernel} ×${k.count}`, value: k.share, text: `${(k.share * 100).toFixed(1)} % (${fmt(k.ms)} ms)` })), 1);
    if (m.profile) {
      const how = m.profile.method === 'timestamp-query' ? 'GPU timestamps, each dispatch in its own pass' : 'wall clock, each dispatch submitted alone (no timestamp queries)';
      if (m.profile.decode_step) sections.push(`<h2>GPU time per kernel: one decode step</h2><p>${esc(how)}</p>${profileBars(m.profile.decode_step)}`);
      if (m.profile.image_encode) sections.push(`<h2>GPU time per kernel: one image encode ${m.profile.image_encode.resolution}²</h2><p>${esc(how)}</p>${profileBars(m.profile.image_encode.kernels)}`);
    }
    sections.push(`<h2>Summary</h2><table>
<tr><td>load</td><td>${fmt(m.load_ms)} ms</td></tr>
<tr><td>parameters</td><td>vision ${(m.parameters.vision / 1e6).toFixed(1)} M, LLM + projector ${(m.parameters.llm / 1e6).toFixed(1)} M</td></tr>
${m.ttft_ms ? `<tr><td>time to first token (image + prompt)</td><td>${fmt(m.ttft_ms.mean)} ± ${fmt(m.ttft_ms.sd)} ms</td></tr>` : ''}
${m.image_encode.map((e) => `<tr><td>image encode ${e.resolution}²: work recorded</td><td>${e.dispatches} dispatches, ${e.passes} passes, ${e.copies} copies, ${fmt(e.cpu_record_ms)} ms recording</td></tr>`).join('\n')}
${m.tg?.dispatches_per_token !== undefined ? `<tr><td>decode: work per token</td><td>${fmt(m.tg.dispatches_per_token)} dispatches (${m.tg.n_layers} layers), ${fmt(m.tg.passes_per_token!)} passes, ${fmt(m.tg.copies_per_token!)} copies, ${fmt(m.tg.cpu_record_ms_per_token!)} ms recording; ${m.tg.pipelines_created} pipelines created after the first token; ${fmt(m.tg.weight_bytes_per_token! / 2 ** 20)} MiB of weights read</td></tr>` : ''}
<tr><td>peak GPU memory (pool)</td><td>${(m.peak_gpu_bytes / 2 ** 20).toFixed(0)} MiB</td></tr></table>`);
  }
  return `<!doctype html><html><head><meta charset="utf-8"><title>convllava bench</title>
<style>body{font-family:sans-serif;max-width:1000px;margin:24px auto;color:#222}h1{font-size:22px}h2{font-size:17px;margin-top:28px}td{padding:2px 12px 2px 0}</style></head>
<body><h1>convllava bench</h1>
<p>Adapter: ${esc(`${a.vendor} ${a.architecture} ${a.device}`)} ${a.description ? `(${esc(a.description)})` : ''} via ${esc(a.backend)} · ${esc(r.date)}</p>
${sections.join('\n')}
</body></html>`;
}
