import { test } from 'vitest';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { niceTicks, renderChartPng, renderChartSvg, writeChart, type ChartSpec } from '../../src/lib/plot/index.js';
import { scratchDir } from '../helpers.js';

/** The plot frame: the rect drawn with fill="none". */
function frameOf(svg: string): { x: number; y: number; w: number; h: number } {
  const m = /<rect x="([\d.]+)" y="([\d.]+)" width="([\d.]+)" height="([\d.]+)" fill="none"/.exec(svg);
  assert.ok(m, 'the SVG has a plot frame');
  return { x: Number(m[1]), y: Number(m[2]), w: Number(m[3]), h: Number(m[4]) };
}

function circlesOf(svg: string): Array<{ cx: number; cy: number; fill: string }> {
  return [...svg.matchAll(/<circle cx="([-\d.]+)" cy="([-\d.]+)" r="[\d.]+" fill="([^"]+)"/g)].map((m) => ({ cx: Number(m[1]), cy: Number(m[2]), fill: m[3] }));
}

test('niceTicks gives round steps that cover the range', () => {
  assert.deepEqual(niceTicks(0, 1), [0, 0.2, 0.4, 0.6, 0.8, 1]);
  assert.deepEqual(niceTicks(0, 50), [0, 10, 20, 30, 40, 50]);
  assert.deepEqual(niceTicks(-3, 7, 6), [-4, -2, 0, 2, 4, 6, 8]);
  const t = niceTicks(0.013, 0.0871);
  assert.ok(t[0] <= 0.013 && t[t.length - 1] >= 0.0871);
  for (const v of t) assert.ok(String(v).length <= 6, `no float noise in ${v}`);
  assert.equal(niceTicks(5, 5).length > 1, true, 'a single value still gets an axis');
});

test('data land where the axes say: corners of the domain map to corners of the frame', () => {
  const spec: ChartSpec = {
    title: 'Scores <&> "quoted"',
    x: { label: 'k', min: 0, max: 10 },
    y: { label: 'accuracy', min: 0, max: 1 },
    series: [
      { name: 'corners', kind: 'scatter', points: [[0, 0], [10, 1], [5, 0.5]], color: '#ff0000' },
      { name: 'line & co', points: [[0, 0.2], [10, 0.4]] },
    ],
  };
  const svg = renderChartSvg(spec);
  assert.match(svg, /Scores &lt;&amp;&gt; &quot;quoted&quot;/);
  assert.match(svg, />line &amp; co</);
  const f = frameOf(svg);
  const dots = circlesOf(svg).filter((c) => c.fill === '#ff0000');
  const near = (a: number, b: number) => Math.abs(a - b) < 0.02;
  assert.ok(dots.some((c) => near(c.cx, f.x) && near(c.cy, f.y + f.h)), '(0,0) at the bottom-left');
  assert.ok(dots.some((c) => near(c.cx, f.x + f.w) && near(c.cy, f.y)), '(10,1) at the top-right');
  assert.ok(dots.some((c) => near(c.cx, f.x + f.w / 2) && near(c.cy, f.y + f.h / 2)), '(5,0.5) in the middle');
  const line = /<polyline points="([^"]+)"/.exec(svg)![1].split(' ').map((p) => p.split(',').map(Number));
  assert.ok(near(line[0][1], f.y + f.h * 0.8) && near(line[1][1], f.y + f.h * 0.6), 'a line series is drawn through its points');
  // Ticks at the round values, labelled.
  for (const label of ['0.0', '0.2', '1.0', '>10<']) assert.ok(svg.includes(label.startsWith('>') ? label : `>${label}<`), `tick ${label}`);
});

test('the legend goes to an empty corner', () => {
  const crowdedBottomRight: ChartSpec = {
    x: { min: 0, max: 1 },
    y: { min: 0, max: 1 },
    series: [{ name: 'cluster', kind: 'scatter', points: Array.from({ length: 100 }, (_, i) => [0.8 + (i % 10) / 50, (i / 10) / 50] as [number, number]) }],
  };
  const svg = renderChartSvg(crowdedBottomRight);
  const f = frameOf(svg);
  const legend = /<rect x="([\d.]+)" y="([\d.]+)" width="([\d.]+)" height="([\d.]+)" fill="#ffffff" fill-opacity/.exec(svg)!;
  const lx = Number(legend[1]);
  const ly = Number(legend[2]);
  assert.ok(!(lx > f.x + f.w / 2 && ly > f.y + f.h / 2), 'not over the cluster in the bottom-right');
  assert.ok(!renderChartSvg({ ...crowdedBottomRight, legend: 'none' }).includes('fill-opacity="0.9" stroke="#bbb"'), "legend 'none' draws no legend");
});

test('the PNG is the chart: right size, white background, the series colour on its line', async () => {
  const spec: ChartSpec = {
    width: 400,
    height: 300,
    x: { min: 0, max: 1 },
    y: { min: 0, max: 1 },
    legend: 'none',
    grid: false,
    series: [{ name: 'flat', points: [[0, 0.5], [1, 0.5]], color: '#ff0000' }],
  };
  const png = await renderChartPng(spec);
  const { data, info } = await sharp(png).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  assert.equal(info.width, 400);
  assert.equal(info.height, 300);
  const f = frameOf(renderChartSvg(spec));
  const pixel = (x: number, y: number) => {
    const o = (Math.round(y) * info.width + Math.round(x)) * 3;
    return [data[o], data[o + 1], data[o + 2]];
  };
  const [r, g, b] = pixel(f.x + f.w / 2, f.y + f.h / 2);
  assert.ok(r > 200 && g < 60 && b < 60, `red line in the middle, got ${[r, g, b]}`);
  assert.deepEqual(pixel(2, 2), [255, 255, 255], 'white background');
  const [r2, g2, b2] = pixel(f.x + f.w / 2, f.y + f.h / 4);
  assert.ok(r2 > 240 && g2 > 240 && b2 > 240, 'nothing drawn above the line');
});

test('writeChart writes a PNG, or an SVG when asked by extension', async () => {
  const dir = scratchDir();
  const spec: ChartSpec = { title: 't', series: [{ name: 'a', points: [[1, 2], [3, 4]] }] };
  await writeChart(join(dir, 'c.png'), spec);
  assert.deepEqual([...readFileSync(join(dir, 'c.png')).subarray(0, 4)], [0x89, 0x50, 0x4e, 0x47]);
  await writeChart(join(dir, 'c.svg'), spec);
  assert.match(readFileSync(join(dir, 'c.svg'), 'utf8'), /^<svg /);
});
