/** The reports' public surface: what the CLI and the tests use. */
export { writeReport, renderReport, type WriteReportOptions, type ReportFiles, type RenderedReport } from './write.ts';
export { buildReportModel, type ReportModel, type ScenarioReport, type CostProfile } from './model.ts';
export { analyseSensitivity, sampleProfiles, type SensitivityResult, type Flip } from './sensitivity.ts';
export { latencyComparisons, type LatencyComparison } from './comparisons.ts';
export { groupRuns, type ScenarioRuns } from './runs.ts';
export { pricePrimitives, pricePrimitivesByLayer, usageOf, flatPrices, priceUsage } from './price.ts';
export { sweepParameters, type SweepParameter } from './parameters.ts';
export { createProgress, type Progress } from './progress.ts';
export { CSP } from './html.ts';
