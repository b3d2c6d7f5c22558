/**
 * The tunnel platform declares that its backend ignores the invalidation option, so a suite run
 * under both options runs it once per scenario (record once). This checks the claim where the
 * runner relies on it: every scenario of the suite, run on tunnel under each option, gives equal
 * results.
 */
import { describe, expect, it } from 'vitest';
import { builtinPlatforms } from '../../scenarios/platforms.ts';
import { runStack } from '../../scenarios/runner.ts';
import { loadScenario, suiteNames } from '../../scenarios/suite.ts';

const platforms = builtinPlatforms();

function scenario(name: string) {
  const r = loadScenario(name);
  if (!r.ok) throw new Error(name);
  return r.scenario;
}

describe('the invalidation option on each stack', () => {
  it('is declared ignored by tunnel alone', () => {
    expect(platforms.tunnel!.invalidationOptionIgnored).toBe(true);
    expect(platforms.iommufd!.invalidationOptionIgnored ?? false).toBe(false);
  });

  it.each(suiteNames())('%s: tunnel gives the same result under qemu and batched', (name) => {
    const sc = scenario(name);
    const qemu = runStack(sc, 'tunnel', { invalidate: 'qemu', platforms });
    const batched = runStack(sc, 'tunnel', { invalidate: 'batched', platforms });
    expect(batched).toEqual(qemu);
  }, 30_000);
});
