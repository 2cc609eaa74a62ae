// The report's attention section: each photo with the crops a spatial transformer chose drawn on
// it, from train-attention --predictions ({boxes: [...]}, one per recurrent step) or
// train-classifier --stn --predictions ({box}); boxes are image fractions {x, y, w, h}.
import { UsageError } from '../command.js';
import { describeJsonValue, readNdjson, requireId, requireObject } from '../io/ndjson.js';
import { resolveImagePath } from '../image/records.js';

export interface CropBox { x: number; y: number; w: number; h: number }

export interface AttentionRecord {
  id: string;
  image: string | null;
  boxes: CropBox[];
  /** What the model said: its label, or its best-scored labels. */
  caption: string;
  /** train, val or test, when the line says. */
  split: string | null;
}

/** Step colours (Okabe-Ito, as the charts): step k's crop is drawn in the k-th. */
const STEP_COLOURS = ['#D55E00', '#0072B2', '#009E73', '#CC79A7', '#E69F00', '#56B4E9'];

function boxOf(value: unknown, where: { file: string; line: number }, field: string): CropBox {
  const box = value as Record<string, unknown>;
  const ok = typeof value === 'object' && value !== null && ['x', 'y', 'w', 'h'].every((k) => typeof box[k] === 'number' && Number.isFinite(box[k]));
  if (!ok) throw new UsageError(`expected a box {x, y, w, h} of numbers, got ${describeJsonValue(value)}`, { ...where, field });
  return { x: box.x as number, y: box.y as number, w: box.w as number, h: box.h as number };
}

/** Prediction lines with `boxes` (a list) or `box`; the caption is `label`, else the labels scored >= 0.5 (else the best). */
export async function readAttention(path: string): Promise<AttentionRecord[]> {
  const out: AttentionRecord[] = [];
  for await (const { value, file, line } of readNdjson(path)) {
    const where = { file, line };
    const record = requireObject(value, where);
    const id = requireId(record, 'id', where);
    let boxes: CropBox[];
    if (Array.isArray(record.boxes)) boxes = record.boxes.map((b, i) => boxOf(b, where, `boxes[${i}]`));
    else if (record.box !== undefined) boxes = [boxOf(record.box, where, 'box')];
    else throw new UsageError('expected boxes (train-attention --predictions) or box (train-classifier --stn --predictions), got nothing (field missing)', { ...where, field: 'boxes' });
    let caption = typeof record.label === 'string' ? record.label : '';
    if (!caption && typeof record.scores === 'object' && record.scores !== null) {
      const scored = Object.entries(record.scores as Record<string, unknown>).filter((e): e is [string, number] => typeof e[1] === 'number').sort((a, b) => b[1] - a[1]);
      caption = (scored.filter(([, s]) => s >= 0.5).length ? scored.filter(([, s]) => s >= 0.5) : scored.slice(0, 1)).map(([l]) => l).join(', ');
    }
    const image = typeof record.image === 'string' && record.image !== '' ? resolveImagePath(record.image, path) : null;
    out.push({ id, image, boxes, caption, split: typeof record.split === 'string' ? record.split : null });
  }
  return out;
}

const percent = (v: number) => `${(100 * v).toFixed(2)}%`;

/**
 * One figure per record: the image with each crop as an outlined box over it, positioned in
 * percent of the image (the frame takes the image's own aspect), numbered by step.
 */
export function attentionFigures(records: AttentionRecord[], imageTag: (path: string | null, alt: string) => string, escape: (text: string) => string): string {
  return records
    .map((r) => {
      const crops = r.boxes
        .map((b, k) => `<span class="crop" data-step="${k + 1}" style="left:${percent(b.x)};top:${percent(b.y)};width:${percent(b.w)};height:${percent(b.h)};border-color:${STEP_COLOURS[k % STEP_COLOURS.length]}">${r.boxes.length > 1 ? k + 1 : ''}</span>`)
        .join('');
      return `<figure class="card attention-card"><div class="crop-frame">${imageTag(r.image, r.id)}${crops}</div><figcaption>${escape(r.id)}${r.caption ? `<span class="predicted">${escape(r.caption)}</span>` : ''}</figcaption></figure>`;
    })
    .join('\n');
}

export const ATTENTION_STYLE = `.crop-frame{position:relative;display:inline-block;line-height:0}.crop-frame .thumb{height:auto;object-fit:fill}
.crop{position:absolute;box-sizing:border-box;border:2px solid;font-size:10px;line-height:12px;color:#fff;text-shadow:0 0 2px #000;padding-left:1px}`;
