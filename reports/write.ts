/**
 * The reports' entry point: builds the report model from the runs and writes report.txt,
 * report.md, report.json and report.html into one directory.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { InvalidateOption, RunResult } from '../scenarios/results.ts';
import { renderHtml } from './html.ts';
import { renderJson } from './json.ts';
import { renderMarkdown } from './markdown.ts';
import { buildReportModel, type CostProfile, type ReportModel } from './model.ts';
import { renderText } from './text.ts';

export interface WriteReportOptions {
  outDir: string;
  /** the cost table the runs were priced at, whose ranges are swept (default: DEFAULT_COSTS) */
  profile?: CostProfile;
  /** the invalidation modes the runs used; informational, the runs carry their own */
  invalidate?: InvalidateOption | 'both';
  /** whole profiles sampled by the sensitivity grid (default 10,000) */
  samples?: number;
  /** seed of the grid's sampling (default 1) */
  seed?: number;
}

export interface ReportFiles {
  text: string;
  markdown: string;
  json: string;
  html: string;
}

export interface RenderedReport {
  model: ReportModel;
  text: string;
  markdown: string;
  json: string;
  html: string;
}

export function renderReport(runs: readonly RunResult[], opts: Omit<WriteReportOptions, 'outDir'> = {}): RenderedReport {
  const model = buildReportModel(runs, {
    ...(opts.profile ? { profile: opts.profile } : {}),
    ...(opts.samples !== undefined ? { samples: opts.samples } : {}),
    ...(opts.seed !== undefined ? { seed: opts.seed } : {}),
  });
  return { model, text: renderText(model), markdown: renderMarkdown(model), json: renderJson(model, runs), html: renderHtml(model) };
}

export function writeReport(runs: readonly RunResult[], opts: WriteReportOptions): { files: ReportFiles; model: ReportModel } {
  if (!runs.length) throw new Error('writeReport: no runs to report on');
  const r = renderReport(runs, opts);
  mkdirSync(opts.outDir, { recursive: true });
  const files: ReportFiles = {
    text: join(opts.outDir, 'report.txt'),
    markdown: join(opts.outDir, 'report.md'),
    json: join(opts.outDir, 'report.json'),
    html: join(opts.outDir, 'report.html'),
  };
  writeFileSync(files.text, r.text);
  writeFileSync(files.markdown, r.markdown);
  writeFileSync(files.json, r.json);
  writeFileSync(files.html, r.html);
  return { files, model: r.model };
}
