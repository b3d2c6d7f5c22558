/**
 * The guest's page request queue (drivers/iommu/intel/prq.c): a 64 KiB ring the vIOMMU writes
 * page requests into, and prq_event_thread, which the page-request interrupt runs.
 *
 * Per request: sanity checks (privileged or exec-with-read requests are refused), the device by
 * requester id, the SVA domain at the PASID, then the I/O page fault path (iommu_report_device_fault
 * → iopf handler → handle_mm_fault), then intel_iommu_page_response for the last request of a group.
 * Linux answers from the iopf workqueue; here the answer goes out inside the handler (same
 * descriptors, earlier in time).
 */
import { encodePageGroupResponse, PRG_RESP } from '../../hw/vtd/inv-desc.ts';
import { PRS, REG } from '../../hw/vtd/regs.ts';
import { guestFn } from '../fn.ts';
import type { GuestIntelIommu } from './iommu.ts';
import type { GuestSva } from './svm.ts';

/** PRQ_ORDER 4: 16 pages, 2048 descriptors */
export const PRQ_ORDER = 4;

const SRC = 'drivers/iommu/intel/prq.c';
const FN = {
  enable: guestFn('intel_iommu_enable_prq', 'int intel_iommu_enable_prq(struct intel_iommu *iommu)', SRC),
  thread: guestFn('prq_event_thread', 'static irqreturn_t prq_event_thread(int irq, void *d)', SRC),
  response: guestFn('intel_iommu_page_response', 'void intel_iommu_page_response(struct device *dev, struct iopf_fault *evt, struct iommu_page_response *msg)', SRC),
  sva: guestFn('iommu_sva_handle_iopf', 'static enum iommu_page_response_code iommu_sva_handle_iopf(struct iommu_fault *fault, struct mm_struct *mm)', 'drivers/iommu/iommu-sva.c'),
};

export class GuestPrq {
  /** ring base (GPA) */
  base = 0;
  /** requests handled and responses sent, for tests */
  handled = 0;
  responses = 0;

  constructor(
    private readonly iommu: GuestIntelIommu,
    private readonly sva: GuestSva,
  ) {}

  /** intel_iommu_enable_prq: the ring, PQH = PQT = 0, PQA, and the interrupt unmasked. */
  enable(): void {
    const iommu = this.iommu;
    iommu.sim.call(FN.enable, () => {
      const ring = iommu.pages.allocContiguous(2 ** PRQ_ORDER);
      if (ring < 0) throw new Error('guest: out of memory for the page request queue');
      this.base = ring;
      const mmio = iommu.vtd.mmio;
      mmio.write64(REG.PQH, 0);
      mmio.write64(REG.PQT, 0);
      mmio.write64(REG.PQA, ring + PRQ_ORDER);
      iommu.vtd.onInterrupt('page-request', () => this.prq_event_thread());
      mmio.write32(REG.PECTL, 0); // dmar_msi_unmask
    });
  }

  prq_event_thread(): void {
    const iommu = this.iommu;
    iommu.sim.call(FN.thread, () => {
      const mmio = iommu.vtd.mmio;
      const vtd = iommu.vtd;
      // clear PPR before reading head and tail, so a later request raises a new interrupt
      mmio.write32(REG.PRS, PRS.PPR);
      const size = 2 ** (PRQ_ORDER + 7);
      const tail = Number((mmio.read64(REG.PQT) >> 5n) % BigInt(size));
      let head = Number((mmio.read64(REG.PQH) >> 5n) % BigInt(size));
      while (head !== tail) {
        const req = vtd.prq.read(head); // struct page_req_dsc, decoded as decode_prq_descriptor does
        head = (head + 1) % size;
        this.handled++;
        const respond = (code: number): void => {
          if (req.lpig) this.intel_iommu_page_response(req.rid, req.pasid, req.prgi, code);
        };
        if (req.privileged && (req.read || req.write)) {
          respond(PRG_RESP.INVALID); // "Page request in Privilege Mode"
          continue;
        }
        if (req.exec && req.read) {
          respond(PRG_RESP.INVALID); // "Execution request not supported"
          continue;
        }
        if (req.lpig && !req.read && !req.write) continue; // stop marker: no response
        const info = iommu.devices.get(req.rid);
        if (!info || req.pasid < 0) {
          respond(PRG_RESP.INVALID); // handle_bad_prq_event
          continue;
        }
        const dom = this.sva.domainAt(info, req.pasid);
        const code = iommu.sim.call(FN.sva, () => {
          if (!dom) return PRG_RESP.INVALID;
          return dom.proc.handleMmFault(req.addr, req.write) === 0 ? PRG_RESP.SUCCESS : PRG_RESP.INVALID;
        });
        respond(code);
      }
      mmio.write64(REG.PQH, head << 5);
      if ((mmio.read32(REG.PRS) & PRS.PRO) !== 0) mmio.write32(REG.PRS, PRS.PRO);
    });
  }

  /** intel_iommu_page_response: one page group response descriptor plus a wait. */
  intel_iommu_page_response(sid: number, pasid: number, prgi: number, code: number): void {
    this.iommu.sim.call(FN.response, () => {
      this.responses++;
      this.iommu.qi.submit([encodePageGroupResponse({ rid: sid, pasid, prgi, code })]);
    });
  }
}
