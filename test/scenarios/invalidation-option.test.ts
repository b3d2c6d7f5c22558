/**
 * Record once across invalidation options (scenarios/suite-run.ts): a stack's run under `batched`
 * is taken from its run under `qemu` when that run gave no (device, PASID) a flush of several
 * entries. These tests check the claim on every scenario of the suite and both stacks, that the
 * runner runs the second option when such a flush was counted, and A's own claim (one NESTING_OP
 * per entry under either option).
 */
import { describe, expect, it } from 'vitest';
import { DEFAULT_COSTS } from '../../sim/index.ts';
import { MULTI_ENTRY_FLUSHES, type VmmBackend } from '../../models/vmm/backend.ts';
import type { StackPlatform } from '../../scenarios/platform.ts';
import { builtinPlatforms } from '../../scenarios/platforms.ts';
import { runStack } from '../../scenarios/runner.ts';
import { runSuite } from '../../scenarios/suite-run.ts';
import { loadScenario, suiteNames } from '../../scenarios/suite.ts';

const platforms = builtinPlatforms();

function scenario(name: string) {
  const r = loadScenario(name);
  if (!r.ok) throw new Error(name);
  return r.scenario;
}

describe('the invalidation option on each stack', () => {
  it.each(suiteNames())('%s: tunnel gives the same result under qemu and batched', (name) => {
    const sc = scenario(name);
    const qemu = runStack(sc, 'tunnel', { invalidate: 'qemu', platforms });
    const batched = runStack(sc, 'tunnel', { invalidate: 'batched', platforms });
    expect(batched).toEqual(qemu);
  }, 30_000);

  it.each(suiteNames())('%s: iommufd counts no flush of several entries, and gives the same result under both', (name) => {
    const sc = scenario(name);
    const qemu = runStack(sc, 'iommufd', { invalidate: 'qemu', platforms });
    expect(qemu.steps.some((s) => (s.counters[MULTI_ENTRY_FLUSHES] ?? 0) > 0)).toBe(false);
    expect(runStack(sc, 'iommufd', { invalidate: 'batched', platforms })).toEqual(qemu);
  }, 30_000);

  it('the suite runs a stack again under the second option once a flush of several entries was counted', async () => {
    const counting = (flag: boolean): { platform: StackPlatform; backends: () => number } => {
      const base = builtinPlatforms().iommufd!;
      let made = 0;
      const platform: StackPlatform = {
        ...base,
        backend: (init) => {
          made++;
          const be: VmmBackend = base.backend(init);
          if (!flag) return be;
          // as if the guest had flushed several ranges of one PASID before one wait
          const invalidate = be.invalidate.bind(be);
          be.invalidate = (d, p, r) => {
            init.sim.recorder.count(MULTI_ENTRY_FLUSHES);
            return invalidate(d, p, r);
          };
          return be;
        },
      };
      return { platform, backends: () => made };
    };
    for (const flag of [false, true]) {
      const c = counting(flag);
      const runs = await runSuite({ scenarios: ['vsva-unmap-invalidate'], invalidate: ['qemu', 'batched'], costs: { name: 'default', table: DEFAULT_COSTS }, seed: 1, trace: false, resimulateContended: false, platforms: { iommufd: c.platform } });
      expect(runs.map((r) => r.invalidate)).toEqual(['qemu', 'batched']);
      expect(c.backends(), `flushes of several entries counted: ${flag}`).toBe(flag ? 2 : 1);
    }
  });
});
