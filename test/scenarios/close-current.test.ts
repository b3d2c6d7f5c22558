/**
 * Whose `current` the releases see at close (scenario `close … from`). v8's type1 detach_group
 * unbinds the PASIDs of current->mm's /dev/ioasid user (ioasid_user_get_from_task); an exiting
 * task has no mm any more when its files are released, so that unbind finds nothing, and the
 * PASID entries stay until /dev/ioasid's release frees the PASIDs.
 */
import { describe, expect, it } from 'vitest';
import type { SpanJson } from '../../sim/index.ts';
import { builtinPlatforms } from '../../scenarios/platforms.ts';
import { stepTrace } from '../../scenarios/results.ts';
import { runScenario } from '../../scenarios/runner.ts';
import { loadScenario } from '../../scenarios/suite.ts';
import type { CloseFrom, LoadedScenario } from '../../scenarios/types.ts';

function scenarioClosingFrom(from: CloseFrom): LoadedScenario {
  const r = loadScenario('exit-close-devices-first');
  if (!r.ok) throw new Error('load');
  const flat = r.scenario.flat.map((f) => (f.step.op === 'close' ? { ...f, step: { ...f.step, from } } : f));
  return { ...r.scenario, flat };
}

/** the names of the spans below every span called `name` */
function under(roots: readonly SpanJson[], name: string): string[] {
  const out: string[] = [];
  const all = (s: SpanJson): void => {
    out.push(s.name);
    s.children.forEach(all);
  };
  const find = (s: SpanJson): void => (s.name === name ? s.children.forEach(all) : s.children.forEach(find));
  roots.forEach(find);
  return out;
}

function closeTrace(from: CloseFrom): SpanJson[] {
  const r = runScenario(scenarioClosingFrom(from), { stacks: ['tunnel'], keepTrace: true, platforms: builtinPlatforms() });
  const st = r.stacks.tunnel!;
  expect(st.error).toBeUndefined();
  return stepTrace(st.steps.find((s) => s.op === 'close')!)!;
}

describe('close: whose current->mm v8 keys its cleanup on', () => {
  it('from the exiting VMM (no mm): detach_group unbinds nothing; /dev/ioasid\'s release tears the three PASID entries down', () => {
    const t = closeTrace('exit');
    expect(under(t, 'vfio_iommu_type1_detach_group')).toContain('ioasid_user_get_from_task');
    expect(under(t, 'vfio_iommu_type1_detach_group')).not.toContain('iommu_sva_unbind_gpasid');
    expect(under(t, 'ioasid_fops_release').filter((n) => n === 'intel_pasid_tear_down_entry')).toHaveLength(3);
  });

  it('from the running VMM (its mm): detach_group finds its /dev/ioasid user and unbinds each device\'s PASIDs first', () => {
    const t = closeTrace('vmm');
    expect(under(t, 'vfio_iommu_type1_detach_group').filter((n) => n === 'iommu_sva_unbind_gpasid').length).toBeGreaterThan(0);
  });
});
