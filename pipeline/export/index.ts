/**
 * The `export` stage's public API: a finished corpus as Parquet (Hugging Face `datasets`) or WebDataset shards with
 * a dataset card. The other files of this folder are its parts.
 */
export {
  DEFAULT_SHARD_ROWS, EXPORT_FORMATS, EXPORT_FORMAT_ID, EXPORT_FORMAT_VERSION, EXPORT_INFO_FILE, defaultExportDir, exportCorpus, planExportShards,
  splitPattern, type ExportFormat, type ExportOptions, type ExportSummary, type ExportedFile,
} from './run.ts';
export { IMAGE_COLUMN, LABEL_COLUMN, exportColumns, hfFeatures, hfMetadata } from './features.ts';
export { PARQUET_ROW_GROUP_ROWS } from './parquet.ts';
export { TAR_HEADER, sampleKey } from './webdataset.ts';
export { fullRow, loadExportSource, type ExportRow } from './source.ts';
export { datasetCard, licenceOf } from './card.ts';
