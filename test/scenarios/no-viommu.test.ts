/**
 * `no-viommu-baseline` (requirements-and-peers.md §(b) flow 1): a VM without a vIOMMU runs on both
 * stacks, with the backends' `nesting: false` option: A a plain VFIO_TYPE1v2_IOMMU container, B the
 * RID attached to the IOAS (its automatic HWPT). The ioctls the VMM issues are the baseline cost.
 */
import { describe, expect, it } from 'vitest';
import { VFIO_SET_IOMMU } from '../../models/kernel/uapi/ioctls/index.ts';
import { VFIO_TYPE1v2_IOMMU } from '../../models/kernel/uapi/index.ts';
import type { BackendInit } from '../../models/vmm/backend.ts';
import { builtinPlatforms } from '../../scenarios/platforms.ts';
import type { StackPlatform } from '../../scenarios/platform.ts';
import type { StackName } from '../../scenarios/results.ts';
import { runScenario } from '../../scenarios/runner.ts';
import { loadScenario } from '../../scenarios/suite.ts';

interface Seen {
  opts: BackendInit['options'][];
  opens: string[];
  setIommu: number[];
}

/** The built-in platforms, with the VMM's opens, SET_IOMMU arguments and backend options recorded. */
function spied(): { platforms: Partial<Record<StackName, StackPlatform>>; seen: Record<StackName, Seen> } {
  const seen = { tunnel: { opts: [], opens: [], setIommu: [] }, iommufd: { opts: [], opens: [], setIommu: [] } } as Record<StackName, Seen>;
  const base = builtinPlatforms();
  const platforms: Partial<Record<StackName, StackPlatform>> = {};
  for (const name of ['tunnel', 'iommufd'] as const) {
    const p = base[name]!;
    platforms[name] = {
      ...p,
      init: (m, d, sc) => p.init(m, d, sc),
      spec: (m, b) => p.spec(m, b),
      backend: (init) => {
        const s = seen[name];
        s.opts.push(init.options);
        const sys = init.sys;
        const open = sys.open.bind(sys);
        const ioctl = sys.ioctl.bind(sys);
        sys.open = (task, path) => {
          if (task === init.task) s.opens.push(path);
          return open(task, path);
        };
        sys.ioctl = (task, fd, cmd, arg) => {
          if (task === init.task && cmd === VFIO_SET_IOMMU) s.setIommu.push(arg);
          return ioctl(task, fd, cmd, arg);
        };
        return p.backend(init);
      },
    };
  }
  return { platforms, seen };
}

function scenario() {
  const r = loadScenario('no-viommu-baseline');
  if (!r.ok) throw new Error(r.errors.map((e) => e.message).join('; '));
  return r.scenario;
}

describe('no-viommu-baseline', () => {
  it('runs ok on both stacks with equal hardware digests', () => {
    const r = runScenario(scenario(), { platforms: builtinPlatforms() });
    expect(r.stacks.tunnel?.error).toBeUndefined();
    expect(r.stacks.iommufd?.error).toBeUndefined();
    expect(r.stacks.tunnel?.ok).toBe(true);
    expect(r.stacks.iommufd?.ok).toBe(true);
    expect(r.digestsEqual).toBe(true);
    for (const s of [r.stacks.tunnel!, r.stacks.iommufd!]) {
      expect(s.steps.map((x) => x.outcome)).toEqual(['ok', 'ok', 'ok', 'ok', 'ok', 'ok', 'fault', 'ok']);
      expect(s.leaks).toEqual({});
    }
  });

  it('prices plain assignment: A type1v2 with no nesting or /dev/ioasid, B the IOAS with no HWPT_ALLOC', () => {
    const { platforms, seen } = spied();
    const r = runScenario(scenario(), { platforms });
    const names = (stack: StackName) => r.stacks[stack]!.steps.flatMap((s) => s.ioctlList.map((i) => i.name));
    const assigns = (stack: StackName) => r.stacks[stack]!.steps.filter((s) => s.op === 'assign').map((s) => s.ioctlList.map((i) => i.name));

    expect(seen.tunnel.opts).toEqual([expect.objectContaining({ nesting: false })]);
    expect(seen.iommufd.opts).toEqual([expect.objectContaining({ nesting: false })]);

    // A: one type1v2 container per group, guest RAM mapped in each
    expect(seen.tunnel.setIommu).toEqual([VFIO_TYPE1v2_IOMMU, VFIO_TYPE1v2_IOMMU]);
    expect(seen.tunnel.opens).not.toContain('/dev/ioasid');
    expect(names('tunnel').filter((n) => /NESTING|IOASID|GET_INFO|DMA_FAULT/.test(n))).toEqual([]);
    for (const a of assigns('tunnel')) {
      expect(a).toEqual(['VFIO_GET_API_VERSION', 'VFIO_CHECK_EXTENSION', 'VFIO_GROUP_GET_STATUS', 'VFIO_GROUP_SET_CONTAINER', 'VFIO_SET_IOMMU', 'VFIO_IOMMU_MAP_DMA', 'VFIO_GROUP_GET_DEVICE_FD']);
    }

    // B: one IOAS mapped once, each device bound and attached to it
    expect(seen.iommufd.setIommu).toEqual([]);
    expect(names('iommufd').filter((n) => /HWPT|FAULT_QUEUE|GET_HW_INFO/.test(n))).toEqual([]);
    expect(assigns('iommufd')).toEqual([
      ['IOMMU_IOAS_ALLOC', 'IOMMU_IOAS_MAP', 'VFIO_DEVICE_BIND_IOMMUFD', 'VFIO_DEVICE_ATTACH_IOMMUFD_PT'],
      ['VFIO_DEVICE_BIND_IOMMUFD', 'VFIO_DEVICE_ATTACH_IOMMUFD_PT'],
    ]);
  });
});
