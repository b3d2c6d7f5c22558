import { describe, expect, it } from 'vitest';
import { CSP } from '../../reports/html.ts';
import { renderReport } from '../../reports/write.ts';
import { run, step, syntheticSuite, tunnelTrace } from './fixtures.ts';

const hostile = run('synthetic-hostile', {
  tunnel: [step({ path: '1', op: 'bind', prims: { syscall: { syscall: [1] } }, trace: tunnelTrace() })],
  iommufd: [step({ path: '1', op: 'bind', prims: { syscall: { syscall: [2] } }, trace: tunnelTrace() })],
}, { description: 'a description with </script><b>markup</b> and https://example.org/x in it' });

describe('report.html', () => {
  const runs = [...syntheticSuite(), hostile];
  const { html, model } = renderReport(runs, { samples: 200 });

  const found = (re: RegExp): string[] => [...html.matchAll(re)].map((m) => html.slice(Math.max(0, m.index - 40), m.index + 60));

  it('contains no external URL: no scheme-qualified address, no remote src or href', () => {
    expect(found(/\b(?:https?|wss?|ftp):\/\//gi)).toEqual([]);
    expect(found(/\b(?:src|href|action)\s*=\s*["']?(?!#|data:)[^\s"'>]/gi)).toEqual([]);
    expect(found(/\burl\(\s*['"]?(?!data:)/g)).toEqual([]); // CSS url(), not toDataURL(
    expect(found(/@import/gi)).toEqual([]);
  });

  it('still shows a quoted address as its text', () => {
    expect(html).toContain('https:&#47;&#47;example.org/x');
  });

  it('forbids the network with a CSP and inlines chart.js and the data', () => {
    expect(html).toContain(`<meta http-equiv="Content-Security-Policy" content="${CSP}">`);
    expect(CSP).toMatch(/default-src 'none'/);
    expect(html).toMatch(/Chart\.js v4\.6\.1/);
    const data = /<script id="report-data" type="application\/json">([^<]*)<\/script>/.exec(html);
    expect(data).not.toBeNull();
    const parsed = JSON.parse(data![1]!) as { scenarios: { key: string }[] };
    expect(parsed.scenarios.map((s) => s.key)).toEqual(model.scenarios.map((s) => s.key));
  });

  it('keeps hostile text as text', () => {
    expect(html).toContain('&lt;/script&gt;&lt;b&gt;markup');
    expect(html.match(/<\/script>/g)).toHaveLength(3);
  });

  it('has one chart canvas per scenario, expandable call graphs and visible provenance', () => {
    expect(html.match(/class="scenario-chart"/g)).toHaveLength(model.scenarios.length);
    expect(html).toMatch(/<details open><summary title="long __x64_sys_ioctl\(void\)">/);
    expect(html).toMatch(/<span class="prov prov-posted" title="synthetic v8">posted<\/span>/);
    expect(html).toMatch(/Cracauer 2018/);
  });
});
