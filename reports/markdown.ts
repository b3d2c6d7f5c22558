/** report.md: the text report's content for the web, with tables and full call graphs. */
import { functionGraph } from '../sim/index.ts';
import type { StackName } from '../scenarios/results.ts';
import { STACKS } from '../scenarios/results.ts';
import { TABLE_METRICS } from './figures.ts';
import { fmtNum, fmtValue } from './format.ts';
import { invalidateModesSentence, type ReportModel, type ScenarioReport } from './model.ts';
import { MARK_LEGEND, SHARED_ERA, STACK_ERAS, markOf, scenarioMarks } from './provenance.ts';
import { QUALITY_DEFS } from './qualities.ts';
import { sensitivitySentences } from './sensitivity-words.ts';
import { toSpans } from './spans.ts';
import { flipCounts, latencyCell, qualityCell, qualityLower, robustnessCell } from './summary.ts';
import { verdictCell, verdictSentence } from './verdicts.ts';

const GRAPH_LINES = 80;

/** escapes what Markdown would read as table or inline syntax */
function md(s: string): string {
  return s.replace(/([\\|*_`[\]<>])/g, '\\$1');
}

function mdTable(head: readonly string[], rows: readonly (readonly string[])[], right: readonly number[] = []): string[] {
  const align = head.map((_, i) => (right.includes(i) ? '---:' : '---'));
  return [`| ${head.join(' | ')} |`, `| ${align.join(' | ')} |`, ...rows.map((r) => `| ${r.join(' | ')} |`)];
}

function stackHeader(s: ScenarioReport, stack: StackName): string {
  return md(`${stack}${markOf(s.provenance[stack])}${s.contended ? '~' : ''}`);
}

function graph(roots: Parameters<typeof toSpans>[0]): string[] {
  const lines = functionGraph(toSpans(roots), { annotate: true }).split('\n');
  const cut = lines.length > GRAPH_LINES ? [...lines.slice(0, GRAPH_LINES), `… ${lines.length - GRAPH_LINES} more lines (report.html shows the whole tree)`] : lines;
  return ['```', ...cut, '```'];
}

function scenarioSection(s: ScenarioReport): string[] {
  const out = [`## Scenario \`${s.key}\``, '', s.description.trim(), ''];
  out.push(
    `Seed ${s.seed}; invalidate \`${s.invalidate}\`; priced at profile \`${md(s.runProfile)}\`. ` +
      `Hardware state equal after both stacks: ${s.digestsEqual === null ? 'not compared' : s.digestsEqual ? 'yes' : '**no**'}.`,
    '',
  );
  for (const stack of STACKS) {
    const f = s.stacks[stack];
    if (!f) out.push(`- ${stack}: did not run.`);
    else if (!f.ok) out.push(`- ${stack} **failed**, figures not compared${f.error ? `: ${md(f.error)}` : ''}`);
    else if (f.failedSteps) out.push(`- ${stack}: ${f.failedSteps} of ${f.steps} steps not as expected`);
  }
  const rows = s.verdicts.map((v, i) => [
    TABLE_METRICS[i]!.from === 'totals' ? v.label : `${v.label} (max over steps)`,
    fmtValue(s.stacks.tunnel?.values[v.metric] ?? null, v.unit),
    fmtValue(s.stacks.iommufd?.values[v.metric] ?? null, v.unit),
    verdictCell(v),
  ]);
  out.push(...mdTable(['metric', stackHeader(s, 'tunnel'), stackHeader(s, 'iommufd'), 'lower'], rows, [1, 2]), '');
  out.push('**Verdicts**', '');
  if (s.verdicts.some((v) => v.lower === null)) out.push('- Not compared: a stack failed or did not run.');
  out.push(...s.verdicts.filter((v) => v.lower !== 'equal' && v.lower !== null).map((v) => `- ${md(verdictSentence(v))}`));
  const equal = s.verdicts.filter((v) => v.lower === 'equal').map((v) => v.label);
  if (equal.length) out.push(`- Equal on both stacks: ${equal.join(', ')}.`);
  if (s.latency) out.push('', '**Latency over the cost ranges (all steps)**', '', ...sensitivitySentences(s.latency, 20).map((l) => `- ${md(l)}`));
  if (s.operations.length) {
    out.push('', '**Per operation (re-priced)**', '');
    out.push(...mdTable(['steps', 'latency at defaults', 'cost ranges'], s.operations.map((r) => [r.scope, r.lowerAtDefault === 'equal' ? 'equal' : `${r.lowerAtDefault} lower`, md(robustnessCell(r))])));
  }
  const r = s.representative;
  out.push('', '**Call graphs**', '');
  if (!r) out.push('No call trees were kept for this run (ask the runner for traces).');
  else {
    out.push(`Step ${r.path} (\`${r.op}\`), ${r.reason}. Each entry line carries its layer and provenance.`, '');
    out.push(`tunnel, ${fmtValue(r.tunnelNs, 'ns')}:`, '', ...graph(r.tunnel), '', `iommufd, ${fmtValue(r.iommufdNs, 'ns')}:`, '', ...graph(r.iommufd));
  }
  return out;
}

function qualities(m: ReportModel): string[] {
  const out = ['## Design qualities', '', 'The 2021 thread\'s arguments (requirements-and-peers.md §(c)) as numbers, with what produces them.'];
  for (const def of QUALITY_DEFS) {
    const figs = m.qualities.filter((q) => q.quality === def.id);
    out.push('', `### ${def.id}: ${md(def.question)}`, '', `Arguments: ${md(def.arguments)}.`, '', `Measured as: ${md(def.definition)}.`, '');
    if (!figs.length) {
      out.push('No scenario in this run measures it.');
      continue;
    }
    const rows = figs.map((f) => [md(`${f.subject ?? f.scope}${f.projection ? ' *' : ''}`), qualityCell(f, f.tunnel), qualityCell(f, f.iommufd), qualityLower(f)]);
    out.push(...mdTable([figs[0]!.subject !== undefined ? 'subject' : 'scenario', 'tunnel', 'iommufd', 'lower'], rows, [1, 2]), '', 'Produced by:', '');
    for (const f of figs) {
      for (const stack of STACKS) {
        if (f.evidence[stack].length) out.push(`- ${md(f.subject ?? f.scope)}, ${stack}: ${f.evidence[stack].map((e) => `\`${e}\``).join('; ')}`);
      }
    }
  }
  return out;
}

function sensitivity(m: ReportModel): string[] {
  const { results, parameters, samples, seed } = m.sensitivity;
  const out = [
    '## Sensitivity',
    '',
    `Every latency comparison (${results.length}: each scenario's steps, and per operation) was re-priced at the low and high end of each of ${parameters.length} cost parameters, solved exactly for the price at which it flips (the others at default), bounded over the whole box of ranges, and sampled at ${fmtNum(samples, 0)} whole profiles (seed ${seed}). ${results.filter((r) => r.holds).length} of ${results.length} hold over every range.`,
    '',
  ];
  const flips = results.flatMap((r) => r.flips.map((f) => [md(r.scenario), r.scope, f.parameter, `${fmtNum(f.threshold, 4)} ${f.unit}`, `${f.low}–${f.high}`, `${f.lowerBelow} below, ${f.lowerAbove} above`]));
  if (flips.length) out.push(...mdTable(['scenario', 'steps', 'parameter', 'threshold', 'range', 'lower'], flips, [3]));
  else out.push('No single parameter flips any comparison within its range.');
  const counts = flipCounts(results);
  if (counts.length) out.push('', `Parameters by comparisons flipped: ${counts.map((c) => `\`${c.parameter}\` ${c.flips}`).join(', ')}.`);
  return out;
}

function costProfile(m: ReportModel): string[] {
  const rows = m.profile.costs.map((c) => [
    `\`${c.kind}\``,
    `${c.ns.low} / ${c.ns.default} / ${c.ns.high}`,
    c.perByte ? `${c.perByte.low} / ${c.perByte.default} / ${c.perByte.high}` : '',
    c.estimate ? 'estimate' : 'measured',
    md(c.source),
  ]);
  return [`## Cost profile \`${md(m.profile.name)}\``, '', ...mdTable(['primitive', 'ns low / default / high', 'ns per byte', 'kind', 'source'], rows)];
}

export function renderMarkdown(m: ReportModel): string {
  const summary = mdTable(['scenario', 'latency', 'cost ranges'], m.scenarios.map((s) => [`\`${s.key}\` ${md(scenarioMarks(s.provenance, s.contended))}`.trim(), latencyCell(s), md(robustnessCell(s.latency))]));
  const blocks: string[][] = [
    [
      '# ioasid-sim decision report: tunnel (vSVA v8 via VFIO) vs iommufd',
      '',
      `- ${md(STACK_ERAS.tunnel)}`,
      `- ${md(STACK_ERAS.iommufd)}`,
      `- ${md(SHARED_ERA)}`,
      '',
      `Cost profile \`${md(m.profile.name)}\` (sources at the end). ${md(invalidateModesSentence(m))} Counts are exact; latency is priced, and its robustness over the cost ranges is stated with each verdict.`,
      '',
      'Marks:',
      '',
      ...MARK_LEGEND.map((l) => `- ${md(l)}`),
    ],
    ['## Summary: latency of all steps per scenario', '', ...summary],
    ...m.scenarios.map(scenarioSection),
    qualities(m),
    sensitivity(m),
    costProfile(m),
  ];
  return `${blocks.map((b) => b.join('\n')).join('\n\n')}\n`;
}
