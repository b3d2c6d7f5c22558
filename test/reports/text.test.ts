import { describe, expect, it } from 'vitest';
import { renderReport } from '../../reports/write.ts';
import { clip, wrap } from '../../reports/text-layout.ts';
import { run, step, syntheticSuite, syscallCrossingRun, tunnelTrace } from './fixtures.ts';

function longNamedRun() {
  const name = 'a-synthetic-scenario-whose-name-is-much-longer-than-any-column-of-the-text-report';
  const s = step({ path: '12.3.4', op: 'guest-unmap', prims: { 'a-layer-with-a-long-name': { syscall: [1] } }, trace: tunnelTrace() });
  return run(name, { tunnel: [s], iommufd: [s] }, { description: `${'word '.repeat(40)}${'x'.repeat(120)}\n\nsecond paragraph` });
}

describe('report.txt', () => {
  const { text } = renderReport([...syntheticSuite(), syscallCrossingRun(), longNamedRun()], { samples: 500 });

  it('keeps every line within 80 columns', () => {
    const over = text.split('\n').filter((l) => [...l].length > 80);
    expect(over).toEqual([]);
  });

  it('is plain text: no HTML', () => {
    expect(text).not.toMatch(/<\/?[a-z][a-z0-9]*[\s>]/i);
  });

  it('shows each scenario with both stacks side by side, its verdicts and where latency flips', () => {
    expect(text).toMatch(/^Scenario synthetic-syscall-crossing$/m);
    expect(text).toMatch(/^metric\s+tunnel\S*\s+iommufd/m);
    expect(text).toMatch(/flips if syscall\.ns rises above 366\.67 ns/);
    expect(text).toMatch(/Holds over every cost range/);
  });

  it('shows a side-by-side call graph excerpt and marks posted and projected figures', () => {
    expect(text).toMatch(/^\s+\| __x64_sys_ioctl\(\) \{\s+\|\s+\| __x64_sys_ioctl\(\) \{$/m);
    expect(text).toMatch(/^metric\s+tunnel\+\s+iommufd\s/m);
    expect(text).toMatch(/tunnel\*~/);
    expect(text).toMatch(/re-simulated/);
  });

  it('lists every cost default with its source', () => {
    expect(text).toMatch(/^- syscall: 50 \/ 100 \/ 600 ns \[measured\]$/m);
    expect(text).toMatch(/Cracauer 2018/);
  });
});

describe('text layout helpers', () => {
  it('wraps words and clips what cannot wrap', () => {
    expect(wrap('aa bb cc', 5)).toEqual(['aa bb', 'cc']);
    expect(wrap('x'.repeat(10), 5)).toEqual(['xxxx~']);
    expect(clip('abcdef', 4)).toBe('abc~');
  });
});
