/**
 * The IOPF fault queue (eventq.c @ v6.15) end to end on the emulated VT-d: a device DMA that
 * misses in the guest's first stage raises a page request (PRI) → the PRQ → prq_event_thread →
 * io-pgfault → the HWPT's iopf_handler → the fault fd's read() → the VMM's write() of the response
 * → iopf_group_response → the page group response descriptor → the device retries and succeeds.
 */
import { describe, expect, it } from 'vitest';
import { EINVAL, ESPIPE, errname } from '../../../models/kernel/errno.ts';
import {
  IOMMU_PGFAULT_FLAGS_LAST_PAGE,
  IOMMU_PGFAULT_FLAGS_PASID_VALID,
  IOMMU_PGFAULT_PERM_WRITE,
  decode,
  encode,
  iommu_hwpt_page_response,
  iommu_hwpt_pgfault,
} from '../../../models/kernel/uapi/index.ts';
import { EPOLLIN, EPOLLOUT, type IommufdFault } from '../../../models/iommufd/fault.ts';
import type { IommufdCtx } from '../../../models/iommufd/iommufd_private.ts';
import { ALLOC_PASID, FAULT_ID_VALID, GUEST_VA, NEST_PARENT, nestRig } from './nest-rig.ts';

const PASID = 5;
const MISSING = GUEST_VA + 0x10_0000; // not in the guest table yet
const MISSING_GPA = 0x30_0000;

function faultRig(opts: Parameters<typeof nestRig>[0] = {}) {
  const r = nestRig({ pri: true, ats: true, ...opts });
  const a = r.assign();
  const q = r.faultAlloc();
  const nested = r.hwptAlloc(a.devId, a.parent, ALLOC_PASID | FAULT_ID_VALID, { root: r.pt.root, fault_id: q.id });
  const d = r.devs[0]!;
  const readFaults = (n = 4) => {
    const res = r.u.readInto(q.fd, n * 40);
    const recs = [];
    for (let off = 0; off < Math.max(res.rc, 0); off += 40) recs.push(decode(iommu_hwpt_pgfault, res.bytes.subarray(off, off + 40)));
    return { ...res, recs };
  };
  const respond = (cookie: number, code: number) => r.u.write(q.fd, encode(iommu_hwpt_page_response, { cookie, code }));
  const faultObj = () => r.task.process.files.get(q.fd)!.private_data as IommufdFault;
  return { ...r, a, q, nested, d, readFaults, respond, faultObj };
}

describe('the fault queue: IOMMU_FAULT_QUEUE_ALLOC, HWPT_ALLOC(FAULT_ID_VALID), read and write', () => {
  it('round trip: DMA with PRI → PRQ → iopf → read() of a 40-byte record → write() of the response → the retried DMA lands', () => {
    const r = faultRig();
    r.ok(r.nested, 'nested+fault');
    r.ok(r.attach(r.a.dfd, r.nested.id, PASID), 'attach pasid');
    expect(r.devs[0]!.info.pri_enabled).toBe(true); // iommufd_fault_iopf_enable on attach
    // the fd is an anon inode in the VMM's table
    expect(r.task.process.files.get(r.q.fd)!.path).toBe('[iommufd-pgfault]');
    expect(r.m.sys.poll(r.task, r.q.fd)).toBe(EPOLLOUT);

    const dma = r.d.pci.dmaWrite(PASID, MISSING + 8, Uint8Array.of(9, 8, 7));
    expect(dma.status).toBe('pending');
    r.m.sim.sched.run(); // the PRQ thread hands the request to io-pgfault → iommufd_fault_iopf_handler
    expect(dma.status).toBe('pending');
    expect(r.m.sys.poll(r.task, r.q.fd) & EPOLLIN).toBe(EPOLLIN);

    const got = r.readFaults();
    expect(got.rc).toBe(40);
    expect(got.recs).toHaveLength(1);
    const f = got.recs[0]!;
    expect(f).toMatchObject({ dev_id: r.a.devId, pasid: PASID, addr: BigInt(MISSING), length: 0 });
    expect((f.flags as number) & IOMMU_PGFAULT_FLAGS_PASID_VALID).toBeTruthy();
    expect((f.flags as number) & IOMMU_PGFAULT_FLAGS_LAST_PAGE).toBeTruthy();
    expect((f.perm as number) & IOMMU_PGFAULT_PERM_WRITE).toBeTruthy();
    expect(f.cookie as number).toBeGreaterThanOrEqual(1);
    expect(r.readFaults().rc).toBe(0); // nothing left: read does not block

    r.pt.map(MISSING, MISSING_GPA, 0x1000); // the guest handles the fault
    expect(r.respond(f.cookie as number, 0).rc).toBe(8);
    r.m.sim.sched.run();
    expect(dma.status).toBe('ok');
    expect([...r.readGuest(MISSING_GPA + 8, 3)]).toEqual([9, 8, 7]);
    expect(r.m.iopf.pendingGroups(r.d.dev)).toEqual([]);
  });

  it('read and write errnos: count % 40 and count % 8 are ESPIPE; code ∉ {0, 1} or an unknown cookie is EINVAL', () => {
    const r = faultRig();
    r.ok(r.attach(r.a.dfd, r.nested.id, PASID));
    expect(errname(r.u.readInto(r.q.fd, 39).errno)).toBe(errname(ESPIPE));
    expect(errname(r.u.write(r.q.fd, new Uint8Array(7)).errno)).toBe(errname(ESPIPE));
    r.d.pci.dmaWrite(PASID, MISSING, Uint8Array.of(1));
    r.m.sim.sched.run();
    const cookie = r.readFaults(1).recs[0]!.cookie as number;
    expect(errname(r.respond(cookie, 2).errno)).toBe(errname(EINVAL));
    expect(errname(r.respond(cookie + 100, 0).errno)).toBe(errname(EINVAL));
    // the group is still answerable after the refused writes
    expect(r.respond(cookie, 1).rc).toBe(8);
    // answered: the cookie is gone
    expect(errname(r.respond(cookie, 0).errno)).toBe(errname(EINVAL));
  });

  it('detach answers pending faults INVALID (iommufd_auto_response_faults): the device stops waiting, nothing is left', () => {
    const r = faultRig();
    r.ok(r.attach(r.a.dfd, r.nested.id, PASID));
    const read = r.d.pci.dmaWrite(PASID, MISSING, Uint8Array.of(1));
    r.m.sim.sched.run();
    expect(r.readFaults().recs).toHaveLength(1); // read, not answered: in fault->response
    const queued = r.d.pci.dmaWrite(PASID, MISSING + 0x1000, Uint8Array.of(2));
    r.m.sim.sched.run(); // queued on deliver, not read
    const fault = r.faultObj();
    expect(fault.deliver).toHaveLength(1);
    expect(fault.response.size).toBe(1);
    r.ok(r.detach(r.a.dfd, PASID), 'detach pasid');
    r.m.sim.sched.run();
    expect(read.status).toBe('error');
    expect(read.error).toMatch(/Invalid Request/);
    expect(queued.status).toBe('error');
    expect(fault.deliver).toHaveLength(0);
    expect(fault.response.size).toBe(0);
    expect(r.m.iopf.pendingGroups(r.d.dev)).toEqual([]);
    expect(r.devs[0]!.info.pri_enabled).toBe(false); // the last fault-capable attachment went
  });

  it('a VF with PRI may not attach a fault-capable HWPT (EINVAL); the FAULT object cannot be destroyed while an HWPT or its fd holds it', () => {
    const r = faultRig({ isVirtfn: true });
    r.ok(r.nested);
    expect(errname(r.attach(r.a.dfd, r.nested.id, PASID).errno)).toBe('EINVAL');
    expect(errname(r.destroy(r.q.id).errno)).toBe('EBUSY');
    expect(r.destroy(r.nested.id).rc).toBe(0);
    expect(errname(r.destroy(r.q.id).errno)).toBe('EBUSY'); // the fd still holds it
    expect(r.u.close(r.q.fd).rc).toBe(0);
    expect(r.destroy(r.q.id).rc).toBe(0);
  });

  it('FAULT_ID_VALID on a nest parent is EOPNOTSUPP; an id that is not a FAULT is ENOENT; closing everything leaks nothing', () => {
    const r = faultRig();
    expect(errname(r.hwptAlloc(r.a.devId, r.ifd.ioas, NEST_PARENT | FAULT_ID_VALID, { fault_id: r.q.id }).errno)).toBe('EOPNOTSUPP');
    expect(errname(r.hwptAlloc(r.a.devId, r.a.parent, ALLOC_PASID | FAULT_ID_VALID, { root: r.pt.root, fault_id: r.a.parent }).errno)).toBe('ENOENT');
    r.ok(r.attach(r.a.dfd, r.nested.id, PASID));
    r.d.pci.dmaWrite(PASID, MISSING, Uint8Array.of(1));
    r.m.sim.sched.run();
    // close with a fault pending and read: the close order iommufd, cdev, fault fd
    const ictx = r.task.process.files.get(r.ifd.fd)!.private_data as IommufdCtx;
    expect(r.u.close(r.ifd.fd).rc).toBe(0);
    expect(ictx.objects.size).toBeGreaterThan(0); // the cdev and the fault fd still hold the ictx
    expect(r.u.close(r.a.dfd).rc).toBe(0);
    expect(r.u.close(r.q.fd).rc).toBe(0);
    r.m.sim.sched.run();
    expect(ictx.objects.size).toBe(0);
    expect(r.m.iopf.pendingGroups(r.d.dev)).toEqual([]);
    expect(r.task.mm.pinnedPages).toBe(0);
    expect(r.m.sim.leaks.count('pin')).toBe(0);
    r.m.sim.leaks.assertClean('fault queue close');
  });
});
