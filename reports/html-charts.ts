/**
 * The data the page's charts draw, and the small script that draws them with the inlined
 * chart.js. Every number is a recorded figure (latency per layer summed over steps, copies and
 * ioctls from the stacks' totals).
 */
import type { StackName } from '../scenarios/results.ts';
import type { ReportModel } from './model.ts';
import { markOf } from './provenance.ts';

export interface ScenarioChartData {
  key: string;
  canvas: string;
  layers: string[];
  /** µs per layer, in `layers` order */
  tunnel: number[];
  iommufd: number[];
  labels: [string, string];
}

export interface ChartData {
  scenarios: ScenarioChartData[];
  overview: {
    labels: string[];
    series: Record<'copiesFromUser' | 'copiesToUser' | 'ioctls', Record<StackName, (number | null)[]>>;
  };
}

export const canvasId = (i: number): string => `chart-scenario-${i}`;

export function chartData(m: ReportModel): ChartData {
  const scenarios = m.scenarios.map((s, i): ScenarioChartData => {
    const t = s.stacks.tunnel?.latencyByLayer ?? {};
    const f = s.stacks.iommufd?.latencyByLayer ?? {};
    const layers = [...new Set([...Object.keys(t), ...Object.keys(f)])].sort();
    const label = (stack: StackName): string => `${stack}${markOf(s.provenance[stack])}${s.contended ? '~' : ''}`;
    return {
      key: s.key,
      canvas: canvasId(i),
      layers,
      tunnel: layers.map((l) => (t[l] ?? 0) / 1000),
      iommufd: layers.map((l) => (f[l] ?? 0) / 1000),
      labels: [label('tunnel'), label('iommufd')],
    };
  });
  const series = (key: 'copiesFromUser' | 'copiesToUser' | 'ioctls'): Record<StackName, (number | null)[]> => ({
    tunnel: m.scenarios.map((s) => s.stacks.tunnel?.values[key] ?? null),
    iommufd: m.scenarios.map((s) => s.stacks.iommufd?.values[key] ?? null),
  });
  return {
    scenarios,
    overview: { labels: m.scenarios.map((s) => s.key), series: { copiesFromUser: series('copiesFromUser'), copiesToUser: series('copiesToUser'), ioctls: series('ioctls') } },
  };
}

/** Runs in the page: draws the charts, then reports in #status and window.__reportReady. */
export const CHART_SCRIPT = `
(function () {
  var status = document.getElementById('status');
  var palette = ['#4e79a7','#f28e2b','#e15759','#76b7b2','#59a14f','#edc948','#b07aa1','#ff9da7','#9c755f','#bab0ac','#86bcb6','#d37295'];
  function done(text, err) {
    status.textContent = text;
    if (err) window.__reportError = err;
    window.__reportReady = true;
  }
  try {
    var d = JSON.parse(document.getElementById('report-data').textContent);
    Chart.defaults.animation = false;
    Chart.defaults.font.family = 'sans-serif';
    var n = 0;
    d.scenarios.forEach(function (s) {
      var el = document.getElementById(s.canvas);
      new Chart(el, {
        type: 'bar',
        data: {
          labels: s.labels,
          datasets: s.layers.map(function (l, i) {
            return { label: l, data: [s.tunnel[i], s.iommufd[i]], backgroundColor: palette[i % palette.length] };
          })
        },
        options: {
          indexAxis: 'y', responsive: false,
          scales: { x: { stacked: true, title: { display: true, text: 'latency by layer (us), all steps' } }, y: { stacked: true } },
          plugins: { legend: { position: 'bottom' } }
        }
      });
      n++;
    });
    function overview(id, title, sets) {
      new Chart(document.getElementById(id), {
        type: 'bar',
        data: { labels: d.overview.labels, datasets: sets },
        options: { responsive: false, plugins: { title: { display: true, text: title } } }
      });
    }
    var o = d.overview.series;
    overview('chart-copies', 'copies across the user boundary per scenario', [
      { label: 'tunnel from user', data: o.copiesFromUser.tunnel, backgroundColor: '#4e79a7' },
      { label: 'tunnel to user', data: o.copiesToUser.tunnel, backgroundColor: '#a0cbe8' },
      { label: 'iommufd from user', data: o.copiesFromUser.iommufd, backgroundColor: '#f28e2b' },
      { label: 'iommufd to user', data: o.copiesToUser.iommufd, backgroundColor: '#ffbe7d' }
    ]);
    overview('chart-ioctls', 'ioctls per scenario', [
      { label: 'tunnel', data: o.ioctls.tunnel, backgroundColor: '#4e79a7' },
      { label: 'iommufd', data: o.ioctls.iommufd, backgroundColor: '#f28e2b' }
    ]);
    done('rendered ' + n + ' scenario charts and 2 overview charts');
  } catch (e) {
    done('charts failed: ' + (e && e.message), String(e));
  }
})();
`;
