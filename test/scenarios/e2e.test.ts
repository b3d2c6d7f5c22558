import { describe, expect, it } from 'vitest';
import { builtinPlatforms } from '../../scenarios/platforms.ts';
import type { StackPlatform } from '../../scenarios/platform.ts';
import { runScenario } from '../../scenarios/runner.ts';
import { STACKS } from '../../scenarios/results.ts';
import { loadScenario, suiteNames } from '../../scenarios/suite.ts';
import type { LoadedScenario } from '../../scenarios/types.ts';
import { cli } from '../helpers/cli.ts';

function scenario(name: string): LoadedScenario {
  const r = loadScenario(name);
  if (!r.ok) throw new Error(`${name}: ${JSON.stringify(r.errors)}`);
  return r.scenario;
}

const FIRST_FIVE = ['vsva-bind-dma', 'vsva-unmap-invalidate', 'iopf-round-trip', 'two-devices-one-process', 'vdpa-data-vq-pasid'];

describe('end to end: the same scenario on both stacks, the hardware as the oracle', () => {
  it.each(FIRST_FIVE)('%s runs on both stacks with every expectation met and equal hardware digests', (name) => {
    const r = runScenario(scenario(name), { platforms: builtinPlatforms() });
    for (const s of STACKS) {
      expect(r.stacks[s]!.error, s).toBeUndefined();
      expect(r.stacks[s]!.ok, s).toBe(true);
      expect(r.stacks[s]!.leaks, s).toEqual({});
    }
    expect(r.digestsEqual).toBe(true);
    expect(r.stacks.tunnel!.hwDigest).toMatch(/^[0-9a-f]{64}$/);
  });

  it('the oracle can fail: a wrong first-stage root in one stack\'s bind changes its digest', () => {
    const good = builtinPlatforms();
    const b = good.iommufd!;
    // the same design, but the VMM passes the kernel a root one page off
    const corrupt: StackPlatform = {
      ...b,
      backend: (init) => {
        const be = b.backend(init);
        const bindPasid = be.bindPasid.bind(be);
        return Object.assign(be, { bindPasid: (d: string, p: number, root: number, f: Parameters<typeof bindPasid>[3]) => bindPasid(d, p, root + 0x1000, f) });
      },
    };
    const r = runScenario(scenario('vsva-bind-dma'), { platforms: { tunnel: good.tunnel!, iommufd: corrupt } });
    expect(r.digestsEqual).toBe(false);
    expect(r.digestDifferenceStated).toBe(false);
    // and the run notices: the DMA that should land now faults on the corrupted stack
    expect(r.stacks.iommufd!.ok).toBe(false);
    expect(r.stacks.tunnel!.ok).toBe(true);
  });

  it('the same seed gives byte-identical results; another seed moves the host layout, not the digest', () => {
    const sc = scenario('vsva-bind-dma');
    const a = runScenario(sc, { seed: 7, platforms: builtinPlatforms() });
    const again = runScenario(sc, { seed: 7, platforms: builtinPlatforms() });
    expect(JSON.stringify(again)).toBe(JSON.stringify(a));
    const c = runScenario(sc, { seed: 8, platforms: builtinPlatforms() });
    for (const s of STACKS) {
      expect(c.stacks[s]!.hwDigest).toBe(a.stacks[s]!.hwDigest);
      expect(c.stacks[s]!.hostLayout).not.toBe(a.stacks[s]!.hostLayout);
    }
  });

  it('measures the tunnelled bind: VFIO_IOMMU_NESTING_OP copies 3 times, 80 bytes, from user', () => {
    const r = runScenario(scenario('vsva-bind-dma'), { stacks: ['tunnel'], platforms: builtinPlatforms() });
    const bind = r.stacks.tunnel!.steps.find((s) => s.op === 'bind')!;
    const op = bind.ioctlList.find((i) => i.name === 'VFIO_IOMMU_NESTING_OP')!;
    expect([op.copiesFromUser, op.bytesFromUser]).toEqual([3, 80]);
    // the user pointer travels below the ioctl entry as unsigned long, void * and void __user *
    expect(bind.typeErasureHops).toBeGreaterThanOrEqual(3);
    expect(bind.provenance).toBe('posted');
  });

  it('the concurrent scenario records contention from the scheduler, on each design\'s own lock', () => {
    const r = runScenario(scenario('concurrent-invalidations'), { platforms: builtinPlatforms() });
    for (const s of STACKS) expect(r.stacks[s]!.totals.contentionNs, s).toBeGreaterThan(0);
    const locks = (s: 'tunnel' | 'iommufd') => new Set(r.stacks[s]!.steps.flatMap((st) => Object.entries(st.locks).filter(([, l]) => l.waitNs > 0).map(([n]) => n)));
    expect([...locks('tunnel')].some((n) => /vfio_iommu->lock|iommu->lock/.test(n))).toBe(true);
    expect([...locks('iommufd')].length).toBeGreaterThan(0);
  });
});

describe('ioasid-sim run and trace', () => {
  it('run --json prints the results; exit 0 when every expectation and the oracle hold', () => {
    const r = cli('run', 'vsva-bind-dma', '--json', '--seed', '3');
    expect(r.code).toBe(0);
    const j = JSON.parse(r.stdout) as { scenario: string; seed: number; stacks: Record<string, { ok: boolean; steps: { path: string; ioctlList: unknown[] }[] }> };
    expect(j.scenario).toBe('vsva-bind-dma');
    expect(j.seed).toBe(3);
    expect(Object.keys(j.stacks)).toEqual(['tunnel', 'iommufd']);
    expect(j.stacks.tunnel!.ok).toBe(true);
  });

  it('run with no scenario runs the whole suite and prints each stack and the oracle', () => {
    const r = cli('run', '--stack', 'iommufd');
    expect(r.code, r.stderr).toBe(0);
    for (const name of suiteNames()) expect(r.stdout).toMatch(new RegExp(`^${name} on iommufd: ok;`, 'm'));
    // one stack alone has no oracle to consult
    expect(r.stdout).not.toMatch(/hardware oracle/);
  }, 60_000);

  it('trace --json lists the pre-order frames of a step', () => {
    const r = cli('trace', 'vsva-bind-dma', '--stack', 'iommufd', '--step', '3', '--json');
    expect(r.code).toBe(0);
    const j = JSON.parse(r.stdout) as { steps: { path: string; calls: { fn: string; depth: number }[] }[] };
    expect(j.steps).toHaveLength(1);
    const fns = j.steps[0]!.calls.map((c) => c.fn);
    expect(fns).toEqual(expect.arrayContaining(['iommufd_hwpt_alloc', 'intel_iommu_domain_alloc_nested', 'intel_pasid_setup_nested']));
  });

  it('bad input exits 2 with one clear line per issue', () => {
    const r = cli('run', 'no-such-scenario');
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/no such scenario in the suite/);
    expect(cli('run', 'vsva-bind-dma', '--stack', 'both').code).toBe(2);
    expect(cli('run', 'vsva-bind-dma', '--seed', '-1').code).toBe(2);
  });
});
