// The report page: one self-contained HTML document (inline CSS, a few lines of inline JS for the
// sortable tables, inline SVG charts) whose images are files beside it. What GILT's results app
// showed (F1 view, false negatives view) and the report's t-SNE map, from atelier outputs.
// Everything that comes from input files is escaped; a section with no input is left out.
import { PALETTE, renderChartSvg, type Series } from '../plot/chart.js';
import type { ClassifierEvaluation, FalseNegativeRecord, LocatedBox, RetrievalRun, RiseRecord, TrainingLog, TsnePoint } from './inputs.js';
import { ATTENTION_STYLE, attentionFigures, type AttentionRecord } from './attention.js';

/** A retrieval example: the query and its top neighbours, each marked correct when it shows the query's item. */
export interface RetrievalExample {
  query: { id: string; image: string | null; item: string | null };
  neighbors: Array<{ id: string; image: string | null; score: number | null; correct: boolean | null }>;
}

/** Everything the page shows; image fields are source paths, turned into page links by `imageSource`. */
export interface ReportContent {
  title: string;
  /** Inputs listed at the top: what each section was built from. */
  inputs: Array<{ what: string; path: string }>;
  classifier?: ClassifierEvaluation;
  falseNegatives?: { records: FalseNegativeRecord[]; perClass: number; labels?: string[] };
  retrieval?: { runs: RetrievalRun[]; examples: RetrievalExample[] };
  training?: TrainingLog[];
  rise?: { records: RiseRecord[] };
  attention?: { records: AttentionRecord[] };
  boxes?: { records: LocatedBox[]; total: number };
  tsne?: { points: TsnePoint[]; total: number };
}

/** Maps a source image path to its src in the report directory (null: not available). */
export type ImageSource = (path: string | null) => string | null;

export const SECTION_IDS = ['classification', 'false-negatives', 'retrieval', 'training', 'rise', 'attention', 'boxes', 'tsne'] as const;

const SECTION_TITLES: Record<(typeof SECTION_IDS)[number], string> = {
  classification: 'Per-class F1 and confusion matrix',
  'false-negatives': 'False negatives per class',
  retrieval: 'Retrieval',
  training: 'Training curves',
  rise: 'RISE explanations',
  attention: 'Attention crops',
  boxes: 'Located garments',
  tsne: 't-SNE map',
};

/** Escapes text for HTML content and attribute values. */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

/** An SVG chart made unique on the page: each chart's clip path gets its own id. */
function inlineChart(svg: string, id: string): string {
  return svg.replace(/id="plot"/g, `id="clip-${id}"`).replace(/url\(#plot\)/g, `url(#clip-${id})`);
}

function fixed(value: number | null, digits = 3): string {
  return value === null ? '–' : value.toFixed(digits);
}

function percent(value: number | null): string {
  return value === null ? '–' : `${(100 * value).toFixed(1)}%`;
}

/** An <img> of a source image, or a grey box saying it is missing. */
function image(src: ImageSource, path: string | null, alt: string, className = 'thumb'): string {
  const href = src(path);
  if (href === null) return `<span class="${className} missing" role="img" aria-label="${escapeHtml(alt)} (image missing)">no image</span>`;
  return `<img class="${className}" src="${escapeHtml(href)}" alt="${escapeHtml(alt)}" title="${escapeHtml(alt)}" loading="lazy">`;
}

function section(id: (typeof SECTION_IDS)[number], body: string): string {
  return `<section id="${id}" class="report-section"><h2>${escapeHtml(SECTION_TITLES[id])}</h2>\n${body}\n</section>`;
}

/** Background of a confusion cell: white for none through blue for its whole row. */
function shade(share: number): string {
  const t = Math.max(0, Math.min(1, share));
  const mix = (from: number, to: number) => Math.round(from + (to - from) * t);
  return `rgb(${mix(255, 8)},${mix(255, 69)},${mix(255, 148)})`;
}

export function classificationSection(evaluation: ClassifierEvaluation): string {
  const parts: string[] = [];
  parts.push(
    `<p class="summary">Model <strong>${escapeHtml(evaluation.name)}</strong>: accuracy ${fixed(evaluation.accuracy)}, macro F1 ${fixed(evaluation.macroF1)}, weighted F1 ${fixed(evaluation.weightedF1)}. Click a column header to sort.</p>`,
  );
  const rows = evaluation.classes
    .map(
      (c) =>
        `<tr><td data-sort="${escapeHtml(c.label)}">${escapeHtml(c.label)}</td><td data-sort="${c.precision}">${fixed(c.precision)}</td><td data-sort="${c.recall}">${fixed(c.recall)}</td><td data-sort="${c.f1}">${fixed(c.f1)}</td><td data-sort="${c.support}">${c.support}</td></tr>`,
    )
    .join('\n');
  parts.push(
    `<table id="f1-table" class="sortable"><thead><tr><th scope="col">class</th><th scope="col">precision</th><th scope="col">recall</th><th scope="col">F1</th><th scope="col">support</th></tr></thead>\n<tbody>\n${rows}\n</tbody></table>`,
  );
  if (evaluation.confusion) {
    const { labels, matrix } = evaluation.confusion;
    const head = labels.map((l) => `<th scope="col" title="predicted ${escapeHtml(l)}">${escapeHtml(l)}</th>`).join('');
    const body = matrix
      .map((row, r) => {
        const total = row.reduce((a, b) => a + b, 0);
        const cells = row
          .map((v, c) => {
            const share = total ? v / total : 0;
            const colour = share > 0.55 ? '#fff' : '#111';
            return `<td data-sort="${v}" class="${r === c ? 'diagonal' : ''}" style="background:${shade(share)};color:${colour}">${v}</td>`;
          })
          .join('');
        return `<tr><th scope="row" data-sort="${escapeHtml(labels[r])}">${escapeHtml(labels[r])}</th>${cells}</tr>`;
      })
      .join('\n');
    parts.push(
      `<h3>Confusion matrix</h3><p class="note">Rows are the true class, columns the prediction; shading is the share of the row.</p>\n<table id="confusion-matrix" class="sortable confusion"><thead><tr><th scope="col">truth \\ predicted</th>${head}</tr></thead>\n<tbody>\n${body}\n</tbody></table>`,
    );
  }
  return section('classification', parts.join('\n'));
}

function falseNegativesSection(content: NonNullable<ReportContent['falseNegatives']>, src: ImageSource): string {
  const byClass = new Map<string, FalseNegativeRecord[]>();
  for (const label of content.labels ?? []) byClass.set(label, []);
  for (const r of content.records) {
    const list = byClass.get(r.truth) ?? [];
    list.push(r);
    byClass.set(r.truth, list);
  }
  const parts = [`<p class="summary">${content.records.length} images the model did not recognise as their class, grouped by true class, with what it predicted instead (GILT's false negatives view: often a wrong tag).</p>`];
  for (const [label, records] of byClass) {
    if (records.length === 0) continue;
    const shown = records.slice(0, content.perClass);
    const more = records.length - shown.length;
    const figures = shown
      .map(
        (r) =>
          `<figure class="card">${image(src, r.image, r.id)}<figcaption><span class="id">${escapeHtml(r.id)}</span><span class="predicted">predicted: ${escapeHtml(r.predicted)}${r.probability !== null ? ` (${r.probability.toFixed(2)})` : ''}</span></figcaption></figure>`,
      )
      .join('\n');
    parts.push(
      `<div class="fn-class" data-label="${escapeHtml(label)}"><h3>${escapeHtml(label)} <span class="count">${records.length} missed${more > 0 ? `, ${shown.length} shown` : ''}</span></h3><div class="grid">\n${figures}\n</div></div>`,
    );
  }
  return section('false-negatives', parts.join('\n'));
}

function topkChart(runs: RetrievalRun[]): string {
  const series: Series[] = [];
  runs.forEach((run) => {
    const top20 = run.topk.find(([k]) => k === 20)?.[1];
    series.push({ name: top20 !== undefined ? `${run.name} [${(100 * top20).toFixed(1)}%]` : run.name, points: run.topk, kind: 'line+points' });
  });
  const random = runs.find((r) => r.randomTopk && r.randomTopk.length)?.randomTopk;
  if (random) series.push({ name: 'random', points: random, kind: 'line', dashed: true, color: '#7F7F7F' });
  const maxK = Math.max(...series.flatMap((s) => s.points.map((p) => p[0])));
  return renderChartSvg({ title: 'Top-k retrieval accuracy', series, x: { label: 'k', min: 0, max: maxK }, y: { label: 'top-k accuracy', min: 0, max: 1 }, width: 720, height: 420 });
}

/**
 * One retrieval example: the query, then its neighbours best first, each framed and marked ✓ (shows
 * the query's item) or ✗. `link` makes images links (the review app's image pages); `note` adds to the query's caption.
 */
export function retrievalExampleHtml(example: RetrievalExample, src: ImageSource, opts: { link?: (id: string) => string | null; note?: string; id?: string } = {}): string {
  const linked = (id: string, html: string) => {
    const href = opts.link?.(id) ?? null;
    return href === null ? html : `<a href="${escapeHtml(href)}">${html}</a>`;
  };
  const neighbors = example.neighbors
    .map((n, rank) => {
      const mark = n.correct === null ? '' : n.correct ? ' correct' : ' wrong';
      const caption = `${rank + 1}. ${n.id}${n.score !== null ? ` (${n.score.toFixed(3)})` : ''}${n.correct === null ? '' : n.correct ? ' ✓' : ' ✗'}`;
      return `<figure class="card neighbor${mark}" data-id="${escapeHtml(n.id)}">${linked(n.id, image(src, n.image, n.id))}<figcaption>${escapeHtml(caption)}</figcaption></figure>`;
    })
    .join('');
  const id = opts.id ? ` id="${escapeHtml(opts.id)}"` : '';
  return `<div class="retrieval-example"${id} data-query="${escapeHtml(example.query.id)}"><figure class="card query">${linked(example.query.id, image(src, example.query.image, example.query.id))}<figcaption>query ${escapeHtml(example.query.id)}${example.query.item ? `<br>${escapeHtml(example.query.item)}` : ''}${opts.note ? `<br>${escapeHtml(opts.note)}` : ''}</figcaption></figure><div class="neighbors">${neighbors}</div></div>`;
}

function retrievalSection(content: NonNullable<ReportContent['retrieval']>, src: ImageSource): string {
  const parts: string[] = [];
  if (content.runs.length) {
    const ks = [...new Set(content.runs.flatMap((r) => r.topk.map(([k]) => k)))].sort((a, b) => a - b);
    const head = ks.map((k) => `<th scope="col">top-${k}</th>`).join('');
    const rows = content.runs
      .map((r) => {
        const cells = ks.map((k) => {
          const v = r.topk.find(([kk]) => kk === k)?.[1] ?? null;
          return `<td data-sort="${v ?? ''}">${percent(v)}</td>`;
        });
        return `<tr><td data-sort="${escapeHtml(r.name)}">${escapeHtml(r.name)}</td>${cells.join('')}<td data-sort="${r.map ?? ''}">${percent(r.map)}</td><td data-sort="${r.queries ?? ''}">${r.queries ?? '–'}</td></tr>`;
      })
      .join('\n');
    parts.push(`<h3>Top-k accuracy</h3><div class="chart" id="topk-chart">${inlineChart(topkChart(content.runs), 'topk')}</div>`);
    parts.push(`<table id="retrieval-table" class="sortable"><thead><tr><th scope="col">run</th>${head}<th scope="col">mAP</th><th scope="col">queries</th></tr></thead>\n<tbody>\n${rows}\n</tbody></table>`);
  }
  if (content.examples.length) {
    parts.push('<h3>Examples</h3><p class="note">Each row: the query, then its nearest gallery images, best first; a green frame marks an image of the same item.</p>');
    for (const example of content.examples) parts.push(retrievalExampleHtml(example, src));
  }
  return section('retrieval', parts.join('\n'));
}

/** Fields of an epoch record that are bookkeeping, not curves. */
const NOT_CURVES = new Set(['epoch', 'lr', 'seconds', 'validationImages', 'validationSeconds', 'baselinePrecision1', 'step']);
/** Throughput fields (samples/s, images/s): hundreds, so on the metrics' 0..1 axis they would flatten every curve. */
const THROUGHPUT = /PerSecond$|throughput/i;

export interface TrainingPanel {
  id: 'loss' | 'validation' | 'throughput';
  yLabel: string;
  /** Epoch-log fields plotted in this panel. */
  keys: string[];
}

/** The panels of one training log: losses, validation metrics (0..1 scores), and throughput on its own axis. */
export function trainingPanels(epochs: Array<Record<string, number>>): TrainingPanel[] {
  const keys = [...new Set(epochs.flatMap((e) => Object.keys(e)))].filter((k) => !NOT_CURVES.has(k));
  const throughput = keys.filter((k) => THROUGHPUT.test(k));
  const loss = keys.filter((k) => !THROUGHPUT.test(k) && /loss/i.test(k));
  const metrics = keys.filter((k) => !THROUGHPUT.test(k) && !/loss/i.test(k));
  const panels: TrainingPanel[] = [
    { id: 'loss', yLabel: 'loss', keys: loss },
    { id: 'validation', yLabel: 'value', keys: metrics },
    { id: 'throughput', yLabel: 'per second', keys: throughput },
  ];
  return panels.filter((p) => p.keys.length > 0);
}

function trainingSection(logs: TrainingLog[]): string {
  const parts: string[] = [];
  for (const [index, log] of logs.entries()) {
    const panels = trainingPanels(log.epochs);
    const lossCount = panels.find((p) => p.id === 'loss')?.keys.length ?? 0;
    const curve = (key: string, i: number): Series => ({
      name: key,
      points: log.epochs.filter((e) => e[key] !== undefined).map((e) => [e.epoch, e[key]] as [number, number]),
      kind: 'line+points',
      color: PALETTE[i % PALETTE.length],
      dashed: /^val/i.test(key) && lossCount > 1 ? true : undefined,
    });
    const epochs = log.epochs.map((e) => e.epoch);
    const x = { label: 'epoch', min: Math.min(...epochs, 0), max: Math.max(...epochs, 1) };
    const charts = panels.map((panel) => {
      const svg = renderChartSvg({ title: `${log.name}: ${panel.id}`, series: panel.keys.map(curve), x, y: { label: panel.yLabel }, width: 560, height: 340 });
      return `<div class="chart" data-panel="${panel.id}">${inlineChart(svg, `${panel.id}-${index}`)}</div>`;
    });
    parts.push(`<div class="training-log" data-name="${escapeHtml(log.name)}"><h3>${escapeHtml(log.name)} <span class="count">${log.epochs.length} epochs</span></h3><div class="charts">${charts.join('')}</div></div>`);
  }
  return section('training', parts.join('\n'));
}

/** What a RISE score means: a sizenet image model's single output is P(size issue). */
function riseScoreName(className: string): string {
  return className === '0' ? 'P(size issue)' : `P(${className})`;
}

function riseSection(content: NonNullable<ReportContent['rise']>, src: ImageSource): string {
  const pairs = content.records
    .map(
      (r) =>
        `<div class="rise-pair"><figure class="card">${image(src, r.image, r.id)}<figcaption>${escapeHtml(r.id)}</figcaption></figure><figure class="card">${image(src, r.overlay, `${r.id} saliency`, 'thumb overlay')}<figcaption><span class="score">${escapeHtml(riseScoreName(r.className))} = ${r.score.toFixed(3)}</span></figcaption></figure></div>`,
    )
    .join('\n');
  return section('rise', `<p class="summary">Each photo beside its RISE saliency map (red: the pixels that most raise the score when kept).</p><div class="grid rise">\n${pairs}\n</div>`);
}

function attentionSection(content: NonNullable<ReportContent['attention']>, src: ImageSource): string {
  const figures = attentionFigures(content.records, (path, alt) => image(src, path, alt), escapeHtml);
  return section('attention', `<p class="summary">Each photo with the crops the spatial transformer chose (numbered by attention step), and what the model predicted.</p><div class="grid attention">\n${figures}\n</div>`);
}

/** Each photo with its located box drawn over it, placed in percent of the image so it scales with the thumbnail. */
function boxesSection(content: NonNullable<ReportContent['boxes']>, src: ImageSource): string {
  const pct = (v: number, side: number) => ((100 * v) / side).toFixed(2);
  const cards = content.records
    .map((r) => {
      const caption = `<figcaption>${escapeHtml(r.id)}${r.score !== null ? ` <span class="score">${r.score.toFixed(2)}</span>` : ''}</figcaption>`;
      const href = src(r.image);
      if (!r.size || href === null) return `<figure class="card">${image(src, null, r.id)}${caption}</figure>`;
      const { x, y, w, h } = r.box;
      const { width, height } = r.size;
      const style = `left:${pct(x, width)}%;top:${pct(y, height)}%;width:${pct(w, width)}%;height:${pct(h, height)}%`;
      return `<figure class="card located"><div class="boxed" style="aspect-ratio:${width}/${height}"><img src="${escapeHtml(href)}" alt="${escapeHtml(r.id)}" loading="lazy"><span class="located-box" title="x ${x}, y ${y}, w ${w}, h ${h}" style="${style}"></span></div>${caption}</figure>`;
    })
    .join('\n');
  const shownNote = content.total > content.records.length ? `${content.records.length} of ${content.total} images` : `${content.records.length} images`;
  return section('boxes', `<p class="summary">${shownNote} with the garment box locate found (red) and its foreground score.</p><div class="grid">\n${cards}\n</div>`);
}

function tsneSection(content: NonNullable<ReportContent['tsne']>, src: ImageSource): string {
  const { points } = content;
  let minX = Infinity, maxX = -Infinity, minY = Infinity, maxY = -Infinity;
  for (const p of points) {
    minX = Math.min(minX, p.x);
    maxX = Math.max(maxX, p.x);
    minY = Math.min(minY, p.y);
    maxY = Math.max(maxY, p.y);
  }
  const spanX = maxX - minX || 1;
  const spanY = maxY - minY || 1;
  const labels = [...new Set(points.map((p) => p.label).filter((l): l is string => l !== null))].sort();
  const colourOf = (label: string | null) => (label === null ? '#999' : PALETTE[labels.indexOf(label) % PALETTE.length]);
  // Percent positions keep the map inside its square box at any width; y grows upwards.
  const marks = points
    .map((p) => {
      const left = (((p.x - minX) / spanX) * 96).toFixed(2);
      const top = (((maxY - p.y) / spanY) * 96).toFixed(2);
      const title = p.label !== null ? `${p.id} (${p.label})` : p.id;
      const href = src(p.image);
      const style = `left:${left}%;top:${top}%;border-color:${colourOf(p.label)}`;
      return href !== null
        ? `<img class="tsne-point" src="${escapeHtml(href)}" alt="${escapeHtml(title)}" title="${escapeHtml(title)}" style="${style}" loading="lazy">`
        : `<span class="tsne-dot" title="${escapeHtml(title)}" style="${style};background:${colourOf(p.label)}"></span>`;
    })
    .join('\n');
  const legend = labels.length
    ? `<ul class="legend">${labels.map((l) => `<li><span class="swatch" style="background:${colourOf(l)}"></span>${escapeHtml(l)}</li>`).join('')}</ul>`
    : '';
  const shownNote = content.total > points.length ? `${points.length} of ${content.total} points shown` : `${points.length} points`;
  return section('tsne', `<p class="summary">${shownNote}; nearby images have nearby features. Frames are coloured by label.</p>${legend}<div class="tsne-map" id="tsne-map">\n${marks}\n</div>`);
}

export const STYLE = `
body{font-family:"DejaVu Sans",Helvetica,Arial,sans-serif;margin:0 auto;max-width:1200px;padding:0 16px 48px;color:#111;background:#fafafa}
h1{font-size:1.6em;margin:20px 0 4px}h2{border-bottom:2px solid #0072B2;padding-bottom:4px;margin-top:36px}
nav ul{list-style:none;padding:0;display:flex;flex-wrap:wrap;gap:12px}nav a{color:#0072B2}
.inputs{font-size:.85em;color:#444}.inputs code{background:#eee;padding:1px 4px}
.summary,.note{color:#333}.count{font-weight:normal;color:#666;font-size:.8em}
table{border-collapse:collapse;margin:8px 0 16px;background:#fff}th,td{border:1px solid #ccc;padding:4px 8px;text-align:right}
td:first-child,th:first-child{text-align:left}thead th{cursor:pointer;background:#eef3f8;user-select:none}
thead th[aria-sort=ascending]::after{content:" \\25B2"}thead th[aria-sort=descending]::after{content:" \\25BC"}
table.confusion td{min-width:2.5em;text-align:center}table.confusion td.diagonal{font-weight:bold}
.grid{display:flex;flex-wrap:wrap;gap:8px}.card{margin:0;background:#fff;border:2px solid #ddd;padding:4px;width:136px;font-size:.75em}
.card figcaption{overflow-wrap:anywhere}.card .predicted{display:block;color:#D55E00}
.thumb{width:128px;height:128px;object-fit:contain;display:block;background:#f0f0f0}
.missing{display:flex;align-items:center;justify-content:center;color:#888;font-size:.9em}
.retrieval-example{display:flex;gap:12px;align-items:flex-start;margin:8px 0;padding:8px;background:#fff;border:1px solid #e5e5e5}
.retrieval-example .query{border-color:#0072B2}.neighbors{display:flex;flex-wrap:wrap;gap:6px}
.neighbors .card{width:104px}.neighbors .thumb{width:96px;height:96px}
.neighbor.correct{border-color:#009E73;background:#e8f6f0}.neighbor.wrong{border-color:#eee}
.rise-pair{display:flex;gap:4px;padding:4px;background:#fff;border:1px solid #e5e5e5}.score{font-weight:bold}
.boxed{position:relative;width:128px;margin:auto}.boxed img{display:block;width:100%;height:100%}
.located-box{position:absolute;box-sizing:border-box;border:2px solid #D55E00}
.charts{display:flex;flex-wrap:wrap;gap:12px}.chart svg{max-width:100%;height:auto}
.tsne-map{position:relative;width:100%;max-width:1000px;aspect-ratio:1/1;background:#fff;border:1px solid #ccc}
.tsne-point{position:absolute;width:4%;height:4%;object-fit:cover;border:1px solid;box-sizing:border-box}
.tsne-point:hover{transform:scale(3);z-index:10;position:absolute}
.tsne-dot{position:absolute;width:1%;height:1%;border-radius:50%}
.legend{list-style:none;padding:0;display:flex;flex-wrap:wrap;gap:12px;font-size:.85em}.swatch{display:inline-block;width:12px;height:12px;margin-right:4px;vertical-align:middle}
`;

// Shared with the review app. Sorts a table's body rows by the clicked column (numbers as numbers, else text); a second click reverses.
export const SCRIPT = `
(function(){
  function key(cell){var v=cell.getAttribute('data-sort');if(v===null)v=cell.textContent;var n=Number(v);return v!==''&&!isNaN(n)?n:v.toLowerCase();}
  document.querySelectorAll('table.sortable').forEach(function(table){
    var heads=table.tHead.rows[0].cells;
    Array.prototype.forEach.call(heads,function(th,col){
      th.addEventListener('click',function(){
        var body=table.tBodies[0];var rows=Array.prototype.slice.call(body.rows);
        var dir=th.getAttribute('aria-sort')==='ascending'?-1:1;
        Array.prototype.forEach.call(heads,function(h){h.removeAttribute('aria-sort');});
        th.setAttribute('aria-sort',dir===1?'ascending':'descending');
        rows.sort(function(a,b){var x=key(a.cells[col]),y=key(b.cells[col]);if(typeof x!==typeof y){x=String(x);y=String(y);}return (x<y?-1:x>y?1:0)*dir;});
        rows.forEach(function(r){body.appendChild(r);});
      });
    });
  });
})();
`;

/** The whole page; sections appear in a fixed order and only when their input was given. */
export function buildReportPage(content: ReportContent, src: ImageSource): string {
  const sections: Array<[(typeof SECTION_IDS)[number], string]> = [];
  if (content.classifier) sections.push(['classification', classificationSection(content.classifier)]);
  if (content.falseNegatives && content.falseNegatives.records.length) sections.push(['false-negatives', falseNegativesSection(content.falseNegatives, src)]);
  if (content.retrieval && (content.retrieval.runs.length || content.retrieval.examples.length)) sections.push(['retrieval', retrievalSection(content.retrieval, src)]);
  if (content.training && content.training.some((l) => l.epochs.length)) sections.push(['training', trainingSection(content.training.filter((l) => l.epochs.length))]);
  if (content.rise && content.rise.records.length) sections.push(['rise', riseSection(content.rise, src)]);
  if (content.attention && content.attention.records.length) sections.push(['attention', attentionSection(content.attention, src)]);
  if (content.boxes && content.boxes.records.length) sections.push(['boxes', boxesSection(content.boxes, src)]);
  if (content.tsne && content.tsne.points.length) sections.push(['tsne', tsneSection(content.tsne, src)]);
  const nav = sections.map(([id]) => `<li><a href="#${id}">${escapeHtml(SECTION_TITLES[id])}</a></li>`).join('');
  const inputs = content.inputs.map((i) => `<li>${escapeHtml(i.what)}: <code>${escapeHtml(i.path)}</code></li>`).join('');
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'">
<title>${escapeHtml(content.title)}</title>
<style>${STYLE}${ATTENTION_STYLE}</style>
</head>
<body>
<header><h1>${escapeHtml(content.title)}</h1>
${sections.length ? `<nav><ul>${nav}</ul></nav>` : '<p>No inputs were given: nothing to show.</p>'}
${inputs ? `<details class="inputs"><summary>Built from ${content.inputs.length} input${content.inputs.length === 1 ? '' : 's'}</summary><ul>${inputs}</ul></details>` : ''}
</header>
<main>
${sections.map(([, html]) => html).join('\n')}
</main>
<script>${SCRIPT}</script>
</body>
</html>
`;
}
