/** report.txt: plain text for mail, every line at most 80 columns. */
import type { StackName } from '../scenarios/results.ts';
import { STACKS } from '../scenarios/results.ts';
import { compactGraph } from './compact-graph.ts';
import { TABLE_METRICS } from './figures.ts';
import { fmtNum, fmtValue } from './format.ts';
import { invalidateModesSentence, type ReportModel, type ScenarioReport } from './model.ts';
import { MARK_LEGEND, SHARED_ERA, STACK_ERAS, markOf, scenarioMarks } from './provenance.ts';
import { QUALITY_DEFS, type QualityFigure } from './qualities.ts';
import { sensitivitySentences } from './sensitivity-words.ts';
import { flipCounts, latencyCell, qualityCell, qualityLower, robustnessCell, robustnessWord } from './summary.ts';
import { TEXT_WIDTH, clip, heading, paragraphs, sideBySide, table, wrap } from './text-layout.ts';
import { verdictCell, verdictSentence } from './verdicts.ts';

const GRAPH = { maxDepth: 8, maxLines: 24 };

function stackHeader(s: ScenarioReport, stack: StackName): string {
  return `${stack}${markOf(s.provenance[stack])}${s.contended ? '~' : ''}`;
}

function header(m: ReportModel): string[] {
  return [
    ...heading('ioasid-sim decision report: tunnel (vSVA v8 via VFIO) vs iommufd', '='),
    '',
    ...wrap(STACK_ERAS.tunnel, TEXT_WIDTH, '- '),
    ...wrap(STACK_ERAS.iommufd, TEXT_WIDTH, '- '),
    ...wrap(SHARED_ERA, TEXT_WIDTH, '- '),
    ...wrap(`Cost profile: ${m.profile.name} (every figure's source is listed at the end). ${invalidateModesSentence(m)} Counts are exact; latency is priced and its robustness is stated under "Sensitivity".`),
    '',
    'Marks:',
    ...MARK_LEGEND.flatMap((l) => wrap(l, TEXT_WIDTH, '  ')),
  ];
}

function summary(m: ReportModel): string[] {
  const rows = m.scenarios.map((s) => [`${s.key} ${scenarioMarks(s.provenance, s.contended)}`.trim(), latencyCell(s), robustnessWord(s.latency)]);
  return [
    ...heading('Summary: latency of all steps per scenario'),
    ...table([{ header: 'scenario', width: 34 }, { header: 'latency', width: 14 }, { header: 'over the cost ranges', width: 28 }], rows),
  ];
}

function metricsTable(s: ScenarioReport): string[] {
  const rows = s.verdicts.map((v, i) => {
    const def = TABLE_METRICS[i]!;
    const shown = (stack: StackName): string => fmtValue(s.stacks[stack]?.values[def.key] ?? null, v.unit);
    return [def.from === 'totals' ? v.label : `${v.label} (max)`, shown('tunnel'), shown('iommufd'), verdictCell(v)];
  });
  return table(
    [
      { header: 'metric', width: 24 },
      { header: stackHeader(s, 'tunnel'), width: 14, align: 'right' },
      { header: stackHeader(s, 'iommufd'), width: 14, align: 'right' },
      { header: 'lower', width: 20 },
    ],
    rows,
  );
}

function graphExcerpt(s: ScenarioReport): string[] {
  const r = s.representative;
  if (!r) return wrap('Call graphs: no call trees were kept for this run (ask the runner for traces).');
  const w = Math.floor((TEXT_WIDTH - 3) / 2);
  return [
    ...wrap(`Call graph of step ${r.path} (${r.op}), ${r.reason}; durations in us, * projection, + posted:`),
    '',
    ...sideBySide([`tunnel ${fmtValue(r.tunnelNs, 'ns')}`], [`iommufd ${fmtValue(r.iommufdNs, 'ns')}`], w),
    ...sideBySide(compactGraph(r.tunnel, GRAPH), compactGraph(r.iommufd, GRAPH), w),
  ];
}

function scenarioSection(s: ScenarioReport): string[] {
  const out = [...heading(`Scenario ${s.key}`), ''];
  out.push(...paragraphs(s.description));
  out.push('', ...wrap(`Seed ${s.seed}; invalidate ${s.invalidate}; priced at profile ${s.runProfile}. Hardware state equal after both stacks: ${s.digestsEqual === null ? 'not compared' : s.digestsEqual ? 'yes' : 'NO'}.`));
  for (const stack of STACKS) {
    const f = s.stacks[stack];
    if (!f) out.push(`${stack}: did not run.`);
    else if (!f.ok) out.push(...wrap(`${stack} FAILED, figures not compared${f.error ? `: ${f.error}` : ''}`));
    else if (f.failedSteps) out.push(...wrap(`${stack}: ${f.failedSteps} of ${f.steps} steps not as expected`));
  }
  out.push('', ...metricsTable(s), '', 'Verdicts:');
  if (s.verdicts.some((x) => x.lower === null)) out.push('- Not compared: a stack failed or did not run.');
  for (const v of s.verdicts.filter((x) => x.lower !== 'equal' && x.lower !== null)) out.push(...wrap(verdictSentence(v), TEXT_WIDTH, '- '));
  const equal = s.verdicts.filter((x) => x.lower === 'equal').map((x) => x.label);
  if (equal.length) out.push(...wrap(`Equal on both stacks: ${equal.join(', ')}.`, TEXT_WIDTH, '- '));
  if (s.latency) {
    out.push('', 'Latency over the cost ranges (all steps):');
    for (const l of sensitivitySentences(s.latency)) out.push(...wrap(l, TEXT_WIDTH, '- '));
  }
  if (s.operations.length) {
    out.push('', 'Per operation (re-priced):');
    const rows = s.operations.map((r) => [r.scope, r.lowerAtDefault === 'equal' ? 'equal' : `${r.lowerAtDefault} lower`, robustnessCell(r)]);
    out.push(...table([{ header: 'steps', width: 22 }, { header: 'latency', width: 16 }, { header: 'cost ranges', width: 36 }], rows, '  '));
  }
  out.push('', ...graphExcerpt(s));
  return out;
}

function qualityRows(figs: readonly QualityFigure[]): string[][] {
  return figs.map((f) => {
    const v = f.subject ?? f.scope;
    const cell = (n: number | null): string => qualityCell(f, n);
    return [`${v}${f.projection ? ' *' : ''}`, cell(f.tunnel), cell(f.iommufd), qualityLower(f)];
  });
}

function qualities(m: ReportModel): string[] {
  const out = [...heading('Design qualities (the 2021 thread\'s arguments, as numbers)')];
  for (const def of QUALITY_DEFS) {
    const figs = m.qualities.filter((q) => q.quality === def.id);
    out.push('', ...wrap(`${def.id}: ${def.question}`), ...wrap(`Arguments: ${def.arguments}.`, TEXT_WIDTH, '  '));
    out.push(...wrap(`Measured as: ${def.definition}.`, TEXT_WIDTH, '  '));
    if (!figs.length) {
      out.push('  (no scenario in this run measures it)');
      continue;
    }
    out.push(...table([{ header: figs[0]!.subject !== undefined ? 'subject' : 'scenario', width: 34 }, { header: 'tunnel', width: 8, align: 'right' }, { header: 'iommufd', width: 8, align: 'right' }, { header: 'lower', width: 10 }], qualityRows(figs), '  '));
    out.push('  Produced by:');
    for (const f of figs) {
      for (const stack of STACKS) {
        const ev = f.evidence[stack];
        if (!ev.length) continue;
        out.push(...wrap(`${f.subject ?? f.scope}, ${stack}: ${ev.join('; ')}`, TEXT_WIDTH, '  - ', '      '));
      }
    }
  }
  return out;
}

function sensitivityOverview(m: ReportModel): string[] {
  const counts = flipCounts(m.sensitivity.results);
  const total = m.sensitivity.results.length;
  const holding = m.sensitivity.results.filter((r) => r.holds).length;
  const out = [
    ...heading('Sensitivity'),
    ...wrap(
      `Every latency comparison (${total}: each scenario's steps, and per operation) was re-priced at the low and high end of each of ${m.sensitivity.parameters.length} cost parameters, solved exactly for the price at which it flips (others at default), bounded over the whole box of ranges, and sampled at ${fmtNum(m.sensitivity.samples, 0)} whole profiles (seed ${m.sensitivity.seed}). ${holding} of ${total} hold over every range.`,
    ),
  ];
  if (counts.length) {
    out.push('', 'Parameters that flip a comparison alone:');
    out.push(...table([{ header: 'parameter', width: 30 }, { header: 'comparisons flipped', width: 20, align: 'right' }], counts.map((c) => [c.parameter, String(c.flips)]), '  '));
  } else out.push('', 'No single parameter flips any comparison within its range.');
  return out;
}

function costProfile(m: ReportModel): string[] {
  const out = [...heading(`Cost profile ${m.profile.name}: low / default / high, and sources`)];
  for (const c of m.profile.costs) {
    const per = c.perByte ? `; per byte ${c.perByte.low} / ${c.perByte.default} / ${c.perByte.high} ns` : '';
    out.push(...wrap(`${c.kind}: ${c.ns.low} / ${c.ns.default} / ${c.ns.high} ns${per} [${c.estimate ? 'estimate' : 'measured'}]`, TEXT_WIDTH, '- ', '  '));
    out.push(...wrap(c.source, TEXT_WIDTH, '    '));
  }
  return out;
}

export function renderText(m: ReportModel): string {
  const blocks = [header(m), summary(m), ...m.scenarios.map(scenarioSection), qualities(m), sensitivityOverview(m), costProfile(m)];
  const lines = blocks.flatMap((b) => [...b, '']);
  // a last guard: nothing wider than a mail line gets out
  return `${lines.map((l) => clip(l.trimEnd(), TEXT_WIDTH)).join('\n').trimEnd()}\n`;
}
