// Pictures of a 2-D embedding: thumbnails drawn at their coordinates (the report's Figure 3.4), or
// points coloured by a label through the project's chart renderer.
import type sharpModule from 'sharp';
import { lazyModule } from '../lazy-module.js';
import { renderChartSvg, type Series } from '../plot/chart.js';

const sharp = lazyModule<typeof sharpModule>('sharp');

export interface ThumbnailMapOptions {
  /** Side of the square canvas in pixels. */
  size: number;
  /** Side of each thumbnail in pixels. */
  thumbnail: number;
  background?: { r: number; g: number; b: number };
}

/** Where each point lands on a square canvas: its top-left corner for a thumbnail of side `thumbnail`, aspect kept. */
export function canvasPlacements(coordinates: ArrayLike<number>, n: number, size: number, thumbnail: number): Array<{ left: number; top: number }> {
  let minX = Infinity, maxX = -Infinity, minY = Infinity, maxY = -Infinity;
  for (let i = 0; i < n; i++) {
    minX = Math.min(minX, coordinates[2 * i]);
    maxX = Math.max(maxX, coordinates[2 * i]);
    minY = Math.min(minY, coordinates[2 * i + 1]);
    maxY = Math.max(maxY, coordinates[2 * i + 1]);
  }
  const span = Math.max(maxX - minX, maxY - minY) || 1;
  const room = Math.max(1, size - thumbnail);
  const offsetX = (room - ((maxX - minX) / span) * room) / 2;
  const offsetY = (room - ((maxY - minY) / span) * room) / 2;
  const placements: Array<{ left: number; top: number }> = [];
  for (let i = 0; i < n; i++) {
    // Map y grows upwards, image rows downwards.
    placements.push({
      left: Math.round(offsetX + ((coordinates[2 * i] - minX) / span) * room),
      top: Math.round(offsetY + ((maxY - coordinates[2 * i + 1]) / span) * room),
    });
  }
  return placements;
}

/**
 * PNG of thumbnails at their map positions; points whose image is null or unreadable are left out
 * and counted. Later points are drawn over earlier ones.
 */
export async function renderThumbnailMap(coordinates: ArrayLike<number>, images: Array<string | null>, opts: ThumbnailMapOptions): Promise<{ png: Buffer; drawn: number; missing: number }> {
  const n = images.length;
  const placements = canvasPlacements(coordinates, n, opts.size, opts.thumbnail);
  const layers: sharpModule.OverlayOptions[] = [];
  let missing = 0;
  for (let i = 0; i < n; i++) {
    const path = images[i];
    if (path === null) {
      missing++;
      continue;
    }
    try {
      const input = await sharp(path).rotate().resize(opts.thumbnail, opts.thumbnail, { fit: 'cover' }).png().toBuffer();
      layers.push({ input, left: placements[i].left, top: placements[i].top });
    } catch {
      missing++;
    }
  }
  const png = await sharp({ create: { width: opts.size, height: opts.size, channels: 3, background: opts.background ?? { r: 255, g: 255, b: 255 } } })
    .composite(layers)
    .png()
    .toBuffer();
  return { png, drawn: layers.length, missing };
}

/** SVG scatter of the map with one colour per label (the most frequent labels first in the legend). */
export function labelScatterSvg(coordinates: ArrayLike<number>, labels: Array<string | null>, opts: { title?: string; width?: number; height?: number } = {}): string {
  const groups = new Map<string, Array<[number, number]>>();
  labels.forEach((label, i) => {
    const key = label ?? '(none)';
    const points = groups.get(key) ?? [];
    points.push([coordinates[2 * i], coordinates[2 * i + 1]]);
    groups.set(key, points);
  });
  const ordered = [...groups.entries()].sort((a, b) => b[1].length - a[1].length || (a[0] < b[0] ? -1 : 1));
  const series: Series[] = ordered.map(([name, points]) => ({ name, points, kind: 'scatter', radius: points.length > 500 ? 2.5 : 3.5 }));
  return renderChartSvg({ title: opts.title, series, width: opts.width ?? 900, height: opts.height ?? 800, legend: 'auto', grid: false });
}
