// Charts as PNG files: the SVG of ./chart.ts rasterised by sharp (librsvg), written atomically.
import type sharpModule from 'sharp';
import { lazyModule } from '../lazy-module.js';
import { writeFileAtomic, type OutputGroup } from '../io/atomic.js';
import { renderChartSvg, type ChartSpec } from './chart.js';

const sharp = lazyModule<typeof sharpModule>('sharp');

/** PNG bytes of a rendered SVG; `scale` 2 gives a sharper image for slides (density 144 dpi). */
export async function svgToPng(svg: string, scale = 1): Promise<Buffer> {
  return sharp(Buffer.from(svg), { density: 72 * scale }).png().toBuffer();
}

/** PNG bytes of a chart. */
export async function renderChartPng(spec: ChartSpec, scale = 1): Promise<Buffer> {
  return svgToPng(renderChartSvg(spec), scale);
}

/** Writes a chart to `path`: PNG, or the SVG itself when the path ends in .svg. */
export async function writeChart(path: string, spec: ChartSpec, scale = 1, outputs?: OutputGroup): Promise<void> {
  if (/\.svg$/i.test(path)) await writeFileAtomic(path, renderChartSvg(spec), outputs);
  else await writeFileAtomic(path, await renderChartPng(spec, scale), outputs);
}
