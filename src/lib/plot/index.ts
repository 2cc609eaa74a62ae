// Charts: build a ChartSpec (line series, scatter points, axes, legend, title), then render it.
export { PALETTE, escapeXml, niceTicks, renderChartSvg } from './chart.js';
export type { AxisSpec, ChartSpec, LegendPlacement, Point, Series } from './chart.js';
export { renderChartPng, svgToPng, writeChart } from './png.js';
