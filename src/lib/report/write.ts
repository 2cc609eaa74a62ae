// Writes a report directory atomically: index.html, report.json (what it was built from and what
// it holds) and img/ with a small JPEG of every image the page shows, so the directory can be
// copied or opened from anywhere without a server.
import { existsSync, readdirSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import type sharpModule from 'sharp';
import { lazyModule } from '../lazy-module.js';
import { UsageError } from '../command.js';
import { writeAtomicDirectory } from '../io/atomic.js';
import { buildReportPage, type ReportContent } from './page.js';

const sharp = lazyModule<typeof sharpModule>('sharp');

export const REPORT_MANIFEST = 'report.json';
export const IMAGE_DIR = 'img';

export interface ReportWriteOptions {
  /** Longest side of the copied images in pixels (never enlarged). */
  thumbnailSize: number;
}

export interface ReportSummary {
  index: string;
  sections: string[];
  images: number;
  missingImages: string[];
}

/** Every image path the page will show, in page order. */
export function imagesOf(content: ReportContent): string[] {
  const paths: Array<string | null> = [];
  content.falseNegatives?.records.forEach((r) => paths.push(r.image));
  content.retrieval?.examples.forEach((e) => {
    paths.push(e.query.image);
    e.neighbors.forEach((n) => paths.push(n.image));
  });
  content.rise?.records.forEach((r) => paths.push(r.image, r.overlay));
  content.attention?.records.forEach((r) => paths.push(r.image));
  content.boxes?.records.forEach((r) => paths.push(r.image));
  content.tsne?.points.forEach((p) => paths.push(p.image));
  return paths.filter((p): p is string => p !== null);
}

/** A file name for the copy of `path`: its order of first use and a tidy base name. */
function copyName(path: string, index: number): string {
  const stem = basename(path).replace(/\.[A-Za-z0-9]+$/, '').replace(/[^A-Za-z0-9_-]+/g, '_').slice(0, 40) || 'image';
  return `${String(index).padStart(4, '0')}-${stem}.jpg`;
}

/** Refuses to replace a directory that is not an earlier report (a typo must not delete a project). */
function checkTarget(outDir: string): void {
  if (!existsSync(outDir)) return;
  let entries: string[];
  try {
    entries = readdirSync(outDir);
  } catch {
    throw new UsageError('exists and is not a directory', { file: outDir });
  }
  if (entries.length > 0 && !entries.includes(REPORT_MANIFEST)) {
    throw new UsageError(`is a non-empty directory that is not an atelier report (no ${REPORT_MANIFEST}); choose another --out`, { file: outDir });
  }
}

/** Builds the page, copies its images and puts the directory in place of `outDir` in one rename. */
export async function writeReport(outDir: string, content: ReportContent, opts: ReportWriteOptions): Promise<ReportSummary> {
  checkTarget(outDir);
  return writeAtomicDirectory(outDir.replace(/\/+$/, '') || outDir, async (tmpDir) => {
    await mkdir(join(tmpDir, IMAGE_DIR));
    const copies = new Map<string, string | null>();
    const missing: string[] = [];
    for (const path of imagesOf(content)) {
      if (copies.has(path)) continue;
      const name = copyName(path, copies.size);
      try {
        const bytes = await sharp(path)
          .rotate()
          .resize(opts.thumbnailSize, opts.thumbnailSize, { fit: 'inside', withoutEnlargement: true })
          .flatten({ background: { r: 255, g: 255, b: 255 } })
          .jpeg({ quality: 85 })
          .toBuffer();
        await writeFile(join(tmpDir, IMAGE_DIR, name), bytes);
        copies.set(path, `${IMAGE_DIR}/${name}`);
      } catch {
        copies.set(path, null);
        missing.push(path);
      }
    }
    const html = buildReportPage(content, (path) => (path === null ? null : copies.get(path) ?? null));
    const sections = [...html.matchAll(/<section id="([^"]+)" class="report-section">/g)].map((m) => m[1]);
    await writeFile(join(tmpDir, 'index.html'), html);
    const images = [...copies.values()].filter((v) => v !== null).length;
    const manifest = { title: content.title, inputs: content.inputs, sections, images, missingImages: missing };
    await writeFile(join(tmpDir, REPORT_MANIFEST), JSON.stringify(manifest, null, 2) + '\n');
    return { index: join(outDir, 'index.html'), sections, images, missingImages: missing };
  });
}
