/**
 * Fail-nth over the IOPF path of design B: the fault queue, a fault-capable nested HWPT, PASID
 * attach, a page request read from the fault fd and answered by write(), a second request left
 * read-but-unanswered — with the nth allocation or lookup failing, for every n — and then every
 * close order of the three fds (/dev/iommu, the device cdev, the fault fd). Every run must end
 * with the leak tracker empty, nothing pinned, no present PASID entry and no page
 * request group still waiting in io-pgfault.
 */
import { describe, expect, it } from 'vitest';
import { pasidEntryOf } from '../../../models/iommu/intel/pasid.ts';
import { decode, encode, iommu_fault_alloc, iommu_hwpt_page_response, iommu_hwpt_pgfault } from '../../../models/kernel/uapi/index.ts';
import { IOMMU_FAULT_QUEUE_ALLOC } from '../../../models/kernel/uapi/ioctls/index.ts';
import { sweepFailNth, type FailNth } from '../../../sim/index.ts';
import { ALLOC_PASID, FAULT_ID_VALID, GUEST_VA, NEST_PARENT, nestRig, type NestRig } from './nest-rig.ts';

const PASID = 5;
const MISSING = GUEST_VA + 0x10_0000; // not in the guest table until the "guest" handles the fault
const MISSING_GPA = 0x30_0000;

type Fds = { ifd: number; dfd: number; qfd: number };

/** The flow, tolerant of failure at any step as the selftest's is: later steps just fail too. */
function build(r: NestRig): { fds: Fds; answered: boolean; pinned: number } {
  const { u } = r;
  const dfd = u.open('/dev/vfio/devices/vfio0').rc;
  const b = r.bind(dfd);
  const devId = b.rc >= 0 ? (b.out.out_devid as number) : 1;
  const parent = r.hwptAlloc(devId, r.ifd.ioas, NEST_PARENT | ALLOC_PASID);
  r.attach(dfd, parent.rc >= 0 ? parent.id : 3);
  const q = u.ioctl(r.ifd.fd, IOMMU_FAULT_QUEUE_ALLOC, iommu_fault_alloc, { flags: 0 }, 'size');
  const qfd = q.rc >= 0 ? (q.out.out_fault_fd as number) : -1;
  const qid = q.rc >= 0 ? (q.out.out_fault_id as number) : 4;
  const nested = r.hwptAlloc(devId, parent.rc >= 0 ? parent.id : 3, ALLOC_PASID | FAULT_ID_VALID, { root: r.pt.root, fault_id: qid });
  r.attach(dfd, nested.rc >= 0 ? nested.id : 5, PASID);
  const dev = r.devs[0]!;
  // first request: read, handled by the guest, answered
  const first = dev.pci.dmaWrite(PASID, MISSING + 8, Uint8Array.of(9, 8, 7));
  r.m.sim.sched.run();
  const rd = qfd >= 0 ? u.readInto(qfd, 40) : { rc: -1, bytes: new Uint8Array(0) };
  let answered = false;
  if (rd.rc === 40) {
    const cookie = decode(iommu_hwpt_pgfault, rd.bytes.subarray(0, 40)).cookie as number;
    r.pt.map(MISSING, MISSING_GPA, 0x1000);
    answered = u.write(qfd, encode(iommu_hwpt_page_response, { cookie, code: 0 })).rc === 8;
    r.m.sim.sched.run();
    answered &&= first.status === 'ok';
  }
  // second request: read but left unanswered, for the teardown to auto-respond
  dev.pci.dmaWrite(PASID, MISSING + 0x1000, Uint8Array.of(1));
  r.m.sim.sched.run();
  if (qfd >= 0) u.readInto(qfd, 40);
  return { fds: { ifd: r.ifd.fd, dfd, qfd }, answered, pinned: r.task.mm.pinnedPages };
}

const NAMES = { ifd: '/dev/iommu', dfd: 'the device cdev', qfd: 'the fault fd' } as const;
const permutations = <T,>(xs: readonly T[]): T[][] =>
  xs.length <= 1 ? [[...xs]] : xs.flatMap((x, i) => permutations([...xs.slice(0, i), ...xs.slice(i + 1)]).map((p) => [x, ...p]));
const ORDERS = permutations(['ifd', 'dfd', 'qfd'] as const);

function sweep(order: readonly (keyof Fds)[]) {
  return sweepFailNth((n) => {
    const r = nestRig({ pri: true, ats: true });
    r.m.sim.failnth.arm(n);
    let built: ReturnType<typeof build> | null = null;
    r.m.sim.step(r.task.thread, '1', 'fail_nth', () => {
      built = build(r);
    });
    const fired = r.m.sim.failnth.fired;
    r.m.sim.failnth.arm(0);
    const { fds } = built!;
    for (const which of order) if (fds[which] >= 0) r.u.close(fds[which]);
    r.m.sim.sched.run(); // deferred releases and auto-responses
    const at = `n=${n} (${fired?.name ?? 'none'})`;
    expect(r.m.iopf.pendingGroups(r.devs[0]!.dev), at).toEqual([]);
    expect(pasidEntryOf(r.m.iommu, r.devs[0]!.info, PASID)?.present ?? false, at).toBe(false);
    expect(r.task.mm.pinnedPages, at).toBe(0);
    expect(r.m.sim.leaks.snapshot(), at).toEqual({}); // the rig's own /dev/iommu and IOAS went with its fd
    r.m.sim.leaks.assertClean(`fail_nth ${at}`);
    return { failnth: { ...r.m.sim.failnth, fired } as FailNth, result: { site: fired?.name ?? 'none', answered: built!.answered, pinned: built!.pinned } };
  });
}

describe('fail_nth over the fault queue, a fault-capable nested HWPT, PASID attach, fault read and response, and every close order', () => {
  for (const order of ORDERS) {
    it(`close ${order.map((o) => NAMES[o]).join(' → ')}: nothing left, 0 pins, no present PASID entry, no pending request`, () => {
      const steps = sweep(order);
      expect(steps.length).toBeGreaterThan(20);
      const last = steps[steps.length - 1]!.result;
      expect(last.site).toBe('none');
      expect(last.answered).toBe(true); // the unfailed run really delivers, reads and answers
      expect(last.pinned).toBeGreaterThan(0); // and had guest RAM pinned for the attached domain
      const sites = new Set(steps.map((s) => s.result.site));
      for (const site of ['struct iommufd_fault', 'get_unused_fd_flags', 'struct iommufd_hwpt_nested', 'dmar_domain(nested)', 'iommu_fault_param', 'iopf_group', 'xa_alloc(fault->response)', 'xa_load(ictx->objects)']) expect(sites, site).toContain(site);
    });
  }
});
