/**
 * Fail-nth (iommufd_fail_nth.c style) over Design B part 2 through the VFIO cdev: bind, IOAS map,
 * HWPT allocation (a NEST_PARENT|PASID parent and two nested VT-d stage-1 HWPTs), RID attach,
 * PASID attach, PASID replace, IOMMU_HWPT_INVALIDATE — with the nth allocation or lookup failing,
 * for every n — and then each close order. Intermediate results are ignored; every run must end
 * with the leak tracker back at its baseline, nothing pinned and no present PASID entry.
 */
import { describe, expect, it } from 'vitest';
import { pasidEntryOf } from '../../../models/iommu/intel/pasid.ts';
import { IS_ERR } from '../../../models/kernel/errno.ts';
import {
  IOMMU_HWPT_DATA_VTD_S1,
  IOMMU_HWPT_INVALIDATE_DATA_VTD_S1,
  IOMMU_IOAS_MAP_FIXED_IOVA,
  IOMMU_IOAS_MAP_READABLE,
  IOMMU_IOAS_MAP_WRITEABLE,
  VFIO_DEVICE_ATTACH_PASID,
  VFIO_DEVICE_DETACH_PASID,
  encode,
  iommu_destroy,
  iommu_hwpt_alloc,
  iommu_hwpt_invalidate,
  iommu_hwpt_vtd_s1,
  iommu_hwpt_vtd_s1_invalidate,
  iommu_ioas_alloc,
  iommu_ioas_map,
  vfio_device_attach_iommufd_pt,
  vfio_device_bind_iommufd,
  vfio_device_detach_iommufd_pt,
} from '../../../models/kernel/uapi/index.ts';
import {
  IOMMU_DESTROY,
  IOMMU_HWPT_ALLOC,
  IOMMU_HWPT_INVALIDATE,
  IOMMU_IOAS_ALLOC,
  IOMMU_IOAS_MAP,
  VFIO_DEVICE_ATTACH_IOMMUFD_PT,
  VFIO_DEVICE_BIND_IOMMUFD,
  VFIO_DEVICE_DETACH_IOMMUFD_PT,
} from '../../../models/kernel/uapi/ioctls/index.ts';
import { HostMachine } from '../../../models/machine/host.ts';
import { iommufd_stack_init } from '../../../models/vfio/device_cdev.ts';
import { UserCalls } from '../../../models/vmm/backend-iommufd-uapi.ts';
import { sweepFailNth, type FailNth } from '../../../sim/index.ts';
import { ALLOC_PASID, NEST_PARENT } from './nest-rig.ts';
import { vmmGuestTables } from '../../helpers/vmm-guest-tables.ts';

const PASID = 9;
const RAM = 0x10000; // 16 pages: a small IOAS map keeps the sweep fast
const GVA = 0x7f00_0000_0000;

function world() {
  const m = new HostMachine({ frames: 1 << 12 });
  const task = m.k.createProcess('qemu');
  const d = m.addPciDevice('dsa0', 0x0300, { pasidBits: 20, ats: true });
  iommufd_stack_init(m);
  const ram = task.mm.mmap(RAM, 'qemu:guest-ram');
  if (IS_ERR(ram)) throw new Error('mmap');
  const u = new UserCalls(m.sys, task);
  // two guest first-stage tables at the top of guest RAM
  const tables = vmmGuestTables(m, task, ram, RAM);
  const table = (gpa: number) => {
    const pt = tables.firstStage();
    pt.map(GVA, gpa, 0x1000);
    return pt.root;
  };
  const roots = [table(0x1000), table(0x2000)] as const;
  return { m, task, d, ram, u, roots };
}

type World = ReturnType<typeof world>;
type Ids = { ifd: number; dfd: number; ioas: number; parent: number; nested: number; nested2: number };

function build(w: World): Ids {
  const { u, ram, roots } = w;
  const ifd = u.open('/dev/iommu').rc;
  const dfd = u.open('/dev/vfio/devices/vfio0').rc;
  const b = u.ioctl(dfd, VFIO_DEVICE_BIND_IOMMUFD, vfio_device_bind_iommufd, { flags: 0, iommufd: ifd }, 'argsz');
  const devId = b.rc >= 0 ? (b.out.out_devid as number) : 1;
  const a = u.ioctl(ifd, IOMMU_IOAS_ALLOC, iommu_ioas_alloc, {}, 'size');
  const ioas = a.rc >= 0 ? (a.out.out_ioas_id as number) : 2;
  u.ioctl(ifd, IOMMU_IOAS_MAP, iommu_ioas_map, {
    flags: IOMMU_IOAS_MAP_FIXED_IOVA | IOMMU_IOAS_MAP_READABLE | IOMMU_IOAS_MAP_WRITEABLE,
    ioas_id: ioas,
    user_va: BigInt(ram),
    length: BigInt(RAM),
    iova: 0n,
  }, 'size');
  const hwpt = (pt_id: number, flags: number, root?: number, dflt = 0) => {
    const data = root === undefined ? null : encode(iommu_hwpt_vtd_s1, { flags: 0n, pgtbl_addr: BigInt(root), addr_width: 48 });
    const at = data ? u.putBytes(data) : 0;
    const r = u.ioctl(ifd, IOMMU_HWPT_ALLOC, iommu_hwpt_alloc, {
      flags,
      dev_id: devId,
      pt_id,
      data_type: data ? IOMMU_HWPT_DATA_VTD_S1 : 0,
      data_len: data?.length ?? 0,
      data_uptr: BigInt(at),
      fault_id: 0,
    }, 'size');
    return r.rc >= 0 ? (r.out.out_hwpt_id as number) : dflt;
  };
  const attach = (pt_id: number, pasid?: number) =>
    pasid === undefined
      ? u.ioctl(dfd, VFIO_DEVICE_ATTACH_IOMMUFD_PT, vfio_device_attach_iommufd_pt, { argsz: 12, flags: 0, pt_id })
      : u.ioctl(dfd, VFIO_DEVICE_ATTACH_IOMMUFD_PT, vfio_device_attach_iommufd_pt, { flags: VFIO_DEVICE_ATTACH_PASID, pt_id, pasid }, 'argsz');
  const parent = hwpt(ioas, NEST_PARENT | ALLOC_PASID, undefined, 3);
  attach(parent);
  const nested = hwpt(parent, ALLOC_PASID, roots[0], 4);
  const nested2 = hwpt(parent, ALLOC_PASID, roots[1], 5);
  attach(nested, PASID); // attach
  attach(nested2, PASID); // replace
  const e = u.putBytes(encode(iommu_hwpt_vtd_s1_invalidate, { flags: 0, addr: BigInt(GVA), npages: 1n }));
  u.ioctl(ifd, IOMMU_HWPT_INVALIDATE, iommu_hwpt_invalidate, {
    hwpt_id: nested2,
    data_uptr: BigInt(e),
    data_type: IOMMU_HWPT_INVALIDATE_DATA_VTD_S1,
    entry_len: 24,
    entry_num: 1,
  }, 'size');
  return { ifd, dfd, ioas, parent, nested, nested2 };
}

/** The close orders (errors ignored). */
const ORDERS: Record<string, (w: World, ids: Ids) => void> = {
  'close the device cdev, then /dev/iommu': (w, ids) => {
    w.u.close(ids.dfd);
    w.u.close(ids.ifd);
  },
  'close /dev/iommu first, then the device cdev': (w, ids) => {
    w.u.close(ids.ifd);
    w.u.close(ids.dfd);
  },
  'PASID detach, RID detach, destroy nested/parent/IOAS, then close the device, then /dev/iommu': (w, ids) => {
    const { u } = w;
    u.ioctl(ids.dfd, VFIO_DEVICE_DETACH_IOMMUFD_PT, vfio_device_detach_iommufd_pt, { flags: VFIO_DEVICE_DETACH_PASID, pasid: PASID }, 'argsz');
    u.ioctl(ids.dfd, VFIO_DEVICE_DETACH_IOMMUFD_PT, vfio_device_detach_iommufd_pt, { argsz: 8, flags: 0 });
    for (const id of [ids.nested, ids.nested2, ids.parent, ids.ioas]) u.ioctl(ids.ifd, IOMMU_DESTROY, iommu_destroy, { id }, 'size');
    u.close(ids.dfd);
    u.close(ids.ifd);
  },
};

function sweep(order: (w: World, ids: Ids) => void) {
  return sweepFailNth((n) => {
    const w = world();
    const baseline = w.m.sim.leaks.snapshot();
    w.m.sim.failnth.arm(n);
    let ids: Ids | null = null;
    w.m.sim.step(w.task.thread, '1', 'fail_nth', () => {
      ids = build(w);
    });
    const fired = w.m.sim.failnth.fired;
    // clean-up cannot fail (fail_nth is disarmed before teardown, as in the selftest)
    w.m.sim.failnth.arm(0);
    order(w, ids!);
    expect(w.m.sim.leaks.snapshot(), `n=${n} (${fired?.name ?? 'none'})`).toEqual(baseline);
    w.m.sim.leaks.assertClean(`fail_nth n=${n}`);
    expect(w.task.mm.pinnedPages, `n=${n}`).toBe(0);
    expect(pasidEntryOf(w.m.iommu, w.d.info, PASID)?.present ?? false, `n=${n}`).toBe(false);
    expect(w.m.core.iommu_group_get(w.d.dev)!.owner_cnt, `n=${n}`).toBe(0);
    return { failnth: { ...w.m.sim.failnth, fired } as FailNth, result: fired?.name ?? 'none' };
  });
}

describe('fail_nth over bind, IOAS map, nested HWPTs, PASID attach/replace, invalidate and close (VFIO cdev)', () => {
  for (const [name, order] of Object.entries(ORDERS)) {
    it(`every allocation and lookup fails in turn; ${name}: back to the baseline, 0 pins, no present PASID entry`, () => {
      const steps = sweep(order);
      expect(steps.length).toBeGreaterThan(60);
      expect(steps[steps.length - 1]!.result).toBe('none');
      const sites = new Set(steps.map((s) => s.result));
      for (const site of ['struct iommufd_device', 'struct iommufd_hwpt_paging', 'struct iommufd_hwpt_nested', 'struct iommufd_attach_handle', 'xa_load(ictx->objects)',
        'struct vfio_device_file', 'dmar_domain(nested)', 'ida_alloc_range(vdev->pasids)', 'xa_insert(group->pasid_array)', 'dev_pasid_info', 'pfn_batch']) {
        expect(sites, site).toContain(site);
      }
    });
  }

  it('the unfailed run really attaches, replaces and invalidates (the sweep covers the whole flow)', () => {
    const w = world();
    const ids = build(w);
    const e = pasidEntryOf(w.m.iommu, w.d.info, PASID);
    expect(e?.present).toBe(true);
    expect(e?.flptr).toBe(w.roots[1]);
    expect(w.task.mm.pinnedPages).toBe(RAM / 4096);
    ORDERS['close the device cdev, then /dev/iommu']!(w, ids);
    expect(w.task.mm.pinnedPages).toBe(0);
  });
});
