// Charts: build a ChartSpec (line series, scatter points, axes, legend, title), then render it.
export { PALETTE, escapeXml, niceTicks, renderChartSvg } from './chart.js';
export type { AxisSpec, ChartSpec, LegendPlacement, Point, Series } from './chart.js';
export { renderChartPng, svgToPng, writeChart } from './png.js';

/** File name endings a chart or map may be written to: PNG bytes, or SVG text. */
export const PLOT_EXTENSIONS = ['png', 'svg'] as const;
