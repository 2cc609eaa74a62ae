// A small chart renderer: line series and scatter points on linear axes with ticks, a legend and a
// title, as an SVG string (rasterised to PNG by ./png.ts). Enough for top-k curves, ROC curves and
// embedding scatter plots; no interactivity, no dependencies.

export type Point = [number, number];

export interface Series {
  name: string;
  points: Point[];
  /** 'line' joins points in the order given; 'scatter' draws dots; 'line+points' both (default 'line'). */
  kind?: 'line' | 'scatter' | 'line+points';
  /** CSS colour; by default the next colour of the palette. */
  color?: string;
  dashed?: boolean;
  /** Dot radius in pixels for scatter and line+points (default 3.5, or 2 for scatters over 500 points). */
  radius?: number;
  /** Text drawn beside each point (same order as points), e.g. words on an embedding map. */
  pointLabels?: string[];
  /** Leave the series out of the legend. */
  hideInLegend?: boolean;
}

export interface AxisSpec {
  label?: string;
  /** Fixed ends; by default the data range widened to round ticks. */
  min?: number;
  max?: number;
  /** Tick values; by default about 6 round values. */
  ticks?: number[];
  /** Tick text; by default as many decimals as the tick step needs. */
  format?: (value: number) => string;
}

export type LegendPlacement = 'auto' | 'top-left' | 'top-right' | 'bottom-left' | 'bottom-right' | 'none';

export interface ChartSpec {
  title?: string;
  series: Series[];
  x?: AxisSpec;
  y?: AxisSpec;
  /** Pixels (default 800 x 500). */
  width?: number;
  height?: number;
  /** 'auto' puts the legend in the corner of the plot with the fewest points (default). */
  legend?: LegendPlacement;
  /** Light grid lines at the ticks (default true). */
  grid?: boolean;
}

/** Colour-blind-safe qualitative palette (Okabe & Ito 2008), then a few extra distinct hues. */
export const PALETTE = ['#0072B2', '#D55E00', '#009E73', '#CC79A7', '#E69F00', '#56B4E9', '#000000', '#F0E442', '#8C564B', '#7F7F7F'];

const FONT = 'DejaVu Sans, Helvetica, Arial, sans-serif';

/** Escapes text for SVG content and attributes. */
export function escapeXml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&apos;' })[c]!);
}

/** About `count` round tick values (steps of 1, 2, 2.5 or 5 times a power of ten) covering [min, max]. */
export function niceTicks(min: number, max: number, count = 6): number[] {
  if (!Number.isFinite(min) || !Number.isFinite(max)) return [];
  if (min === max) {
    const pad = min === 0 ? 1 : Math.abs(min) * 0.1;
    min -= pad;
    max += pad;
  }
  if (min > max) [min, max] = [max, min];
  const rough = (max - min) / Math.max(1, count - 1);
  const power = 10 ** Math.floor(Math.log10(rough));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * power).find((s) => s >= rough) ?? 10 * power;
  const first = Math.floor(min / step + 1e-9) * step;
  const last = Math.ceil(max / step - 1e-9) * step;
  const ticks: number[] = [];
  for (let i = 0; first + i * step <= last + step * 1e-9; i++) ticks.push(roundTo(first + i * step, step));
  return ticks;
}

/** Removes float noise such as 0.30000000000000004 by rounding to the step's decimals. */
function roundTo(value: number, step: number): number {
  const decimals = Math.max(0, -Math.floor(Math.log10(step)) + 2);
  return Number(value.toFixed(Math.min(20, decimals)));
}

function decimalsOf(values: number[]): number {
  let decimals = 0;
  for (const v of values) {
    const text = String(v);
    if (text.includes('e')) return 3;
    const dot = text.indexOf('.');
    if (dot >= 0) decimals = Math.max(decimals, text.length - dot - 1);
  }
  return Math.min(decimals, 6);
}

interface Axis {
  min: number;
  max: number;
  ticks: number[];
  format: (v: number) => string;
}

function resolveAxis(spec: AxisSpec | undefined, values: number[]): Axis {
  const finite = values.filter(Number.isFinite);
  let lo = spec?.min ?? (finite.length ? Math.min(...finite) : 0);
  let hi = spec?.max ?? (finite.length ? Math.max(...finite) : 1);
  if (lo === hi) {
    const pad = lo === 0 ? 1 : Math.abs(lo) * 0.1;
    if (spec?.min === undefined) lo -= pad;
    if (spec?.max === undefined) hi += pad;
  }
  let ticks = spec?.ticks ?? niceTicks(lo, hi);
  if (!spec?.ticks && ticks.length) {
    if (spec?.min === undefined) lo = Math.min(lo, ticks[0]);
    if (spec?.max === undefined) hi = Math.max(hi, ticks[ticks.length - 1]);
  }
  ticks = ticks.filter((t) => t >= lo - 1e-12 * Math.abs(hi - lo) && t <= hi + 1e-12 * Math.abs(hi - lo));
  const decimals = decimalsOf(ticks);
  return { min: lo, max: hi, ticks, format: spec?.format ?? ((v) => v.toFixed(decimals)) };
}

/** Rough text width for the chart font (DejaVu Sans averages ~0.6 em per character). */
function textWidth(text: string, fontSize: number): number {
  return text.length * fontSize * 0.6;
}

function fmt(n: number): string {
  return Number.isInteger(n) ? String(n) : n.toFixed(2);
}

/** Renders the chart as a standalone SVG document. */
export function renderChartSvg(spec: ChartSpec): string {
  const width = spec.width ?? 800;
  const height = spec.height ?? 500;
  const series = spec.series.map((s, i) => ({
    ...s,
    kind: s.kind ?? 'line',
    color: s.color ?? PALETTE[i % PALETTE.length],
    radius: s.radius ?? (s.kind === 'scatter' && s.points.length > 500 ? 2 : 3.5),
    points: s.points.filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y)),
  }));
  const xAxis = resolveAxis(spec.x, series.flatMap((s) => s.points.map((p) => p[0])));
  const yAxis = resolveAxis(spec.y, series.flatMap((s) => s.points.map((p) => p[1])));

  const titleSize = 18;
  const labelSize = 14;
  const tickSize = 12;
  const yTickWidth = Math.max(...yAxis.ticks.map((t) => textWidth(yAxis.format(t), tickSize)), 10);
  const left = 20 + (spec.y?.label ? labelSize + 10 : 0) + yTickWidth + 8;
  const right = 24;
  const top = spec.title ? 20 + titleSize + 14 : 20;
  const bottom = 20 + tickSize + 8 + (spec.x?.label ? labelSize + 12 : 0);
  const plotW = Math.max(10, width - left - right);
  const plotH = Math.max(10, height - top - bottom);
  const sx = (x: number) => left + ((x - xAxis.min) / (xAxis.max - xAxis.min || 1)) * plotW;
  const sy = (y: number) => top + plotH - ((y - yAxis.min) / (yAxis.max - yAxis.min || 1)) * plotH;

  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="${FONT}">`);
  out.push(`<rect width="${width}" height="${height}" fill="#ffffff"/>`);
  if (spec.title) out.push(`<text x="${fmt(left + plotW / 2)}" y="${20 + titleSize}" font-size="${titleSize}" text-anchor="middle" fill="#111">${escapeXml(spec.title)}</text>`);

  // Grid and ticks.
  const grid = spec.grid ?? true;
  for (const t of xAxis.ticks) {
    const x = fmt(sx(t));
    if (grid) out.push(`<line x1="${x}" y1="${top}" x2="${x}" y2="${top + plotH}" stroke="#e5e5e5" stroke-width="1"/>`);
    out.push(`<line x1="${x}" y1="${top + plotH}" x2="${x}" y2="${top + plotH + 5}" stroke="#333" stroke-width="1"/>`);
    out.push(`<text x="${x}" y="${top + plotH + 8 + tickSize}" font-size="${tickSize}" text-anchor="middle" fill="#333">${escapeXml(xAxis.format(t))}</text>`);
  }
  for (const t of yAxis.ticks) {
    const y = fmt(sy(t));
    if (grid) out.push(`<line x1="${left}" y1="${y}" x2="${left + plotW}" y2="${y}" stroke="#e5e5e5" stroke-width="1"/>`);
    out.push(`<line x1="${left - 5}" y1="${y}" x2="${left}" y2="${y}" stroke="#333" stroke-width="1"/>`);
    out.push(`<text x="${left - 8}" y="${fmt(sy(t) + tickSize * 0.35)}" font-size="${tickSize}" text-anchor="end" fill="#333">${escapeXml(yAxis.format(t))}</text>`);
  }
  out.push(`<rect x="${left}" y="${top}" width="${fmt(plotW)}" height="${fmt(plotH)}" fill="none" stroke="#333" stroke-width="1"/>`);
  if (spec.x?.label) out.push(`<text x="${fmt(left + plotW / 2)}" y="${height - 16}" font-size="${labelSize}" text-anchor="middle" fill="#111">${escapeXml(spec.x.label)}</text>`);
  if (spec.y?.label) {
    const cx = 20 + labelSize / 2;
    const cy = top + plotH / 2;
    out.push(`<text x="${fmt(cx)}" y="${fmt(cy)}" font-size="${labelSize}" text-anchor="middle" fill="#111" transform="rotate(-90 ${fmt(cx)} ${fmt(cy)})">${escapeXml(spec.y.label)}</text>`);
  }

  // Data, clipped to the plot area.
  // The clip leaves room for dots drawn on the frame (e.g. the last k of a curve).
  const m = 8;
  out.push(`<defs><clipPath id="plot"><rect x="${left - m}" y="${top - m}" width="${fmt(plotW + 2 * m)}" height="${fmt(plotH + 2 * m)}"/></clipPath></defs>`);
  out.push('<g clip-path="url(#plot)">');
  for (const s of series) {
    if (s.kind !== 'scatter' && s.points.length > 1) {
      const d = s.points.map(([x, y]) => `${fmt(sx(x))},${fmt(sy(y))}`).join(' ');
      out.push(`<polyline points="${d}" fill="none" stroke="${escapeXml(s.color)}" stroke-width="2.5" stroke-linejoin="round"${s.dashed ? ' stroke-dasharray="7 5"' : ''}/>`);
    }
    if (s.kind !== 'line') {
      const opacity = s.kind === 'scatter' && s.points.length > 500 ? 0.6 : 0.9;
      for (const [x, y] of s.points) out.push(`<circle cx="${fmt(sx(x))}" cy="${fmt(sy(y))}" r="${s.radius}" fill="${escapeXml(s.color)}" fill-opacity="${opacity}"/>`);
    }
    if (s.pointLabels) {
      s.points.forEach(([x, y], i) => {
        const text = s.pointLabels![i];
        if (text) out.push(`<text x="${fmt(sx(x) + s.radius + 2)}" y="${fmt(sy(y) - s.radius - 1)}" font-size="10" fill="#222">${escapeXml(text)}</text>`);
      });
    }
  }
  out.push('</g>');

  // Legend.
  const entries = series.filter((s) => !s.hideInLegend);
  const placement = spec.legend ?? 'auto';
  if (entries.length > 0 && placement !== 'none') {
    const rowH = 20;
    const boxW = 40 + Math.max(...entries.map((s) => textWidth(s.name, labelSize - 1)));
    const boxH = entries.length * rowH + 10;
    const corners = {
      'top-left': [left + 10, top + 10],
      'top-right': [left + plotW - boxW - 10, top + 10],
      'bottom-left': [left + 10, top + plotH - boxH - 10],
      'bottom-right': [left + plotW - boxW - 10, top + plotH - boxH - 10],
    } as const;
    let corner: keyof typeof corners;
    if (placement === 'auto') {
      // The corner covering the fewest points (bottom-right first on ties: rising curves leave it empty).
      const order: Array<keyof typeof corners> = ['bottom-right', 'top-left', 'top-right', 'bottom-left'];
      const covered = (name: keyof typeof corners) => {
        const [bx, by] = corners[name];
        let n = 0;
        for (const s of series) {
          for (let i = 0; i < s.points.length; i++) {
            const px = sx(s.points[i][0]);
            const py = sy(s.points[i][1]);
            if (px >= bx - 4 && px <= bx + boxW + 4 && py >= by - 4 && py <= by + boxH + 4) n++;
            // Line segments crossing the box count too: sample them every ~8 pixels.
            if (s.kind !== 'scatter' && i > 0) {
              const qx = sx(s.points[i - 1][0]);
              const qy = sy(s.points[i - 1][1]);
              const steps = Math.min(200, Math.ceil(Math.hypot(px - qx, py - qy) / 8));
              for (let t = 1; t < steps; t++) {
                const mx = qx + ((px - qx) * t) / steps;
                const my = qy + ((py - qy) * t) / steps;
                if (mx >= bx && mx <= bx + boxW && my >= by && my <= by + boxH) n++;
              }
            }
          }
        }
        return n;
      };
      corner = order.reduce((best, name) => (covered(name) < covered(best) ? name : best), order[0]);
    } else corner = placement;
    const [bx, by] = corners[corner];
    out.push(`<rect x="${fmt(bx)}" y="${fmt(by)}" width="${fmt(boxW)}" height="${boxH}" fill="#ffffff" fill-opacity="0.9" stroke="#bbb" stroke-width="1" rx="3"/>`);
    entries.forEach((s, i) => {
      const y = by + 5 + rowH * i + rowH / 2;
      if (s.kind === 'scatter') out.push(`<circle cx="${fmt(bx + 18)}" cy="${fmt(y)}" r="4" fill="${escapeXml(s.color)}"/>`);
      else {
        out.push(`<line x1="${fmt(bx + 6)}" y1="${fmt(y)}" x2="${fmt(bx + 30)}" y2="${fmt(y)}" stroke="${escapeXml(s.color)}" stroke-width="2.5"${s.dashed ? ' stroke-dasharray="7 5"' : ''}/>`);
        if (s.kind === 'line+points') out.push(`<circle cx="${fmt(bx + 18)}" cy="${fmt(y)}" r="3.5" fill="${escapeXml(s.color)}"/>`);
      }
      out.push(`<text x="${fmt(bx + 36)}" y="${fmt(y + (labelSize - 1) * 0.35)}" font-size="${labelSize - 1}" fill="#111">${escapeXml(s.name)}</text>`);
    });
  }
  out.push('</svg>');
  return out.join('\n') + '\n';
}
