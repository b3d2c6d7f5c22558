import { describe, expect, it } from 'vitest';
import { DEFAULT_COSTS, pricesAt } from '../../sim/index.ts';
import { latencyComparisons } from '../../reports/comparisons.ts';
import { groupRuns } from '../../reports/runs.ts';
import { analyseSensitivity } from '../../reports/sensitivity.ts';
import { pricePrimitives } from '../../reports/price.ts';
import { SYSCALL_THRESHOLD_NS, run, step, syntheticSuite, syscallCrossingRun } from './fixtures.ts';

const analyse = (runs: Parameters<typeof groupRuns>[0], samples = 10_000) =>
  analyseSensitivity(groupRuns(runs).flatMap(latencyComparisons), DEFAULT_COSTS, { samples, seed: 7 });

describe('re-pricing recorded primitives', () => {
  it('is the dot product the recorder uses: a step re-priced at its run profile gives its recorded latency', () => {
    const s = step({ path: '1', op: 'x', prims: { a: { syscall: [3], copyFromUser: [2, 100] }, b: { qiHwCompletion: [1] } } });
    const expected = 3 * 100 + 2 * 20 + 100 * 0.03 + 1000;
    expect(pricePrimitives(s.primitives, pricesAt(DEFAULT_COSTS, 'default'))).toBeCloseTo(expected, 9);
    expect(s.latencyNs).toBeCloseTo(expected, 9);
  });
});

describe('sensitivity on synthetic recordings (built, not measured)', () => {
  it('names the syscall cost and a threshold within 1% of the true crossing', () => {
    const [r] = analyse([syscallCrossingRun()]);
    expect(r!.lowerAtDefault).toBe('tunnel');
    expect(r!.holds).toBe(false);
    const flip = r!.flips.find((f) => f.parameter === 'syscall.ns');
    expect(flip).toBeDefined();
    expect(Math.abs(flip!.threshold - SYSCALL_THRESHOLD_NS) / SYSCALL_THRESHOLD_NS).toBeLessThan(0.01);
    expect(flip!.lowerBelow).toBe('tunnel');
    expect(flip!.lowerAbove).toBe('iommufd');
  });

  it('does not report a crossing that lies outside the parameter range', () => {
    const [r] = analyse([syscallCrossingRun()]);
    // kmalloc alone would cross at 9 ns, below its range 10–60
    expect(r!.flips.map((f) => f.parameter)).toEqual(['syscall.ns']);
  });

  it('bounds the difference exactly over the box and the sampled grid agrees with the threshold', () => {
    const [r] = analyse([syscallCrossingRun()], 20_000);
    // Δ = 6s + 300·(mmioRead/300) − 100·kmalloc: mmioRead 100–1000, kmalloc 10–60, syscall 50–600
    expect(r!.deltaMinNs).toBeCloseTo(6 * 50 + 100 - 100 * 60, 6);
    expect(r!.deltaMaxNs).toBeCloseTo(6 * 600 + 1000 - 100 * 10, 6);
    const share = r!.grid.iommufdLower / r!.grid.profiles;
    expect(share).toBeGreaterThan(0.1);
    expect(share).toBeLessThan(0.6);
  });

  it('says a verdict holds when no end of any range moves its sign', () => {
    const results = analyse(syntheticSuite());
    const bind = results.find((x) => x.scenario === 'synthetic-bind-flush' && x.scope === 'all steps')!;
    expect(bind.lowerAtDefault).toBe('iommufd');
    expect(bind.holds).toBe(true);
    expect(bind.flips).toEqual([]);
    expect(bind.grid.iommufdLower).toBe(bind.grid.profiles);
  });

  it('finds a flip that needs several parameters moved together', () => {
    // tunnel: mutex + spinlock + rwsem + xaLookup = 75 ns; iommufd: 3 kmalloc + 12 getUser = 135 ns.
    // Δ = −60; the strongest single push (kmalloc to 10 ns) adds 45, all together add 176.
    const t = step({ path: '1', op: 'x', prims: { a: { mutex: [1], spinlock: [1], rwsem: [1], xaLookup: [1] } } });
    const i = step({ path: '1', op: 'x', prims: { a: { kmalloc: [3], getUser: [12] } } });
    const [r] = analyse([run('joint', { tunnel: [t], iommufd: [i] })]);
    expect(r!.lowerAtDefault).toBe('tunnel');
    expect(r!.flips).toEqual([]);
    expect(r!.holds).toBe(false);
    expect(r!.jointFlip!.parameters[0]).toEqual({ parameter: 'kmalloc.ns', at: 'low' });
    expect(r!.grid.iommufdLower).toBeGreaterThan(0);
  });

  it('uses the re-simulated low/high runs for contended scenarios and labels them', () => {
    const results = analyse(syntheticSuite());
    const c = results.find((x) => x.scenario === 'synthetic-vdpa-contended' && x.scope === 'all steps')!;
    expect(c.contended).toBe(true);
    expect(c.allLow.resimulated).toBe(true);
    expect(c.allHigh.resimulated).toBe(true);
    // the fixture's low run recorded 300 + priced vs 400 + priced contention
    expect(c.allLow.iommufdNs - c.allLow.tunnelNs).toBeCloseTo(100, 6);
    const plain = results.find((x) => x.scenario === 'synthetic-bind-flush')!;
    expect(plain.allLow.resimulated).toBe(false);
  });

  it('sweeps 10,000 profiles over the suite in under a second', () => {
    const comparisons = groupRuns([...syntheticSuite(), syscallCrossingRun()]).flatMap(latencyComparisons);
    analyseSensitivity(comparisons, DEFAULT_COSTS, { samples: 1000 }); // warm up
    const t0 = performance.now();
    const results = analyseSensitivity(comparisons, DEFAULT_COSTS, { samples: 10_000 });
    expect(performance.now() - t0).toBeLessThan(1000);
    expect(results.every((r) => r.grid.profiles === 10_000)).toBe(true);
  });

  it('is deterministic for a seed', () => {
    expect(JSON.stringify(analyse(syntheticSuite(), 2000))).toBe(JSON.stringify(analyse(syntheticSuite(), 2000)));
  });
});
