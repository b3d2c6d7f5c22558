import { kfn, type KFn } from '../../../sim/index.ts';
import { REG } from '../../hw/vtd/regs.ts';
import type { Device } from '../../kernel/device.ts';
import type { IommuCore } from '../iommu.ts';
import type { IoPgfault } from '../io-pgfault.ts';
import {
  IOMMU_FAULT_PAGE_REQUEST_LAST_PAGE,
  IOMMU_FAULT_PAGE_REQUEST_PASID_VALID,
  IOMMU_FAULT_PERM_EXEC,
  IOMMU_FAULT_PERM_PRIV,
  IOMMU_FAULT_PERM_READ,
  IOMMU_FAULT_PERM_WRITE,
  IOMMU_NO_PASID,
  IOMMU_PAGE_RESP_FAILURE,
  IOMMU_PAGE_RESP_INVALID,
  IOMMU_PAGE_RESP_SUCCESS,
  type IopfFault,
  type PageResponse,
} from '../types.ts';
import { QI_OPT_WAIT_DRAIN, qi_submit_sync } from './dmar.ts';
import { domain_id_iommu, info_of, type DmarDomain, type IntelIommu } from './iommu.ts';
import { QI_DONE, QI_RESP_FAILURE, QI_RESP_INVALID, QI_RESP_SUCCESS, qiDevIotlbPasid, qiPageGroupResponse, qiPiotlb, qiWait } from './qi-desc.ts';

/**
 * Page requests (drivers/iommu/intel/prq.c, v6.15): the PRQ ring the hardware fills, the thread
 * that hands each request to io-pgfault, the page group response, and the drain a PASID tear-down
 * performs.
 */
const SRC = 'drivers/iommu/intel/prq.c @ v6.15';
const fn = (name: string, sig: string): KFn => kfn({ name, layer: 'intel-iommu', sig, prov: { kind: 'merged', source: SRC } });
const FN = {
  thread: fn('prq_event_thread', 'static irqreturn_t prq_event_thread(int irq, void *d)'),
  report: fn('intel_prq_report', 'static void intel_prq_report(struct intel_iommu *iommu, struct device *dev, struct page_req_dsc *desc)'),
  response: fn('intel_iommu_page_response', 'void intel_iommu_page_response(struct device *dev, struct iopf_fault *evt, struct iommu_page_response *msg)'),
  drain: fn('intel_iommu_drain_pasid_prq', 'void intel_iommu_drain_pasid_prq(struct device *dev, u32 pasid)'),
  bad: fn('handle_bad_prq_event', 'static void handle_bad_prq_event(struct intel_iommu *iommu, struct page_req_dsc *req, int result)'),
};

/** PRQ_ORDER 4: 64 KiB, 2048 descriptors of 32 bytes */
export const PRQ_ORDER = 4;
const PRQ_SIZE = 4096 << PRQ_ORDER;
const PRS_PPR = 1 << 0;
const PRS_PRO = 1 << 1;

/** struct page_req_dsc, decoded */
export interface PageReqDsc {
  rid: number;
  pasid_present: boolean;
  pasid: number;
  exe_req: boolean;
  pm_req: boolean;
  rd_req: boolean;
  wr_req: boolean;
  lpig: boolean;
  prg_index: number;
  addr: number;
}

export class IntelPrq {
  readonly base: number;

  constructor(
    readonly iommu: IntelIommu,
    readonly core: IommuCore,
    readonly iopf: IoPgfault,
  ) {
    // intel_iommu_enable_prq: the ring, PQH = PQT = 0, PQA = base | order
    const pfn = iommu.k.pages.allocContiguous(`host.${iommu.name}.prq`, 1 << PRQ_ORDER);
    if (pfn < 0) throw new Error(`${iommu.name}: no memory for the page request queue`);
    this.base = pfn * 4096;
    iommu.writeq(REG.PQH, 0n);
    iommu.writeq(REG.PQT, 0n);
    iommu.writeq(REG.PQA, BigInt(this.base) | BigInt(PRQ_ORDER));
    // request_threaded_irq → dmar_msi_unmask: the page request event starts masked
    iommu.writel(REG.PECTL, 0);
  }

  private readDsc(off: number): PageReqDsc {
    const m = this.iommu.mem;
    const lo0 = m.readQword(this.base + off);
    const hi0 = m.hi;
    const lo1 = m.readQword(this.base + off + 8);
    const hi1 = m.hi;
    return {
      rid: (lo0 >>> 16) & 0xffff,
      pasid_present: ((lo0 >>> 8) & 1) === 1,
      pasid: hi0 & 0xfffff,
      exe_req: ((hi0 >>> 20) & 1) === 1,
      pm_req: ((hi0 >>> 21) & 1) === 1,
      rd_req: (lo1 & 1) === 1,
      wr_req: ((lo1 >>> 1) & 1) === 1,
      lpig: ((lo1 >>> 2) & 1) === 1,
      prg_index: (lo1 >>> 3) & 0x1ff,
      addr: (hi1 >>> 0) * 4294967296 + ((lo1 & ~0xfff) >>> 0),
    };
  }

  /** Hands every request between head and tail to io-pgfault, then moves the head. */
  prq_event_thread(): void {
    const iommu = this.iommu;
    iommu.sim.call(FN.thread, () => {
      // clear PPR first, so a request arriving while we work raises the interrupt again
      iommu.writel(REG.PRS, PRS_PPR);
      const tail = iommu.readl(REG.PQT) & (PRQ_SIZE - 1);
      let head = iommu.readl(REG.PQH) & (PRQ_SIZE - 1);
      while (head !== tail) {
        const req = this.readDsc(head);
        const dev = this.findDevice(req.rid);
        if (!dev) this.handleBad(req, QI_RESP_INVALID);
        else iommu.sim.call(FN.report, () => this.iopf.iommu_report_device_fault(dev, this.toFault(req)));
        head = (head + 32) & (PRQ_SIZE - 1);
      }
      iommu.writeq(REG.PQH, BigInt(tail));
      // an overflow is cleared only once the queue is empty (prq.c)
      if (iommu.readl(REG.PRS) & PRS_PRO && (iommu.readl(REG.PQH) & (PRQ_SIZE - 1)) === (iommu.readl(REG.PQT) & (PRQ_SIZE - 1))) {
        iommu.writel(REG.PRS, PRS_PRO);
      }
    });
  }

  private findDevice(rid: number): Device | null {
    for (const g of this.core.groups) for (const d of g.devices) if (d.rid === rid && info_of(this.core, d)?.iommu === this.iommu) return d;
    return null;
  }

  private toFault(req: PageReqDsc): IopfFault {
    let perm = 0;
    if (req.rd_req) perm |= IOMMU_FAULT_PERM_READ;
    if (req.wr_req) perm |= IOMMU_FAULT_PERM_WRITE;
    if (req.exe_req) perm |= IOMMU_FAULT_PERM_EXEC;
    if (req.pm_req) perm |= IOMMU_FAULT_PERM_PRIV;
    let flags = 0;
    if (req.lpig) flags |= IOMMU_FAULT_PAGE_REQUEST_LAST_PAGE;
    if (req.pasid_present) flags |= IOMMU_FAULT_PAGE_REQUEST_PASID_VALID;
    return { flags, pasid: req.pasid_present ? req.pasid : IOMMU_NO_PASID, grpid: req.prg_index, perm, addr: req.addr };
  }

  /** A request from an unknown requester: answer it if it ends a group. */
  private handleBad(req: PageReqDsc, result: number): void {
    this.iommu.sim.call(FN.bad, () => {
      if (!req.lpig) return;
      qi_submit_sync(this.iommu, [qiPageGroupResponse(req.rid, req.pasid, req.pasid_present, result, req.prg_index)]);
    });
  }

  /** ops->page_response: a page group response descriptor through the invalidation queue. */
  intel_iommu_page_response(dev: Device, evt: IopfFault, msg: PageResponse): void {
    this.iommu.sim.call(FN.response, () => {
      const code = msg.code === IOMMU_PAGE_RESP_SUCCESS ? QI_RESP_SUCCESS : msg.code === IOMMU_PAGE_RESP_INVALID ? QI_RESP_INVALID : QI_RESP_FAILURE;
      void IOMMU_PAGE_RESP_FAILURE;
      const pasidPresent = (evt.flags & IOMMU_FAULT_PAGE_REQUEST_PASID_VALID) !== 0;
      qi_submit_sync(this.iommu, [qiPageGroupResponse(dev.rid, msg.pasid, pasidPresent, code, msg.grpid)]);
    });
  }

  /**
   * Waits until no request of (dev, pasid) is left in the queue (we run the handler thread, which
   * is what the kernel waits for), then drains the hardware with a fenced wait, a PASID IOTLB and
   * a PASID device-TLB flush submitted with the page-request drain bit.
   */
  intel_iommu_drain_pasid_prq(dev: Device, pasid: number): void {
    const iommu = this.iommu;
    iommu.sim.call(FN.drain, () => {
      const info = info_of(this.core, dev);
      if (!info || !info.pri_enabled) return;
      for (;;) {
        const tail = iommu.readl(REG.PQT) & (PRQ_SIZE - 1);
        let head = iommu.readl(REG.PQH) & (PRQ_SIZE - 1);
        let pending = false;
        while (head !== tail) {
          const r = this.readDsc(head);
          if (r.rid === dev.rid && (r.pasid_present ? r.pasid === pasid : pasid === IOMMU_NO_PASID)) pending = true;
          head = (head + 32) & (PRQ_SIZE - 1);
        }
        if (!pending) break;
        this.prq_event_thread();
      }
      const d = info.domain as DmarDomain | null;
      const did = d ? domain_id_iommu(d, iommu) : 1;
      const sid = dev.rid;
      for (;;) {
        qi_submit_sync(iommu, [qiWait(0, QI_DONE, false, true, false), qiPiotlb(did, pasid, 0, 0, false, true), qiDevIotlbPasid(sid, info.pfsid, pasid, info.ats_qdep, 0, 64 - 12)], QI_OPT_WAIT_DRAIN);
        if (!(iommu.readl(REG.PRS) & PRS_PRO)) break;
        this.prq_event_thread();
      }
    });
  }
}
