// The review app's pages: the report's F1 table, confusion matrix, style and sortable tables
// (src/lib/report/page.ts), plus what a reviewer acts on: false negatives and false positives per
// class, the needs-review queue, an image's page and the history, each with retag and undo.
import { classificationSection, escapeHtml, retrievalExampleHtml, SCRIPT as SORTABLE_SCRIPT, STYLE as REPORT_STYLE } from '../report/page.js';
import type { ClassifierEvaluation } from '../report/inputs.js';
import type { MultiClassReport } from '../metrics/classification.js';
import type { HistoryRow, ImageRow, RetrievalQueryRow, RetrievalRunRow, RunRow } from './db.js';
import type { Mistake } from './analysis.js';

export interface PageFrame {
  title: string;
  token: string;
  user: string;
  labels: string[];
}

const STYLE = `${REPORT_STYLE}
.top a{margin-right:14px}.retag{position:sticky;top:0;background:#fafafa;padding:8px 0;z-index:5;border-bottom:1px solid #ddd}
.card.selected{border-color:#0072B2;background:#e8f0fa}.card:focus-within{outline:3px solid #E69F00}
.card .prob,.card .label{display:block;color:#555}.status{margin-left:10px;color:#009E73}.status.error{color:#D55E00}
.big{max-width:320px;max-height:320px;background:#f0f0f0}
.neighbor.wrong{border-color:#D55E00}.retrieval-example:focus-within{outline:3px solid #E69F00}
`;

// Retag and undo through fetch with the session token in a header: another site's page cannot set
// that header without a CORS preflight this server never grants. j/k move between cards, x selects,
// a selects all (or none), u undoes the last batch this tab made (kept in sessionStorage across the reload).
const APP_SCRIPT = `
(function(){
  var token=document.querySelector('meta[name=atelier-token]').content;
  var who=document.getElementById('who');
  if(who){try{var saved=localStorage.getItem('atelier-who');if(saved)who.value=saved;}catch(e){}
    who.addEventListener('change',function(){try{localStorage.setItem('atelier-who',who.value);}catch(e){}});}
  function status(text,bad){var s=document.getElementById('status');if(s){s.textContent=text;s.className='status'+(bad?' error':'');}}
  function post(url,body){
    body.who=who?who.value:'';
    return fetch(url,{method:'POST',headers:{'Content-Type':'application/json','X-Atelier-Token':token},body:JSON.stringify(body)})
      .then(function(r){return r.json().then(function(j){if(!r.ok)throw new Error(j.error||r.statusText);return j;});});
  }
  document.querySelectorAll('form.retag').forEach(function(form){
    form.addEventListener('submit',function(e){
      e.preventDefault();
      var ids=Array.prototype.map.call(document.querySelectorAll('input.pick:checked'),function(c){return c.value;});
      var fixed=form.getAttribute('data-ids');if(fixed)ids=JSON.parse(fixed);
      if(!ids.length){status('select images first',true);return;}
      post('/api/retag',{ids:ids,label:form.querySelector('select').value})
        .then(function(j){
          try{if(j.changed.length)sessionStorage.setItem('atelier-last-batch',String(j.batch));}catch(e){}
          status('changed '+j.changed.length+' (batch '+j.batch+')');setTimeout(function(){location.reload();},150);},function(err){status(err.message,true);});
    });
    var last=null;try{last=sessionStorage.getItem('atelier-last-batch');}catch(e){}
    if(last){var u=document.createElement('button');u.type='button';u.className='undo';u.id='undo-last';u.setAttribute('data-batch',last);
      u.textContent='undo batch '+last+' (u)';form.insertBefore(u,document.getElementById('status'));}
  });
  document.querySelectorAll('button.undo').forEach(function(b){
    b.addEventListener('click',function(){var batch=b.getAttribute('data-batch');post('/api/undo',{batch:Number(batch)})
      .then(function(){try{if(sessionStorage.getItem('atelier-last-batch')===batch)sessionStorage.removeItem('atelier-last-batch');}catch(e){}location.reload();},function(err){status(err.message,true);});});
  });
  var cards=Array.prototype.slice.call(document.querySelectorAll('.card input.pick'));
  function count(){var n=cards.filter(function(c){return c.checked;}).length;var s=document.getElementById('selected-count');if(s)s.textContent=n?n+' selected':'';}
  cards.forEach(function(c){c.addEventListener('change',function(){c.closest('.card').classList.toggle('selected',c.checked);count();});});
  var rows=Array.prototype.slice.call(document.querySelectorAll('.retrieval-example .query a'));
  document.addEventListener('keydown',function(e){
    if(e.ctrlKey||e.metaKey||e.altKey||(e.target&&(e.target.tagName==='SELECT'||e.target.type==='text')))return;
    var list=cards.length?cards:rows;
    var i=list.indexOf(document.activeElement);
    if(e.key==='j'&&list.length){list[Math.min(i+1,list.length-1)].focus();e.preventDefault();}
    else if(e.key==='k'&&list.length){list[Math.max(i-1,0)].focus();e.preventDefault();}
    else if(e.key==='x'&&i>=0&&cards.length){cards[i].click();e.preventDefault();}
    else if(e.key==='a'&&cards.length){var all=cards.some(function(c){return !c.checked;});
      cards.forEach(function(c){if(c.checked!==all)c.click();});e.preventDefault();}
    else if(e.key==='u'){var u=document.getElementById('undo-last');if(u){u.click();e.preventDefault();}}
  });
})();
`;

function fixed(v: number | null, digits = 3): string {
  return v === null ? '–' : v.toFixed(digits);
}

export function imageUrl(id: string): string {
  return `/img/${encodeURIComponent(id)}`;
}

function labelSelect(labels: string[], selected?: string): string {
  return `<select name="label" aria-label="new label">${labels.map((l) => `<option${l === selected ? ' selected' : ''}>${escapeHtml(l)}</option>`).join('')}</select>`;
}

/** The retag bar: applies to the checked cards, or to `ids` when given (the image page). */
function retagForm(frame: PageFrame, ids?: string[], selected?: string): string {
  const data = ids ? ` data-ids="${escapeHtml(JSON.stringify(ids))}"` : '';
  const count = ids ? '' : ' <span id="selected-count" class="note" aria-live="polite"></span>';
  return `<form class="retag" id="retag"${data}>${ids ? 'Retag as' : 'Retag the selected images as'} ${labelSelect(frame.labels, selected)} <button type="submit">retag</button>${count} <span id="status" class="status" role="status"></span></form>`;
}

export function layout(frame: PageFrame, body: string): string {
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="atelier-token" content="${escapeHtml(frame.token)}">
<title>${escapeHtml(frame.title)}</title>
<style>${STYLE}</style>
</head>
<body>
<header><h1>${escapeHtml(frame.title)}</h1>
<nav class="top"><a href="/">F1 by class</a><a href="/queue">needs review</a><a href="/retrieval">retrieval</a><a href="/history">history</a>
<label>you are <input id="who" type="text" size="12" value="${escapeHtml(frame.user)}"></label></nav>
</header>
<main>
${body}
</main>
<script>${SORTABLE_SCRIPT}</script>
<script>${APP_SCRIPT}</script>
</body>
</html>
`;
}

function runPicker(runs: RunRow[], current: number, path: string): string {
  if (runs.length < 2) return '';
  return `<p>Model: ${runs.map((r) => (r.id === current ? `<strong>${escapeHtml(r.name)}</strong>` : `<a href="${path}?run=${r.id}">${escapeHtml(r.name)}</a>`)).join(' · ')}</p>`;
}

export function evaluationOf(name: string, report: MultiClassReport): ClassifierEvaluation {
  return {
    name, accuracy: report.accuracy, macroF1: report.macroF1, weightedF1: report.weightedF1,
    classes: report.perClass.map((c) => ({ label: c.label, precision: c.precision, recall: c.recall, f1: c.f1, support: c.support })),
    confusion: { labels: report.labels, matrix: report.confusion },
  };
}

/** The F1 view: the report's table and matrix, then per class its mistakes and F1 before/after. */
export function f1Page(frame: PageFrame, runs: RunRow[], run: RunRow | null, report: MultiClassReport | null, previous: MultiClassReport | null, split: string | null = null): string {
  if (!run || !report) return layout(frame, '<p>No predictions imported yet: run <code>atelier review import --predictions</code>.</p>');
  const rows = report.perClass
    .map((c, i) => {
      const fn = report.confusion[i].reduce((a, b) => a + b, 0) - report.confusion[i][i];
      const fp = report.confusion.reduce((a, row) => a + row[i], 0) - report.confusion[i][i];
      const before = previous?.perClass.find((p) => p.label === c.label)?.f1 ?? null;
      const delta = before === null ? null : c.f1 - before;
      const href = `/class/${encodeURIComponent(c.label)}?run=${run.id}${split ? `&split=${split}` : ''}`;
      return `<tr><td data-sort="${escapeHtml(c.label)}"><a href="${href}">${escapeHtml(c.label)}</a></td><td data-sort="${fn}"><a class="fn-link" href="${href}#false-negatives">${fn}</a></td><td data-sort="${fp}"><a href="${href}#false-positives">${fp}</a></td><td data-sort="${before ?? ''}">${fixed(before)}</td><td data-sort="${c.f1}">${fixed(c.f1)}</td><td data-sort="${delta ?? ''}">${delta === null ? '–' : (delta >= 0 ? '+' : '') + delta.toFixed(3)}</td></tr>`;
    })
    .join('\n');
  const changes = `<section id="classes"><h2>Mistakes by class</h2><p class="note">Against the labels as they are now${previous ? '; F1 before is the previous model scored against the same labels' : ''}.</p>
<table id="class-table" class="sortable"><thead><tr><th scope="col">class</th><th scope="col">false negatives</th><th scope="col">false positives</th><th scope="col">F1 before</th><th scope="col">F1 now</th><th scope="col">change</th></tr></thead><tbody>
${rows}
</tbody></table></section>`;
  const splits = `<p id="split-picker">Split: ${[null, 'train', 'val', 'test'].map((x) => (x === split ? `<strong>${x ?? 'all'}</strong>` : `<a href="/?run=${run.id}${x ? `&split=${x}` : ''}">${x ?? 'all'}</a>`)).join(' · ')}</p>`;
  return layout(frame, `${runPicker(runs, run.id, '/')}${splits}${classificationSection(evaluationOf(`${run.name}${split ? ` (${split})` : ''}`, report))}\n${changes}`);
}

function card(m: Mistake): string {
  const probs = m.predictedProbability !== null ? `<span class="prob">P(${escapeHtml(m.predicted)}) ${fixed(m.predictedProbability, 2)} · P(${escapeHtml(m.label)}) ${fixed(m.labelProbability, 2)}</span>` : '';
  return `<figure class="card" data-id="${escapeHtml(m.id)}"><label><input class="pick" type="checkbox" value="${escapeHtml(m.id)}"> select</label><a href="/image/${encodeURIComponent(m.id)}"><img class="thumb" src="${imageUrl(m.id)}" alt="${escapeHtml(m.id)}" loading="lazy"></a><figcaption><span class="id">${escapeHtml(m.id)}</span> <span class="split">(${escapeHtml(m.split)})</span><span class="label">label: ${escapeHtml(m.label)}</span><span class="predicted">predicted: ${escapeHtml(m.predicted)}</span>${probs}</figcaption></figure>`;
}

export function classPage(frame: PageFrame, label: string, falseNegatives: Mistake[], falsePositives: Mistake[], limit: number): string {
  const grid = (items: Mistake[]) => (items.length ? `<div class="grid">${items.slice(0, limit).map(card).join('\n')}</div>${items.length > limit ? `<p class="note">${limit} of ${items.length} shown</p>` : ''}` : '<p>none</p>');
  return layout(
    { ...frame, title: `${frame.title}: ${label}` },
    `${retagForm(frame, undefined, label)}<p class="note">Select several images to retag them as one batch (undone as one). Keys: j/k move, x selects, a selects all, u undoes the last batch.</p>
<section id="false-negatives"><h2>False negatives: labelled ${escapeHtml(label)}, predicted otherwise <span class="count">${falseNegatives.length}</span></h2>${grid(falseNegatives)}</section>
<section id="false-positives"><h2>False positives: predicted ${escapeHtml(label)}, labelled otherwise <span class="count">${falsePositives.length}</span></h2>${grid(falsePositives)}</section>`,
  );
}

export function queuePage(frame: PageFrame, queue: Mistake[], limit: number): string {
  return layout(
    { ...frame, title: `${frame.title}: needs review` },
    `${retagForm(frame)}<p class="summary">${queue.length} images whose label the model disagrees with, the most confident disagreement first (P(predicted) − P(label)). Keys: j/k move, x selects, a selects all, u undoes the last batch.</p>
<div class="grid" id="queue">${queue.slice(0, limit).map(card).join('\n')}</div>`,
  );
}

function historyTable(rows: HistoryRow[]): string {
  const undone = new Set(rows.filter((r) => r.undoes !== null).map((r) => r.undoes));
  const body = rows
    .map((r) => `<tr><td data-sort="${r.seq}">${r.seq}</td><td data-sort="${r.batch}">${r.batch}${r.undoes !== null ? ` (undoes ${r.undoes})` : ''}</td><td><a href="/image/${encodeURIComponent(r.image_id)}">${escapeHtml(r.image_id)}</a></td><td>${escapeHtml(r.old_label)}</td><td>${escapeHtml(r.new_label)}</td><td>${escapeHtml(r.at)}</td><td>${escapeHtml(r.who)}</td><td>${r.undoes === null && !undone.has(r.batch) ? `<button class="undo" type="button" data-batch="${r.batch}">undo batch ${r.batch}</button>` : ''}</td></tr>`)
    .join('\n');
  return `<table id="history-table" class="sortable"><thead><tr><th scope="col">#</th><th scope="col">batch</th><th scope="col">image</th><th scope="col">old</th><th scope="col">new</th><th scope="col">when</th><th scope="col">who</th><th scope="col"></th></tr></thead><tbody>\n${body}\n</tbody></table>`;
}

export function historyPage(frame: PageFrame, rows: HistoryRow[]): string {
  return layout({ ...frame, title: `${frame.title}: history` }, `<span id="status" class="status" role="status"></span>${rows.length ? historyTable(rows) : '<p>No changes yet.</p>'}`);
}

export function imagePage(
  frame: PageFrame,
  image: ImageRow,
  predictions: Array<{ name: string; label: string; probs: Record<string, number> | null }>,
  rows: HistoryRow[],
  neighbors: Array<{ rank: number; neighbor_id: string; score: number | null; label: string | null }> = [],
  overlays: Array<{ class: string; score: number }> = [],
  retrieval: Array<{ run: number; name: string; first_rank: number | null; ap: number }> = [],
): string {
  const near = neighbors
    .map((n) => `<figure class="card neighbor">${n.label !== null ? `<a href="/image/${encodeURIComponent(n.neighbor_id)}"><img class="thumb" src="${imageUrl(n.neighbor_id)}" alt="${escapeHtml(n.neighbor_id)}" loading="lazy"></a>` : ''}<figcaption>${n.rank}. ${escapeHtml(n.neighbor_id)}${n.score !== null ? ` (${n.score.toFixed(3)})` : ''}${n.label !== null ? `<span class="label">${escapeHtml(n.label)}</span>` : ''}</figcaption></figure>`)
    .join('');
  const rise = overlays
    .map((o) => `<figure class="card"><img class="thumb" src="/overlay/${encodeURIComponent(image.id)}/${encodeURIComponent(o.class)}" alt="RISE ${escapeHtml(o.class)}"><figcaption>RISE P(${escapeHtml(o.class)}) = ${o.score.toFixed(3)}</figcaption></figure>`)
    .join('');
  const preds = predictions
    .map((p) => {
      const top = p.probs ? Object.entries(p.probs).sort((a, b) => b[1] - a[1]).slice(0, 5).map(([l, v]) => `${escapeHtml(l)} ${v.toFixed(3)}`).join(', ') : '';
      return `<tr><td>${escapeHtml(p.name)}</td><td>${escapeHtml(p.label)}</td><td>${top}</td></tr>`;
    })
    .join('');
  return layout(
    { ...frame, title: `${frame.title}: ${image.id}` },
    `<div class="image-page"><img class="big" src="${imageUrl(image.id)}" alt="${escapeHtml(image.id)}">
<p>label <strong id="current-label">${escapeHtml(image.label)}</strong> · split <strong id="split">${escapeHtml(image.split)}</strong> · group ${escapeHtml(image.grp)}</p>
${retagForm(frame, [image.id], image.label)}
<h2>Predictions</h2>${preds ? `<table><thead><tr><th>model</th><th>predicted</th><th>top probabilities</th></tr></thead><tbody>${preds}</tbody></table>` : '<p>none</p>'}
${rise ? `<h2>RISE</h2><div class="grid" id="rise">${rise}</div>` : ''}
${near ? `<h2>Nearest neighbours</h2><div class="grid" id="neighbors">${near}</div>` : ''}
${retrieval.length ? `<h2>As a retrieval query</h2><ul id="retrieval-links">${retrieval.map((r) => `<li><a href="/retrieval?run=${r.run}#q-${encodeURIComponent(image.id)}">${escapeHtml(r.name)}</a>: first hit at ${r.first_rank ?? 'none'}, AP ${r.ap.toFixed(3)}</li>`).join('')}</ul>` : ''}
<h2>History</h2>${rows.length ? historyTable(rows) : '<p>No changes yet.</p>'}</div>`,
  );
}

/** Retrieval examples of one run, the worst queries first: each query with its neighbours marked hit ✓ or miss ✗. */
export function retrievalPage(frame: PageFrame, runs: RetrievalRunRow[], run: RetrievalRunRow | null, queries: RetrievalQueryRow[]): string {
  const title = `${frame.title}: retrieval`;
  if (!run) return layout({ ...frame, title }, '<p>No retrieval examples imported yet: run <code>atelier review import --knn knn.ndjson --partition partition --per-query per-query.ndjson</code>.</p>');
  const picker = runs.length > 1 ? `<p>Run: ${runs.map((r) => (r.id === run.id ? `<strong>${escapeHtml(r.name)}</strong>` : `<a href="/retrieval?run=${r.id}">${escapeHtml(r.name)}</a>`)).join(' · ')}</p>` : '';
  const summary = `<p class="summary" id="retrieval-summary">${escapeHtml(run.name)}: ${run.queries} queries, mAP ${fixed(run.mean_ap)}, ${run.with_hit} with a hit. The worst queries first (lowest average precision, then the latest first hit); a green frame and ✓ mark a neighbour of the query's item, ✗ one of another item. Keys: j/k move between queries.</p>`;
  const src = (path: string | null) => path;
  const link = (id: string) => `/image/${encodeURIComponent(id)}`;
  const rows = queries.map((q) => {
    const example = {
      query: { id: q.image_id, image: imageUrl(q.image_id), item: q.item },
      neighbors: q.neighbors.map((n) => ({ id: n.neighbor_id, image: n.known ? imageUrl(n.neighbor_id) : null, score: n.score, correct: n.hit })),
    };
    const note = `label ${q.label} · first hit ${q.first_rank ?? 'none'} · AP ${q.ap.toFixed(3)}`;
    return retrievalExampleHtml(example, src, { link: (id) => (id === q.image_id || q.neighbors.some((n) => n.neighbor_id === id && n.known) ? link(id) : null), note, id: `q-${q.image_id}` });
  });
  const shown = queries.length < run.queries ? `<p class="note">${queries.length} of ${run.queries} shown</p>` : '';
  return layout({ ...frame, title }, `${picker}${summary}<div id="retrieval-examples">${rows.join('\n')}</div>${shown}`);
}
