import { describe, expect, it } from 'vitest';
import { REG } from '../../../models/hw/vtd/regs.ts';
import { IOMMU_PAGE_RESP_FAILURE, IOMMU_PAGE_RESP_SUCCESS, type IopfGroup } from '../../../models/iommu/types.ts';
import { GUEST_VA, allocNested, handle, nestedRig, recordSubmissions } from '../../helpers/nested.ts';

const PASID = 5;
const MISSING = GUEST_VA + 0x10_0000; // not in the guest table yet

/** A nested PASID with IOPF on, and a consumer handler the test supplies. */
function iopfRig(onGroup: (r: ReturnType<typeof nestedRig>, g: IopfGroup) => number) {
  const r = nestedRig({ ats: true, pri: true });
  expect(r.m.iommu.ops.enable_iopf!(r.d.dev)).toBe(0);
  const s1 = allocNested(r, r.pt);
  s1.iopf_handler = (g) => onGroup(r, g);
  expect(r.asTask(() => r.m.core.iommu_attach_device_pasid(s1, r.d.dev, PASID, handle()))).toBe(0);
  return { ...r, s1 };
}

describe('IO page faults through the shared layer', () => {
  it('a page request travels PRQ → prq_event_thread → handler → response → a retried DMA that succeeds', () => {
    const groups: IopfGroup[] = [];
    const r = iopfRig((rr, g) => {
      groups.push(g);
      rr.pt.map(MISSING, 0x30_0000, 0x1000); // the guest "handles the fault"
      rr.m.iopf.iopf_group_response(g, IOMMU_PAGE_RESP_SUCCESS);
      rr.m.iopf.iopf_free_group(g);
      return 0;
    });
    const rec = recordSubmissions(r.m);
    const dma = r.d.pci.dmaWrite(PASID, MISSING + 8, Uint8Array.of(9, 8, 7));
    expect(dma.status).toBe('pending');
    r.m.sim.sched.run();
    rec.stop();
    expect(dma.status).toBe('ok');
    expect([...r.ram.read(0x30_0008, 3)]).toEqual([9, 8, 7]);
    expect(groups).toHaveLength(1);
    expect(groups[0]!.last).toMatchObject({ pasid: PASID, addr: MISSING });
    expect(rec.batches).toContainEqual([9, 5]); // the page group response, then its wait
    expect(r.m.iopf.pendingGroups(r.d.dev)).toEqual([]);
  });

  it('a failure response ends the DMA with an error', () => {
    const r = iopfRig((rr, g) => {
      rr.m.iopf.iopf_group_response(g, IOMMU_PAGE_RESP_FAILURE);
      rr.m.iopf.iopf_free_group(g);
      return 0;
    });
    const dma = r.d.pci.dmaWrite(PASID, MISSING, Uint8Array.of(1));
    r.m.sim.sched.run();
    expect(dma.status).toBe('error');
    expect(dma.error).toMatch(/Response Failure/);
  });

  it('a handler that refuses the group makes io-pgfault answer FAILURE itself', () => {
    const r = iopfRig(() => -12);
    const dma = r.d.pci.dmaWrite(PASID, MISSING, Uint8Array.of(1));
    r.m.sim.sched.run();
    expect(dma.status).toBe('error');
  });

  it('tear-down drains the PASID\'s pending page requests from the queue', () => {
    const seen: IopfGroup[] = [];
    const r = iopfRig((_rr, g) => {
      seen.push(g); // keep it pending: the consumer has not answered
      return 0;
    });
    const dma = r.d.pci.dmaWrite(PASID, MISSING, Uint8Array.of(1));
    expect(dma.status).toBe('pending');
    // the request sits in the hardware queue: the PRQ thread has not run
    expect(r.m.vtd.regs.get32(REG.PQH)).not.toBe(r.m.vtd.regs.get32(REG.PQT));
    const rec = recordSubmissions(r.m);
    r.m.core.iommu_detach_device_pasid(r.s1, r.d.dev, PASID);
    rec.stop();
    expect(r.m.vtd.regs.get32(REG.PQH)).toBe(r.m.vtd.regs.get32(REG.PQT));
    expect(seen).toHaveLength(1); // the drain ran the handler thread over it
    // PASID cache, IOTLB, device-TLB, then the drain: fenced wait, P_IOTLB, PASID dev-TLB, PD wait
    expect(rec.batches).toEqual([
      [7, 5],
      [2, 5],
      [8, 5],
      [5, 6, 8, 5],
    ]);
    const drainWait = r.m.mem.readU32(r.m.iommu.qi.base + ((r.m.vtd.regs.get32(REG.IQT) >>> 5) - 1) * 32);
    expect(drainWait & 0xf).toBe(5);
    expect((drainWait >>> 7) & 1).toBe(1); // PD: page-request drain
  });
});
