import { describe, expect, it } from 'vitest';
import { sweepFailNth } from '../../../sim/index.ts';
import { ioasid_live_ids } from '../../../models/iommu/ioasid.ts';
import { intel_svm_bound } from '../../../models/iommu/intel/svm_v8.ts';
import { pasidEntryOf } from '../../../models/iommu/intel/pasid.ts';
import { PASID, expectV4BindLeak, leaksSince, setUpThroughBind, tunnelRig, type TunnelRig } from './tunnel-rig.ts';

const entryPresent = (r: TunnelRig) => pasidEntryOf(r.m.iommu, r.devs[0]!.info, PASID)?.present ?? false;

describe("detach_group's cleanup is keyed on current->mm (v8 04/10)", () => {
  it('closing the group fd from the process that bound unbinds every PASID and leaks nothing', () => {
    const r = tunnelRig({ ramSize: 256 << 10 });
    const { cont, grp, ioasid } = r.assign();
    expect(r.bind(cont)).toBe(0);
    expect(r.sys.close(r.task, grp)).toBe(0);
    expect(entryPresent(r)).toBe(false);
    expect(intel_svm_bound(r.m.k, PASID)).toBeNull();
    r.sys.close(r.task, cont);
    r.sys.close(r.task, ioasid);
    r.m.sim.leaks.assertClean();
  });

  it('another thread of the same process finds the bindings too (same mm)', () => {
    const r = tunnelRig({ ramSize: 256 << 10 });
    const { cont, grp } = r.assign();
    expect(r.bind(cont)).toBe(0);
    const t2 = r.m.k.addTask(r.task.process, 'vcpu0');
    expect(r.sys.close(t2, grp)).toBe(0);
    expect(entryPresent(r)).toBe(false);
  });

  it('closing the last group reference from another process misses the bindings, as v8 does', () => {
    const r = tunnelRig({ ramSize: 256 << 10 });
    const { cont, grp, ioasid } = r.assign();
    expect(r.bind(cont)).toBe(0);
    // the group fd is handed to a helper process (SCM_RIGHTS); qemu drops its own fd
    const helper = r.m.k.createProcess('helper');
    const hfd = r.sys.passFd(r.task, grp, helper);
    expect(r.sys.close(r.task, grp)).toBe(0);
    expect(entryPresent(r)).toBe(true); // not the last reference yet
    const objectsBefore = r.m.sim.leaks.count('object');
    // the helper's close drops the last reference: detach_group runs with current = helper, whose
    // mm has no /dev/ioasid user, so v8 unbinds nothing before detaching and freeing the domain
    expect(r.sys.close(helper, hfd)).toBe(0);
    expect(entryPresent(r)).toBe(true);
    expect(intel_svm_bound(r.m.k, PASID)!.devs).toHaveLength(1);
    // the second stage the entry still points at has been freed with the container's domain
    const e = pasidEntryOf(r.m.iommu, r.devs[0]!.info, PASID)!;
    expect(r.m.mem.owner(e.slptptr)).toBeUndefined();
    expect(r.m.sim.leaks.count('object')).toBeLessThan(objectsBefore);
    expect(r.m.sim.leaks.count('object')).toBeGreaterThan(0);
    // only qemu's /dev/ioasid release frees the PASID; V4's FREE notification then tears it down
    expect(r.sys.close(r.task, cont)).toBe(0);
    expect(entryPresent(r)).toBe(true);
    expect(r.sys.close(r.task, ioasid)).toBe(0);
    expect(entryPresent(r)).toBe(false);
    expect(ioasid_live_ids(r.m.k)).toEqual([]);
    r.m.sim.leaks.assertClean();
  });

  it('closing /dev/ioasid before the group tears the bindings down through the FREE notification', () => {
    const r = tunnelRig({ ramSize: 256 << 10 });
    const { cont, grp, ioasid } = r.assign();
    expect(r.bind(cont)).toBe(0);
    expect(r.sys.close(r.task, ioasid)).toBe(0);
    expect(entryPresent(r)).toBe(false);
    expect(r.sys.close(r.task, grp)).toBe(0);
    expect(r.sys.close(r.task, cont)).toBe(0);
    r.m.sim.leaks.assertClean();
  });
});

describe('a refused first bind leaks its PASID reference (V4 14/18 on v5.12 svm.c)', () => {
  it('MTS bits make intel_pasid_setup_nested fail after the intel_svm took its ioasid reference: the PASID is never reclaimed', () => {
    const r = tunnelRig({ ramSize: 64 << 10 });
    const { cont, grp, ioasid } = r.assign();
    expect(r.bind(cont, r.bindData({}, { flags: 1n << 2n }))).toBe(-1); // IOMMU_SVA_VTD_GPASID_PCD
    for (const fd of [grp, cont, ioasid]) expect(r.sys.close(r.task, fd)).toBe(0);
    // the free on release finds a second reference: FREE_PENDING, the notifier has no svm to drop
    expect(ioasid_live_ids(r.m.k)).toEqual([PASID]);
    expect(() => r.m.sim.leaks.assertClean()).toThrow(/1 leaked\n {2}object: ioasid_data/);
  });
});

describe('fail-nth over container set-up, map, bind and close', () => {
  it('rolls back cleanly at every failure point, except the PASID reference V4 leaks on a failed first bind', () => {
    const results = sweepFailNth((n) => {
      const r = tunnelRig({ ramSize: 64 << 10 });
      const base = r.m.sim.leaks.snapshot();
      r.m.sim.failnth.arm(n);
      const { fds, failedAt } = setUpThroughBind(r);
      const bound = !failedAt();
      for (const name of ['group', 'container', 'ioasid'] as const) if (fds[name] !== undefined) r.sys.close(r.task, fds[name]);
      const { leaked, labels } = leaksSince(r, base);
      return { failnth: r.m.sim.failnth, result: { failedAt: failedAt(), bound, leaked, labels, present: entryPresent(r), live: ioasid_live_ids(r.m.k) } };
    });
    expect(results.length).toBeGreaterThan(20);
    const last = results[results.length - 1]!;
    expect(last.fired).toBeNull();
    expect(last.result.bound).toBe(true);
    for (const { n, fired, result } of results) {
      const where = `n=${n} ${fired?.site}:${fired?.name} failed at ${result.failedAt}`;
      expect(result.present, where).toBe(false);
      if (Object.keys(result.leaked).length === 0) {
        expect(result.live, where).toEqual([]);
        continue;
      }
      expectV4BindLeak(result, where);
    }
    const leaky = results.filter((x) => Object.keys(x.result.leaked).length).map((x) => x.fired!.name);
    expect(leaky.length).toBeGreaterThan(0);
    expect(leaky).toContain('intel_svm_dev');
  });
});
