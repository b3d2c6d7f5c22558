/**
 * The PASID tests of tools/testing/selftests/iommu/iommufd.c (fixture iommufd_device_pasid,
 * variant has_pasid, 6.15), on a real PCI function behind the emulated VT-d. The selftest calls
 * iommufd_device_attach/replace/detach(idev, pasid, …) through IOMMU_TEST_OP_PASID_*; so do these,
 * on the idev that VFIO_DEVICE_BIND_IOMMUFD made. test_cmd_pasid_check_hwpt reads the HWPT
 * iommufd attached at the PASID; here the hardware PASID entry is checked as well.
 */
import { describe, expect, it } from 'vitest';
import { PGTT } from '../../../models/hw/vtd/tables.ts';
import { EBUSY, EINVAL, errname } from '../../../models/kernel/errno.ts';
import type { Span } from '../../../sim/tracer.ts';
import { pasidEntryOf } from '../../../models/iommu/intel/pasid.ts';
import type { DmarDomain } from '../../../models/iommu/intel/iommu.ts';
import { iommufd_device_attach, iommufd_device_detach, iommufd_device_replace, type IommufdDevice } from '../../../models/iommufd/device.ts';
import type { IommufdHwPagetable } from '../../../models/iommufd/hw_pagetable.ts';
import { ALLOC_PASID, DATA2_GPA, GUEST_VA, NEST_PARENT, nestRig, type NestRig } from './nest-rig.ts';

function findChain(roots: readonly Span[], names: readonly string[]): Span[] | null {
  for (const r of roots) {
    if (r.fn.name === names[0]) {
      if (names.length === 1) return [r];
      const rest = findChain(r.children, names.slice(1));
      if (rest) return [r, ...rest];
    }
    const deeper = findChain(r.children, names);
    if (deeper) return deeper;
  }
  return null;
}

/** FIXTURE_SETUP(iommufd_device_pasid): a bound device, and the kernel API as the selftest driver calls it */
function pasidFixture(r: NestRig) {
  const dfd = r.cdev();
  const devId = r.ok(r.bind(dfd)).out.out_devid as number;
  const idev = (): IommufdDevice => r.vdevs[0]!.iommufd_device!;
  const asTask = <T>(fn: () => T): T => {
    const prev = r.m.k.current;
    r.m.k.current = r.task;
    try {
      return fn();
    } finally {
      r.m.k.current = prev;
    }
  };
  return {
    dfd,
    devId,
    idev,
    /** test_cmd_pasid_attach / test_err_pasid_attach */
    pasid_attach: (pasid: number, pt: number) => asTask(() => iommufd_device_attach(idev(), pasid, { id: pt })),
    pasid_replace: (pasid: number, pt: number) => asTask(() => iommufd_device_replace(idev(), pasid, { id: pt })),
    pasid_detach: (pasid: number) => asTask(() => iommufd_device_detach(idev(), pasid)),
    /** test_cmd_mock_domain_replace of the RID: VFIO re-attach replaces */
    rid_replace: (pt: number) => r.attach(dfd, pt),
    /** test_cmd_pasid_check_hwpt: the HWPT id at the PASID, 0 for none */
    check_hwpt: (pasid: number): number => {
      const a = idev().igroup.pasid_attach.get(pasid);
      return a && a !== 'reserved' ? (a.hwpt as IommufdHwPagetable).id : 0;
    },
    entry: (pasid: number) => pasidEntryOf(r.m.iommu, r.devs[0]!.info, pasid),
  };
}

const expectRc = (rc: number, errno: number) => expect(errname(-rc)).toBe(errname(errno));

describe('iommufd_device_pasid (has_pasid): PASID attach, replace and detach, 6.15 rules', () => {
  it('pasid_attach: the RID must be pasid-compat (EINVAL), then a nested HWPT attaches; re-attach is EBUSY; a non-compat HWPT or an IOAS is EINVAL', () => {
    const r = nestRig();
    const f = pasidFixture(r);
    const pasid = 100;
    const parent = r.ok(r.hwptAlloc(f.devId, r.ifd.ioas, NEST_PARENT)).id; // not pasid-compat
    const nested0 = r.ok(r.hwptAlloc(f.devId, parent, ALLOC_PASID, { root: r.pt.root })).id;
    const nested1 = r.ok(r.hwptAlloc(f.devId, parent, ALLOC_PASID, { root: r.pt.root })).id;
    const s2 = r.ok(r.hwptAlloc(f.devId, r.ifd.ioas, ALLOC_PASID)).id; // pasid-compat paging

    // RID on a non-pasid-compat domain: no PASID may attach
    r.ok(f.rid_replace(parent));
    expectRc(f.pasid_attach(pasid, s2), EINVAL);
    expect(f.check_hwpt(pasid)).toBe(0);

    // RID on a pasid-compat domain: the PASID attaches, and the RID may not go back to a non-compat one
    r.ok(f.rid_replace(s2));
    expect(f.pasid_attach(pasid, nested0)).toBe(0);
    const rid = f.rid_replace(parent);
    expect(errname(rid.errno)).toBe('EINVAL');
    f.pasid_detach(pasid);
    expect(f.check_hwpt(pasid)).toBe(0);

    // a non-compat HWPT, and an IOAS (its auto domain is never pasid-compat): EINVAL, nothing attached
    expectRc(f.pasid_attach(pasid, parent), EINVAL);
    expect(f.check_hwpt(pasid)).toBe(0);
    expectRc(f.pasid_attach(pasid, r.ifd.ioas), EINVAL);
    expect(f.check_hwpt(pasid)).toBe(0);

    // the pasid-compat paging HWPT attaches; attach does not overwrite: EBUSY
    expect(f.pasid_attach(pasid, s2)).toBe(0);
    expect(f.check_hwpt(pasid)).toBe(s2);
    expectRc(f.pasid_attach(pasid, nested0), EBUSY);
    f.pasid_detach(pasid);

    // nested: the hardware entry is a nested one whose first stage is the guest's table
    expect(f.pasid_attach(pasid, nested0)).toBe(0);
    expect(f.check_hwpt(pasid)).toBe(nested0);
    expect(f.entry(pasid)).toMatchObject({ present: true, pgtt: PGTT.NESTED, flptr: r.pt.root });
    expectRc(f.pasid_attach(pasid, nested0), EBUSY);
    f.pasid_detach(pasid);
    expect(f.entry(pasid)?.present ?? false).toBe(false);
    void nested1;
  });

  it('pasid_replace: an unattached PASID is EINVAL; an IOAS is EINVAL and keeps the old HWPT; nested → nested succeeds', () => {
    const r = nestRig();
    const f = pasidFixture(r);
    const pasid = 200;
    const parent = r.ok(r.hwptAlloc(f.devId, r.ifd.ioas, NEST_PARENT | ALLOC_PASID)).id;
    r.ok(f.rid_replace(parent));
    const s2 = r.ok(r.hwptAlloc(f.devId, r.ifd.ioas, ALLOC_PASID)).id;
    const nested0 = r.ok(r.hwptAlloc(f.devId, parent, ALLOC_PASID, { root: r.pt.root })).id;
    const pt2 = r.firstStage();
    const nested1 = r.ok(r.hwptAlloc(f.devId, parent, ALLOC_PASID, { root: pt2.root })).id;

    expectRc(f.pasid_replace(pasid, s2), EINVAL);
    expect(f.check_hwpt(pasid)).toBe(0);
    expect(f.pasid_attach(pasid, s2)).toBe(0);
    expectRc(f.pasid_replace(pasid, r.ifd.ioas), EINVAL);
    expect(f.check_hwpt(pasid)).toBe(s2);
    expect(f.pasid_replace(pasid, nested0)).toBe(0);
    expect(f.check_hwpt(pasid)).toBe(nested0);
    expect(f.pasid_replace(pasid, nested1)).toBe(0);
    expect(f.check_hwpt(pasid)).toBe(nested1);
    expect(f.entry(pasid)).toMatchObject({ present: true, pgtt: PGTT.NESTED, flptr: pt2.root });
    // the replaced HWPTs hold no attachment any more: they can be destroyed
    expect(r.destroy(nested0).rc).toBe(0);
    expect(errname(r.destroy(nested1).errno)).toBe('EBUSY');
    f.pasid_detach(pasid);
    expect(r.destroy(nested1).rc).toBe(0);
  });

  it('pasid_detach: detaching an unattached PASID is a no-op; detach tears the entry down and frees the HWPT for destroy', () => {
    const r = nestRig();
    const f = pasidFixture(r);
    const parent = r.ok(r.hwptAlloc(f.devId, r.ifd.ioas, NEST_PARENT | ALLOC_PASID)).id;
    r.ok(f.rid_replace(parent));
    const nested = r.ok(r.hwptAlloc(f.devId, parent, ALLOC_PASID, { root: r.pt.root })).id;
    f.pasid_detach(7); // nothing attached: no-op
    expect(f.pasid_attach(7, nested)).toBe(0);
    expect(errname(r.destroy(nested).errno)).toBe('EBUSY');
    f.pasid_detach(7);
    expect(f.check_hwpt(7)).toBe(0);
    expect(f.entry(7)?.present ?? false).toBe(false);
    expect(r.destroy(nested).rc).toBe(0);
  });

  it('compat errnos: a nested HWPT without IOMMU_HWPT_ALLOC_PASID is EINVAL on a PASID; a parent with dirty tracking on is EINVAL (intel_nested_set_dev_pasid)', () => {
    const r = nestRig();
    const f = pasidFixture(r);
    const parent = r.ok(r.hwptAlloc(f.devId, r.ifd.ioas, NEST_PARENT | ALLOC_PASID)).id;
    r.ok(f.rid_replace(parent));
    const plain = r.ok(r.hwptAlloc(f.devId, parent, 0, { root: r.pt.root })).id;
    expectRc(f.pasid_attach(3, plain), EINVAL);
    // through the cdev too: VFIO_DEVICE_ATTACH_IOMMUFD_PT with VFIO_DEVICE_ATTACH_PASID
    expect(errname(r.attach(f.dfd, plain, 3).errno)).toBe('EINVAL');
    const nested = r.ok(r.hwptAlloc(f.devId, parent, ALLOC_PASID, { root: r.pt.root })).id;
    // the state IOMMU_HWPT_SET_DIRTY_TRACKING(ENABLE) leaves on the parent (that ioctl is not modelled)
    const s2 = f.idev().igroup.pasid_attach.get(0);
    const parentDomain = (s2 && s2 !== 'reserved' ? s2.hwpt!.domain : null) as DmarDomain;
    parentDomain.dirty_tracking = true;
    expectRc(f.pasid_attach(3, nested), EINVAL);
    expect(f.check_hwpt(3)).toBe(0);
    parentDomain.dirty_tracking = false;
    expect(f.pasid_attach(3, nested)).toBe(0);
  });

  it('the chain: VFIO_DEVICE_ATTACH_IOMMUFD_PT(PASID) → … → iommu_attach_device_pasid → intel_nested_set_dev_pasid → intel_pasid_setup_nested; re-attach → iommu_replace_device_pasid → intel_pasid_replace_nested', () => {
    const r = nestRig();
    const a = r.assign();
    const n1 = r.ok(r.hwptAlloc(a.devId, a.parent, ALLOC_PASID, { root: r.pt.root })).id;
    const pt2 = r.firstStage();
    const n2 = r.ok(r.hwptAlloc(a.devId, a.parent, ALLOC_PASID, { root: pt2.root })).id;
    let out = { rc: -1, errno: 0 };
    const rec = r.m.sim.step(r.task.thread, '1', 'attach pasid', () => (out = r.attach(a.dfd, n1, 5)));
    r.ok(out);
    expect(
      findChain(rec.trace, [
        'vfio_df_ioctl_attach_pt',
        'vfio_iommufd_physical_pasid_attach_ioas',
        'iommufd_device_attach',
        'iommufd_device_change_pt',
        'iommufd_device_do_attach',
        'iommufd_hw_pagetable_attach',
        'iommufd_hwpt_attach_device',
        'iommu_attach_device_pasid',
        '__iommu_set_group_pasid',
        'intel_nested_set_dev_pasid',
        'domain_setup_nested',
        'intel_pasid_setup_nested',
      ]),
    ).not.toBeNull();
    // copies: 12 + 4 in, pt_id 4 out
    expect(rec.ioctls[0]).toMatchObject({ name: 'VFIO_DEVICE_ATTACH_IOMMUFD_PT', file: 'vfio-device-cdev', copiesFromUser: 2, bytesFromUser: 16, copiesToUser: 1, bytesToUser: 4 });
    const rec2 = r.m.sim.step(r.task.thread, '2', 'replace pasid', () => (out = r.attach(a.dfd, n2, 5)));
    r.ok(out);
    expect(
      findChain(rec2.trace, [
        'vfio_iommufd_physical_pasid_attach_ioas',
        'iommufd_device_replace',
        'iommufd_device_do_replace',
        'iommufd_hwpt_replace_device',
        'iommu_replace_device_pasid',
        '__iommu_set_group_pasid',
        'intel_nested_set_dev_pasid',
        'domain_setup_nested',
        'intel_pasid_replace_nested',
      ]),
    ).not.toBeNull();
  });

  it('replace through the cdev is hitless: a DMA at every QI doorbell during the replace translates', () => {
    const r = nestRig();
    const a = r.assign();
    const n1 = r.ok(r.hwptAlloc(a.devId, a.parent, ALLOC_PASID, { root: r.pt.root })).id;
    r.ok(r.attach(a.dfd, n1, 5));
    const d = r.devs[0]!;
    expect(d.pci.dmaWrite(5, GUEST_VA, Uint8Array.of(1, 2)).status).toBe('ok');
    const pt2 = r.firstStage();
    pt2.map(GUEST_VA, DATA2_GPA, 0x8000);
    const n2 = r.ok(r.hwptAlloc(a.devId, a.parent, ALLOC_PASID, { root: pt2.root })).id;
    const seen: string[] = [];
    const stop = r.m.vtd.mmio.observe(0x88, (_o, _v, phase) => {
      if (phase === 'before') seen.push(d.pci.dmaWrite(5, GUEST_VA, Uint8Array.of(9)).status);
    });
    r.ok(r.attach(a.dfd, n2, 5));
    stop();
    expect(seen.length).toBeGreaterThan(0);
    expect(seen.every((s) => s === 'ok')).toBe(true);
    expect(d.pci.dmaWrite(5, GUEST_VA + 0x20, Uint8Array.of(7, 7)).status).toBe('ok');
    expect([...r.readGuest(DATA2_GPA + 0x20, 2)]).toEqual([7, 7]);
    // the old HWPT is free to go; the VMM destroys it
    expect(r.destroy(n1).rc).toBe(0);
  });
});
