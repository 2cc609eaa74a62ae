// The report: readers of other commands' outputs, the page builder and the directory writer.
export {
  parseClassifierEvaluation,
  parseRetrievalRun,
  parseTrainingLog,
  readCatalogue,
  readClassifierEvaluation,
  readFalseNegatives,
  imageSize,
  readKnn,
  readLocatedBoxes,
  readRetrievalRun,
  readRise,
  readTrainingLog,
  readTsne,
} from './inputs.js';
export type { CatalogueEntry, ClassRow, ClassifierEvaluation, FalseNegativeRecord, KnnRecord, LocatedBox, RetrievalRun, RiseRecord, TrainingLog, TsnePoint } from './inputs.js';
export { SECTION_IDS, buildReportPage, escapeHtml } from './page.js';
export type { ImageSource, ReportContent, RetrievalExample } from './page.js';
export { retrievalExamples, spreadSample } from './select.js';
export { readAttention, type AttentionRecord, type CropBox } from './attention.js';
export { IMAGE_DIR, REPORT_MANIFEST, imagesOf, writeReport } from './write.js';
export type { ReportSummary, ReportWriteOptions } from './write.js';
