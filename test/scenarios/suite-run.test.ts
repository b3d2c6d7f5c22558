import { beforeAll, describe, expect, it } from 'vitest';
import type { RunResult } from '../../scenarios/results.ts';
import { DEFAULT_COSTS } from '../../sim/index.ts';
import { runSuite } from '../../scenarios/suite-run.ts';
import { STACKS } from '../../scenarios/results.ts';
import { suiteNames } from '../../scenarios/suite.ts';

describe('the whole suite on both stacks and both invalidation options', () => {
  let runs: RunResult[] = [];
  beforeAll(async () => {
    runs = await runSuite({ invalidate: ['qemu', 'batched'], costs: { name: 'default', table: DEFAULT_COSTS }, seed: 1, trace: false, resimulateContended: false });
  }, 120_000);

  it('runs every scenario twice (qemu, batched)', () => {
    expect(suiteNames().length).toBeGreaterThanOrEqual(14);
    expect(runs.map((r) => `${r.scenario}/${r.invalidate}`).sort()).toEqual(suiteNames().flatMap((n) => [`${n}/batched`, `${n}/qemu`]).sort());
  });

  it.each(suiteNames())('%s: every expectation met on both stacks, no unstated leak, the hardware oracle holds', (name) => {
    for (const r of runs.filter((x) => x.scenario === name)) {
      for (const s of STACKS) {
        const st = r.stacks[s]!;
        expect(st.error, `${name}/${r.invalidate} on ${s}`).toBeUndefined();
        expect(st.ok).toBe(true);
      }
      // equal digests, unless the scenario states a per-stack difference with its reason
      expect(r.digestsEqual || r.digestDifferenceStated, `${name}/${r.invalidate}`).toBe(true);
    }
  });
});
