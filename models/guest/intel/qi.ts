/**
 * The guest driver's invalidation queue (drivers/iommu/intel/dmar.c): a 256-entry ring of 256-bit
 * descriptors in guest RAM, a status array for the wait descriptors, and qi_submit_sync, which
 * copies descriptors into the ring, appends a wait (status write of QI_DONE), writes IQT and polls.
 *
 * Under a vIOMMU the IQT write is an MMIO exit: the VMM emulates the queue inside the exit, so by
 * the time the store retires the status is written (vtd-model §C) and the poll reads QI_DONE once.
 */
import { P } from '../../../sim/primitives.ts';
import type { Sim } from '../../../sim/sim.ts';
import { encodeWait, type DescWords } from '../../hw/vtd/inv-desc.ts';
import { FSTS, REG } from '../../hw/vtd/regs.ts';
import type { Vtd } from '../../hw/vtd/vtd.ts';
import { GUEST_ERRNO, guestFn } from '../fn.ts';
import type { GuestMemory } from '../memory.ts';
import type { GuestPageAllocator } from '../page_alloc.ts';

/** QI_LENGTH: ring entries */
export const QI_LENGTH = 256;
/** enum qi_desc_status */
export const QI_FREE = 0;
export const QI_IN_USE = 1;
export const QI_DONE = 2;
/** IQA: DW = 1 (256-bit descriptors), QS = 1 (2 pages) when scalable mode is supported */
const IQA_DW_QS = (1 << 11) | 1;

const FN = {
  submit: guestFn('qi_submit_sync', 'int qi_submit_sync(struct intel_iommu *iommu, struct qi_desc *desc, unsigned int count, unsigned long options)', 'drivers/iommu/intel/dmar.c'),
  enable: guestFn('dmar_enable_qi', 'int dmar_enable_qi(struct intel_iommu *iommu)', 'drivers/iommu/intel/dmar.c'),
};

export class GuestQi {
  /** ring base (GPA) */
  readonly base: number;
  /** desc_status[] (GPA): one u32 per ring slot */
  readonly status: number;
  private freeHead = 0;
  /** submissions and descriptors (waits included), for tests */
  submits = 0;
  descriptors = 0;

  constructor(
    private readonly sim: Sim,
    private readonly mem: GuestMemory,
    private readonly vtd: Vtd,
    pages: GuestPageAllocator,
  ) {
    const ring = pages.allocContiguous(2);
    const status = pages.allocPage();
    if (ring < 0 || status < 0) throw new Error('guest: out of memory for the invalidation queue');
    this.base = ring;
    this.status = status;
  }

  /** __dmar_enable_qi: IQT = 0, IQA = ring | DW | QS, GCMD.QIE; the caller passes its gcmd shadow. */
  enable(gcmd: number): number {
    return this.sim.call(FN.enable, () => {
      const mmio = this.vtd.mmio;
      this.freeHead = 0;
      mmio.write32(REG.IQT, 0);
      mmio.write64(REG.IQA, this.base + IQA_DW_QS);
      const next = gcmd | (1 << 26); // DMA_GCMD_QIE
      mmio.write32(REG.GCMD, next);
      mmio.read32(REG.GSTS); // IOMMU_WAIT_OP(..., sts & DMA_GSTS_QIES)
      return next;
    });
  }

  /**
   * qi_submit_sync: `descs` then a wait (SW, status QI_DONE; PD with `drain`), one IQT write.
   * Returns 0, or −EINVAL when the queue reported an error instead of completing the wait.
   */
  submit(descs: readonly DescWords[], opts: { drain?: boolean } = {}): number {
    return this.sim.call(FN.submit, () => {
      const sim = this.sim;
      const mem = this.mem;
      sim.charge(P.qiSubmit);
      const n = descs.length;
      const waitIndex = (this.freeHead + n) % QI_LENGTH;
      for (let i = 0; i < n; i++) this.writeSlot((this.freeHead + i) % QI_LENGTH, descs[i]!);
      const statusAddr = this.status + waitIndex * 4;
      mem.writeU32(statusAddr, QI_IN_USE);
      const wait = encodeWait({ statusAddr, statusData: QI_DONE, ...(opts.drain ? { drain: true } : {}) });
      this.writeSlot(waitIndex, wait);
      sim.charge(P.qiDescriptor, n + 1);
      this.freeHead = (waitIndex + 1) % QI_LENGTH;
      this.submits++;
      this.descriptors += n + 1;
      this.vtd.mmio.write32(REG.IQT, this.freeHead << 5);
      // poll desc_status[wait_index]; qi_check_fault on anything but QI_DONE
      if (mem.readU32(statusAddr) === QI_DONE) {
        mem.writeU32(statusAddr, QI_FREE);
        return 0;
      }
      const fsts = this.vtd.mmio.read32(REG.FSTS);
      if ((fsts & (FSTS.IQE | FSTS.ITE | FSTS.ICE)) !== 0) this.vtd.mmio.write32(REG.FSTS, fsts & (FSTS.IQE | FSTS.ITE | FSTS.ICE));
      return -GUEST_ERRNO.EINVAL;
    });
  }

  private writeSlot(index: number, d: DescWords): void {
    const pa = this.base + index * 32;
    for (let i = 0; i < 8; i += 2) this.mem.writeQword(pa + i * 4, d[i]!, d[i + 1]!);
  }
}
