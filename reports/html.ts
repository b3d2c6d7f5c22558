/**
 * report.html: one self-contained page. chart.js is inlined, the data sits in a JSON script block,
 * and a Content-Security-Policy forbids every network fetch.
 */
import { STACKS } from '../scenarios/results.ts';
import { chartJsUmd } from './chartjs-inline.ts';
import { TABLE_METRICS } from './figures.ts';
import { fmtNum, fmtValue } from './format.ts';
import { CHART_SCRIPT, canvasId, chartData } from './html-charts.ts';
import { esc, scriptJson } from './html-escape.ts';
import { callGraphHtml } from './html-graph.ts';
import { invalidateModesSentence, type ReportModel, type ScenarioReport } from './model.ts';
import { MARK_LEGEND, SHARED_ERA, STACK_ERAS, markOf, scenarioMarks } from './provenance.ts';
import { QUALITY_DEFS } from './qualities.ts';
import { sensitivitySentences } from './sensitivity-words.ts';
import { flipCounts, latencyCell, qualityCell, qualityLower, robustnessCell } from './summary.ts';
import { verdictCell, verdictSentence } from './verdicts.ts';

export const CSP = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:";

const STYLE = `
body { font-family: sans-serif; margin: 1.5em auto; max-width: 72em; color: #222; line-height: 1.4; }
table { border-collapse: collapse; margin: .5em 0; }
th, td { border: 1px solid #ccc; padding: .2em .5em; text-align: left; vertical-align: top; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.graphs { display: grid; grid-template-columns: 1fr 1fr; gap: 1em; }
.graphs > div { overflow-x: auto; font-size: 90%; }
details { margin-left: 1em; } summary { cursor: pointer; } .leaf { margin-left: 2em; }
.dur { color: #666; font-family: monospace; } .layer { color: #555; font-size: 85%; }
.prov { font-size: 75%; padding: 0 .3em; border-radius: .3em; border: 1px solid #999; }
.prov-merged, .prov-hardware { background: #eef5ee; } .prov-posted { background: #fff2cc; } .prov-projection { background: #f8d7da; }
.op, .uapi { font-size: 80%; color: #735; }
.mark { font-weight: bold; color: #a33; } .note { color: #555; font-style: italic; }
#status { color: #555; font-size: 85%; }
`;

function tableHtml(head: readonly string[], rows: readonly (readonly string[])[], numeric: readonly number[] = []): string {
  const th = head.map((h) => `<th>${h}</th>`).join('');
  const tr = rows.map((r) => `<tr>${r.map((c, i) => `<td${numeric.includes(i) ? ' class="num"' : ''}>${c}</td>`).join('')}</tr>`).join('\n');
  return `<table><thead><tr>${th}</tr></thead><tbody>\n${tr}\n</tbody></table>`;
}

const list = (items: readonly string[]): string => `<ul>${items.map((i) => `<li>${i}</li>`).join('')}</ul>`;

function scenarioSection(s: ScenarioReport, i: number): string {
  const head = (stack: 'tunnel' | 'iommufd'): string => `${stack}<span class="mark">${esc(markOf(s.provenance[stack]))}${s.contended ? '~' : ''}</span>`;
  const rows = s.verdicts.map((v, k) => [
    esc(TABLE_METRICS[k]!.from === 'totals' ? v.label : `${v.label} (max over steps)`),
    esc(fmtValue(s.stacks.tunnel?.values[v.metric] ?? null, v.unit)),
    esc(fmtValue(s.stacks.iommufd?.values[v.metric] ?? null, v.unit)),
    esc(verdictCell(v)),
  ]);
  const problems = STACKS.flatMap((stack) => {
    const f = s.stacks[stack];
    if (!f) return [`${stack}: did not run.`];
    if (!f.ok) return [`${stack} failed, figures not compared${f.error ? `: ${f.error}` : ''}`];
    return f.failedSteps ? [`${stack}: ${f.failedSteps} of ${f.steps} steps not as expected`] : [];
  });
  const parts = [
    `<section class="scenario" id="scenario-${i}"><h2>Scenario <code>${esc(s.key)}</code></h2>`,
    ...s.description.trim().split(/\n\s*\n/).map((p) => `<p>${esc(p)}</p>`),
    `<p>Seed ${s.seed}; invalidate <code>${esc(s.invalidate)}</code>; priced at profile <code>${esc(s.runProfile)}</code>. Hardware state equal after both stacks: ${s.digestsEqual === null ? 'not compared' : s.digestsEqual ? 'yes' : '<b>no</b>'}.</p>`,
    problems.length ? list(problems.map(esc)) : '',
    tableHtml(['metric', head('tunnel'), head('iommufd'), 'lower'], rows, [1, 2]),
    `<canvas id="${canvasId(i)}" class="scenario-chart" data-scenario="${esc(s.key)}" width="760" height="240"></canvas>`,
    '<h3>Verdicts</h3>',
    list([
      ...(s.verdicts.some((v) => v.lower === null) ? ['Not compared: a stack failed or did not run.'] : []),
      ...s.verdicts.filter((v) => v.lower !== 'equal' && v.lower !== null).map((v) => esc(verdictSentence(v))),
      ...(s.verdicts.some((v) => v.lower === 'equal') ? [esc(`Equal on both stacks: ${s.verdicts.filter((v) => v.lower === 'equal').map((v) => v.label).join(', ')}.`)] : []),
    ]),
    s.latency ? `<h3>Latency over the cost ranges (all steps)</h3>${list(sensitivitySentences(s.latency, 20).map(esc))}` : '',
    s.operations.length
      ? `<h3>Per operation (re-priced)</h3>${tableHtml(['steps', 'latency at defaults', 'cost ranges'], s.operations.map((r) => [esc(r.scope), esc(r.lowerAtDefault === 'equal' ? 'equal' : `${r.lowerAtDefault} lower`), esc(robustnessCell(r))]))}`
      : '',
    '<h3>Call graphs</h3>',
  ];
  const r = s.representative;
  if (!r) parts.push('<p class="note">No call trees were kept for this run (ask the runner for traces).</p>');
  else {
    parts.push(
      `<p>Step ${esc(r.path)} (<code>${esc(r.op)}</code>), ${esc(r.reason)}. Click a frame to fold it; hover for its C signature and provenance source.</p>`,
      `<div class="graphs"><div><h4>tunnel, ${esc(fmtValue(r.tunnelNs, 'ns'))}</h4>${callGraphHtml(r.tunnel)}</div><div><h4>iommufd, ${esc(fmtValue(r.iommufdNs, 'ns'))}</h4>${callGraphHtml(r.iommufd)}</div></div>`,
    );
  }
  parts.push('</section>');
  return parts.join('\n');
}

function qualities(m: ReportModel): string {
  const out = ['<section><h2>Design qualities</h2><p>The 2021 thread\'s arguments as numbers, with what produces them.</p>'];
  for (const def of QUALITY_DEFS) {
    const figs = m.qualities.filter((q) => q.quality === def.id);
    out.push(`<h3><code>${def.id}</code>: ${esc(def.question)}</h3><p>Arguments: ${esc(def.arguments)}.<br>Measured as: ${esc(def.definition)}.</p>`);
    if (!figs.length) {
      out.push('<p class="note">No scenario in this run measures it.</p>');
      continue;
    }
    const rows = figs.map((f) => [esc(f.subject ?? f.scope) + (f.projection ? ' <span class="mark">*</span>' : ''), qualityCell(f, f.tunnel), qualityCell(f, f.iommufd), qualityLower(f)]);
    out.push(tableHtml([figs[0]!.subject !== undefined ? 'subject' : 'scenario', 'tunnel', 'iommufd', 'lower'], rows, [1, 2]));
    const ev = figs.flatMap((f) => STACKS.filter((st) => f.evidence[st].length).map((st) => `${esc(f.subject ?? f.scope)}, ${st}: ${f.evidence[st].map((e) => `<code>${esc(e)}</code>`).join('; ')}`));
    out.push(`<details><summary>Produced by</summary>${list(ev)}</details>`);
  }
  out.push('</section>');
  return out.join('\n');
}

function sensitivity(m: ReportModel): string {
  const { results, parameters, samples, seed } = m.sensitivity;
  const flips = results.flatMap((r) => r.flips.map((f) => [esc(r.scenario), esc(r.scope), `<code>${esc(f.parameter)}</code>`, `${fmtNum(f.threshold, 4)} ${f.unit}`, `${f.low} – ${f.high}`, `${f.lowerBelow} below, ${f.lowerAbove} above`]));
  const counts = flipCounts(results);
  return [
    '<section><h2>Sensitivity</h2>',
    `<p>Every latency comparison (${results.length}) was re-priced at the low and high end of each of ${parameters.length} cost parameters, solved exactly for the price at which it flips (the others at default), bounded over the whole box of ranges, and sampled at ${fmtNum(samples, 0)} whole profiles (seed ${seed}). ${results.filter((r) => r.holds).length} of ${results.length} hold over every range.</p>`,
    flips.length ? tableHtml(['scenario', 'steps', 'parameter', 'threshold', 'range', 'lower'], flips, [3]) : '<p>No single parameter flips any comparison within its range.</p>',
    counts.length ? `<p>Parameters by comparisons flipped: ${counts.map((c) => `<code>${esc(c.parameter)}</code> ${c.flips}`).join(', ')}.</p>` : '',
    '</section>',
  ].join('\n');
}

function costProfile(m: ReportModel): string {
  const rows = m.profile.costs.map((c) => [
    `<code>${c.kind}</code>`,
    `${c.ns.low} / ${c.ns.default} / ${c.ns.high}`,
    c.perByte ? `${c.perByte.low} / ${c.perByte.default} / ${c.perByte.high}` : '',
    c.estimate ? 'estimate' : 'measured',
    esc(c.source),
  ]);
  return `<section><h2>Cost profile <code>${esc(m.profile.name)}</code></h2>${tableHtml(['primitive', 'ns low / default / high', 'ns per byte', 'kind', 'source'], rows)}</section>`;
}

export function renderHtml(m: ReportModel): string {
  const summary = tableHtml(['scenario', 'latency', 'cost ranges'], m.scenarios.map((s, i) => [`<a href="#scenario-${i}">${esc(s.key)}</a> <span class="mark">${esc(scenarioMarks(s.provenance, s.contended))}</span>`, esc(latencyCell(s)), esc(robustnessCell(s.latency))]));
  return `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="${CSP}">
<title>ioasid-sim decision report</title>
<style>${STYLE}</style></head>
<body>
<h1>ioasid-sim decision report: tunnel (vSVA v8 via VFIO) vs iommufd</h1>
${list([STACK_ERAS.tunnel, STACK_ERAS.iommufd, SHARED_ERA].map(esc))}
<p>Cost profile <code>${esc(m.profile.name)}</code> (sources at the end). ${esc(invalidateModesSentence(m))} Counts are exact; latency is priced, and its robustness over the cost ranges is stated with each verdict.</p>
<p>Marks:</p>${list(MARK_LEGEND.map(esc))}
<p id="status">charts not rendered yet</p>
<h2>Summary</h2>
${summary}
<canvas id="chart-copies" class="overview-chart" width="760" height="260"></canvas>
<canvas id="chart-ioctls" class="overview-chart" width="760" height="260"></canvas>
${m.scenarios.map(scenarioSection).join('\n')}
${qualities(m)}
${sensitivity(m)}
${costProfile(m)}
<script id="report-data" type="application/json">${scriptJson(chartData(m))}</script>
<script>${chartJsUmd()}</script>
<script>${CHART_SCRIPT}</script>
</body></html>
`;
}
