// A small SVG writer for the bench reports: a labelled scatter plot and a
// horizontal bar chart. Plain strings; no plotting service, no dependency.

export interface Point {
  x: number;
  y: number;
  label: string;
  /** Series name: one colour each. */
  series: string;
}

const COLOURS = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#17becf'];

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

/** Round tick values across [0, max]. */
export function ticks(max: number, count = 5): number[] {
  if (!(max > 0)) return [0];
  const raw = max / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw)!;
  const out: number[] = [];
  for (let v = 0; v <= max + step * 1e-9; v += step) out.push(Number(v.toPrecision(6)));
  if (out[out.length - 1]! < max) out.push(Number((out[out.length - 1]! + step).toPrecision(6)));
  return out;
}

/** Ticks 1, 2, 5, 10, 20, ... covering [min, max] (a log axis). */
export function logTicks(min: number, max: number): number[] {
  const out: number[] = [];
  for (let mag = 10 ** Math.floor(Math.log10(Math.max(min, 1e-9))); out.length === 0 || out[out.length - 1]! < max; mag *= 10) {
    for (const m of [1, 2, 5]) {
      const v = Number((m * mag).toPrecision(6));
      if (v * 2.5 >= min && (out.length === 0 || out[out.length - 1]! < max)) out.push(v);
    }
  }
  return out;
}

/** `logY`: a logarithmic y axis (latencies from a few ms to the deadline on one plot). */
export function scatter(points: Point[], o: { title: string; xLabel: string; yLabel: string; width?: number; height?: number; logY?: boolean }): string {
  const W = o.width ?? 900;
  const H = o.height ?? 560;
  const m = { l: 70, r: 240, t: 40, b: 55 };
  const xMax = Math.max(1e-9, ...points.map((p) => p.x).filter(Number.isFinite));
  const yMax = Math.max(1e-9, ...points.map((p) => p.y).filter(Number.isFinite));
  const xt = ticks(xMax);
  const yMin = Math.min(yMax, ...points.map((p) => p.y).filter((y) => Number.isFinite(y) && y > 0));
  const yt = o.logY ? logTicks(yMin, yMax) : ticks(yMax);
  const xTop = xt[xt.length - 1]!;
  const yTop = yt[yt.length - 1]!;
  const yBottom = o.logY ? yt[0]! : 0;
  const px = (x: number): number => m.l + (x / xTop) * (W - m.l - m.r);
  const frac = (y: number): number => (o.logY ? Math.log(Math.max(y, yBottom) / yBottom) / Math.log(yTop / yBottom) : y / yTop);
  const py = (y: number): number => H - m.b - frac(y) * (H - m.t - m.b);
  const series = [...new Set(points.map((p) => p.series))];
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${W / 2}" y="22" text-anchor="middle" font-size="15">${esc(o.title)}</text>`,
  ];
  for (const v of xt) {
    parts.push(`<line x1="${px(v)}" y1="${m.t}" x2="${px(v)}" y2="${H - m.b}" stroke="#eee"/>`);
    parts.push(`<text x="${px(v)}" y="${H - m.b + 16}" text-anchor="middle">${v}</text>`);
  }
  for (const v of yt) {
    parts.push(`<line x1="${m.l}" y1="${py(v)}" x2="${W - m.r}" y2="${py(v)}" stroke="#eee"/>`);
    parts.push(`<text x="${m.l - 6}" y="${py(v) + 4}" text-anchor="end">${v}</text>`);
  }
  parts.push(`<line x1="${m.l}" y1="${H - m.b}" x2="${W - m.r}" y2="${H - m.b}" stroke="black"/>`);
  parts.push(`<line x1="${m.l}" y1="${m.t}" x2="${m.l}" y2="${H - m.b}" stroke="black"/>`);
  parts.push(`<text x="${(m.l + W - m.r) / 2}" y="${H - 14}" text-anchor="middle">${esc(o.xLabel)}</text>`);
  parts.push(`<text transform="translate(18 ${(m.t + H - m.b) / 2}) rotate(-90)" text-anchor="middle">${esc(o.yLabel)}</text>`);
  for (const p of points) {
    if (!Number.isFinite(p.x) || !Number.isFinite(p.y)) continue;
    const c = COLOURS[series.indexOf(p.series) % COLOURS.length];
    parts.push(`<circle cx="${px(p.x).toFixed(1)}" cy="${py(p.y).toFixed(1)}" r="5" fill="${c}" fill-opacity="0.8"><title>${esc(p.label)}: x=${p.x}, y=${p.y}</title></circle>`);
    parts.push(`<text x="${(px(p.x) + 7).toFixed(1)}" y="${(py(p.y) - 6).toFixed(1)}" font-size="10" fill="#444">${esc(p.label)}</text>`);
  }
  series.forEach((s, i) => {
    const y = m.t + 10 + i * 18;
    parts.push(`<circle cx="${W - m.r + 20}" cy="${y}" r="5" fill="${COLOURS[i % COLOURS.length]}"/>`);
    parts.push(`<text x="${W - m.r + 30}" y="${y + 4}">${esc(s)}</text>`);
  });
  parts.push('</svg>');
  return parts.join('\n') + '\n';
}

export function bars(items: { label: string; value: number }[], o: { title: string; unit: string; width?: number }): string {
  const W = o.width ?? 900;
  const rowH = 18;
  const m = { l: 330, r: 90, t: 40, b: 20 };
  const H = m.t + m.b + rowH * items.length;
  const max = Math.max(1e-9, ...items.map((i) => i.value).filter(Number.isFinite));
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif" font-size="11">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${W / 2}" y="22" text-anchor="middle" font-size="15">${esc(o.title)}</text>`,
  ];
  items.forEach((it, i) => {
    const y = m.t + i * rowH;
    const w = Number.isFinite(it.value) ? (it.value / max) * (W - m.l - m.r) : 0;
    parts.push(`<text x="${m.l - 6}" y="${y + 12}" text-anchor="end">${esc(it.label)}</text>`);
    parts.push(`<rect x="${m.l}" y="${y + 2}" width="${w.toFixed(1)}" height="${rowH - 5}" fill="${COLOURS[0]}"/>`);
    parts.push(`<text x="${(m.l + w + 4).toFixed(1)}" y="${y + 12}">${Number.isFinite(it.value) ? Math.round(it.value) : '-'} ${esc(o.unit)}</text>`);
  });
  parts.push('</svg>');
  return parts.join('\n') + '\n';
}
