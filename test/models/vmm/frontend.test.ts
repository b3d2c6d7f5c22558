import { describe, expect, it } from 'vitest';
import { P, primitiveCount } from '../../../sim/index.ts';
import { REG } from '../../../models/hw/vtd/regs.ts';
import { QI_IN_USE } from '../../../models/guest/intel/qi.ts';
import { INV_ALL_PAGES } from '../../../models/vmm/backend.ts';
import { VA, vmRig } from './rig.ts';

const PASID = 5;
const ALL = { addr: 0, pages: INV_ALL_PAGES, leaf: false, devtlb: false };

function bound(o: Parameters<typeof vmRig>[0] = {}) {
  const r = vmRig(o);
  expect(r.frontend.assign('dsa0').ok).toBe(true);
  const p1 = r.guest.createProcess('p1');
  expect(Array.isArray(p1.map(VA, 16, { write: true }))).toBe(true);
  expect(r.guest.bind('dsa0', PASID, p1)).toBe(0);
  return { ...r, p1 };
}

describe('intel-iommu front end: guest PASID entries become backend intents', () => {
  it('boots the guest through trapped vIOMMU registers and issues no intent', () => {
    const r = vmRig();
    expect(r.frontend.viommu.translationEnabled).toBe(true);
    expect(r.frontend.viommu.qi.enabled).toBe(true);
    expect(r.frontend.viommu.rootTableAddress).toBe(r.guest.iommu.rootTable);
    expect(r.frontend.exits.iqt).toBeGreaterThan(0);
    expect(r.fake.intents).toEqual([]);
    expect(r.frontend.errors).toEqual([]);
  });

  it('a guest bind calls bindPasid with the process page table as the first-stage root GPA', () => {
    const r = bound();
    const [bind] = r.fake.of('bind');
    expect(bind).toEqual({ op: 'bind', device: 'dsa0', pasid: PASID, root: r.p1.pgd, flags: { addrWidth: 48, sre: false, wpe: false, eafe: false } });
    // pasid_flush_caches under CM: the PASID cache (bind), then P_IOTLB of the whole PASID
    expect(r.fake.intents.map((i) => i.op)).toEqual(['assign', 'bind', 'invalidate']);
    expect(r.fake.of('invalidate')[0]!.ranges).toEqual([ALL]);
    expect(r.frontend.shadow('dsa0', PASID)!.entry.flptr).toBe(r.p1.pgd);
    expect(r.frontend.errors).toEqual([]);
  });

  it('a rebind calls replacePasid with the new root; an unbind calls unbindPasid and stops the flushes', () => {
    const r = bound({ ats: true, pri: true });
    const p2 = r.guest.createProcess('p2');
    p2.map(VA, 4);
    const before = r.fake.intents.length;
    expect(r.guest.rebind('dsa0', PASID, p2)).toBe(0);
    const after = r.fake.intents.slice(before);
    expect(after[0]).toMatchObject({ op: 'replace', device: 'dsa0', pasid: PASID, root: p2.pgd });
    // intel_pasid_flush_present: P_IOTLB then the device-TLB, then the PRQ drain's flushes
    expect(after.slice(1).every((i) => i.op === 'invalidate')).toBe(true);
    expect(r.fake.lifecycles.get('dsa0')!.bound.get(PASID)).toBe(p2.pgd);

    const mark = r.fake.intents.length;
    expect(r.guest.unbind('dsa0', PASID)).toBe(0);
    expect(r.fake.intents.slice(mark)).toEqual([{ op: 'unbind', device: 'dsa0', pasid: PASID }]);
    expect(r.frontend.shadow('dsa0', PASID)).toBeUndefined();
    expect(r.guest.pasidEntry('dsa0', PASID)!.present).toBe(false);
  });

  it('the VMM sees the descriptors before the model processes them', () => {
    const r = vmRig();
    r.frontend.assign('dsa0');
    const p1 = r.guest.createProcess('p1');
    const qi = r.frontend.viommu.qi;
    let seen = false;
    r.fake.onIntent = (i) => {
      if (i.op !== 'bind') return;
      seen = true;
      // IQT latched, IQH not yet advanced, the guest's wait status still QI_IN_USE
      expect(qi.head).not.toBe(r.frontend.viommu.regs.get32(REG.IQT) >>> 5);
      const waitSlot = (r.frontend.viommu.regs.get32(REG.IQT) >>> 5) - 1;
      expect(r.ram.readU32(r.guest.iommu.qi.status + waitSlot * 4)).toBe(QI_IN_USE);
    };
    expect(r.guest.bind('dsa0', PASID, p1)).toBe(0);
    expect(seen).toBe(true);
    expect(qi.head).toBe(r.frontend.viommu.regs.get32(REG.IQT) >>> 5);
  });

  it('charges one VM exit to userspace per trapped register access', () => {
    const r = vmRig();
    r.frontend.assign('dsa0');
    const p1 = r.guest.createProcess('p1');
    const t = r.sim.sched.spawn('vcpu0');
    const e0 = { ...r.frontend.exits };
    const rec = r.sim.step(t, '1', 'bind', () => expect(r.guest.bind('dsa0', PASID, p1)).toBe(0));
    // two qi_submit_sync calls (PASID cache, P_IOTLB): two IQT writes, nothing else touched
    expect(r.frontend.exits.iqt - e0.iqt).toBe(2);
    expect(r.frontend.exits.total - e0.total).toBe(2);
    expect(primitiveCount(rec, P.vmExitUser)).toBe(2);
    expect(rec.prims.get('vmm')![P.vmExitUser * 2]).toBe(2);
    expect(primitiveCount(rec, P.qiDescriptor)).toBe(4); // the guest's descriptors, waits included
  });
});

describe('guest flushes become invalidate intents', () => {
  it('an unmap of k contiguous pages is one aligned range (Linux: one PSI per cache tag)', () => {
    const r = bound({ ats: true });
    const mark = r.fake.intents.length;
    expect(r.p1.unmap(VA + 0x1000, 3)).toBe(0);
    const inv = r.fake.intents.slice(mark);
    // pfns 1..3 are not aligned to 4: the smallest block holding both ends is [0, 4)
    expect(inv).toEqual([{ op: 'invalidate', device: 'dsa0', pasid: PASID, ranges: [{ addr: VA, pages: 4, leaf: false, devtlb: true }], ioctls: [[{ addr: VA, pages: 4, leaf: false, devtlb: true }]] }]);
  });

  it('above the x86 single-page flush ceiling the guest flushes the whole PASID', () => {
    const r = bound();
    r.p1.map(VA + 0x100000, 40);
    const mark = r.fake.intents.length;
    r.p1.unmap(VA + 0x100000, 40);
    expect(r.fake.intents.slice(mark)).toMatchObject([{ op: 'invalidate', ranges: [ALL] }]);
  });

  it('per-page flushes: ≤ 16 descriptors per wait; the option decides ioctls per batch', () => {
    for (const invalidation of ['qemu', 'batched'] as const) {
      const r = bound({ ats: true, flushMode: 'per-page', options: { invalidation } });
      const mark = r.fake.of('invalidate').length;
      const traps = r.frontend.exits.iqt;
      r.p1.unmap(VA, 10); // 10 pages × (P_IOTLB + PASID device-TLB) = 20 descriptors
      const inv = r.fake.of('invalidate').slice(mark);
      expect(r.frontend.exits.iqt - traps).toBe(2); // 16 + 4, one wait each
      expect(inv.map((i) => i.ranges.length)).toEqual([8, 2]);
      expect(inv.flatMap((i) => i.ranges)).toEqual(Array.from({ length: 10 }, (_, k) => ({ addr: VA + k * 0x1000, pages: 1, leaf: false, devtlb: true })));
      expect(inv.map((i) => i.ioctls.length)).toEqual(invalidation === 'qemu' ? [8, 2] : [1, 1]);
    }
  });

  it('no flush reaches the backend for a PASID the VMM has not bound', () => {
    const r = vmRig();
    r.frontend.assign('dsa0');
    const p1 = r.guest.createProcess('p1');
    p1.map(VA, 4);
    p1.unmap(VA, 4);
    expect(r.fake.intents.map((i) => i.op)).toEqual(['assign']);
  });
});

describe('page requests', () => {
  it('an injected page request is handled by the guest and answered through pageResponse', () => {
    const r = bound({ ats: true, pri: true });
    r.p1.reserve(VA + 0x100000, 1, { write: true });
    expect(r.p1.translate(VA + 0x100000)).toBe(-1);
    r.fake.faults.push({ device: 'dsa0', pasid: PASID, addr: VA + 0x100000, read: false, write: true, exec: false, privileged: false, prgi: 7, lpig: true });
    const t = r.sim.sched.spawn('vmm-fault');
    const mark = r.fake.intents.length;
    const rec = r.sim.step(t, '1', 'iopf', () => expect(r.frontend.injectFaults()).toBe(1));
    expect(r.p1.translate(VA + 0x100000)).toBeGreaterThanOrEqual(0);
    expect(r.fake.intents.slice(mark)).toEqual([{ op: 'pageResponse', device: 'dsa0', pasid: PASID, group: 7, code: 0 }]);
    expect(primitiveCount(rec, P.irqInject)).toBe(1);
    expect(r.frontend.injected['page-request']).toBe(1);
    expect(r.guest.prq.handled).toBe(1);
    // the guest advanced PQH to PQT
    expect(r.frontend.viommu.prq.head).toBe(r.frontend.viommu.prq.tail);
  });

  it('a request outside any VMA is answered "invalid"', () => {
    const r = bound({ ats: true, pri: true });
    r.fake.faults.push({ device: 'dsa0', pasid: PASID, addr: 0x1000, read: true, write: false, exec: false, privileged: false, prgi: 3, lpig: true });
    r.frontend.injectFaults();
    expect(r.fake.of('pageResponse')).toEqual([{ op: 'pageResponse', device: 'dsa0', pasid: PASID, group: 3, code: 1 }]);
  });
});

describe('refusals and failures', () => {
  it('a bind on a device that is not assigned is refused by the lifecycle, with the state named', () => {
    const r = vmRig();
    const p1 = r.guest.createProcess('p1');
    expect(r.guest.bind('dsa0', PASID, p1)).toBe(0); // the guest cannot tell
    expect(r.fake.intents).toEqual([]);
    expect(r.frontend.errors).toHaveLength(1);
    expect(r.frontend.errors[0]!.failure).toMatchObject({ kind: 'illegal', state: 'unassigned', message: 'device dsa0: cannot bind PASID 5 in state unassigned' });
    expect(r.frontend.shadow('dsa0', PASID)).toBeUndefined();
  });

  it('assigning a device replays the entries the guest already made present', () => {
    const r = vmRig();
    const p1 = r.guest.createProcess('p1');
    r.guest.bind('dsa0', PASID, p1);
    expect(r.frontend.assign('dsa0').ok).toBe(true);
    expect(r.fake.intents.map((i) => i.op)).toEqual(['assign', 'bind']);
    expect(r.fake.of('bind')[0]!.root).toBe(p1.pgd);
  });

  it('a failed bind leaves no shadow, and the next PASID-cache invalidation retries it', () => {
    const r = vmRig();
    r.frontend.assign('dsa0');
    const p1 = r.guest.createProcess('p1');
    r.fake.failNext = { op: 'bind', errno: 12 };
    expect(r.guest.bind('dsa0', PASID, p1)).toBe(0);
    expect(r.frontend.errors[0]!.failure).toMatchObject({ kind: 'errno', errno: 12, message: 'FAKE_BIND failed: ENOMEM' });
    expect(r.frontend.shadow('dsa0', PASID)).toBeUndefined();
    // a global PASID-cache flush (e.g. another device's probe) replays the present entry
    r.guest.iommu.qi.submit([new Int32Array([7 | (3 << 4), 0, 0, 0, 0, 0, 0, 0])]);
    expect(r.fake.of('bind')).toHaveLength(1);
    expect(r.frontend.shadow('dsa0', PASID)).toBeDefined();
  });

  it('unassign drops what the VMM propagated for the device', () => {
    const r = bound();
    expect(r.frontend.unassign('dsa0').ok).toBe(true);
    expect(r.frontend.shadowsOf('dsa0')).toEqual([]);
    const mark = r.fake.intents.length;
    r.p1.unmap(VA, 1);
    expect(r.fake.intents.length).toBe(mark);
  });
});
