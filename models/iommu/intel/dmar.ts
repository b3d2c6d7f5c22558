import { P, kfn, type KFn } from '../../../sim/index.ts';
import { EAGAIN, EINVAL } from '../../kernel/errno.ts';
import { spin_lock_irqsave, spin_unlock_irqrestore } from '../../kernel/locks.ts';
import { REG } from '../../hw/vtd/regs.ts';
import type { IntelIommu } from './iommu.ts';
import { QI_DONE, QI_IN_USE, qiWait, type QiDesc } from './qi-desc.ts';

/**
 * Queued invalidation (drivers/iommu/intel/dmar.c, v6.15): a 256-entry ring of 32-byte
 * descriptors; qi_submit_sync copies the descriptors in, appends a wait descriptor whose status
 * write marks completion, writes IQT and polls the status, handling IQE and ITE.
 */
const SRC = 'drivers/iommu/intel/dmar.c @ v6.15';
const fn = (name: string, sig: string): KFn => kfn({ name, layer: 'intel-iommu', sig, prov: { kind: 'merged', source: SRC } });
const FN_SUBMIT = fn('qi_submit_sync', 'int qi_submit_sync(struct intel_iommu *iommu, struct qi_desc *desc, unsigned int count, unsigned long options)');
const FN_CHECK = fn('qi_check_fault', 'static int qi_check_fault(struct intel_iommu *iommu, int index, int wait_index)');

export const QI_LENGTH = 256;
const QI_SHIFT = 5; // 256-bit descriptors in scalable mode: DMAR_IQ_SHIFT + 1
export const QI_OPT_WAIT_DRAIN = 1 << 0;

const FSTS_IQE = 1 << 4;
const FSTS_ITE = 1 << 6;

/** struct q_inval */
export interface QInval {
  /** physical address of the ring */
  readonly base: number;
  /** physical address of desc_status[QI_LENGTH] (u32 each) */
  readonly status: number;
  free_head: number;
  free_tail: number;
  free_cnt: number;
  readonly slot: Uint8Array;
}

/** dmar_enable_qi: program IQA (256-bit descriptors, 2 pages) and set GCMD.QIE. */
export function dmar_enable_qi(iommu: IntelIommu, ringPa: number, statusPa: number): QInval {
  iommu.writeq(REG.IQT, 0n);
  // IQA: base | DW (bit 11) | QS = 1 (two 4 KiB pages hold 256 × 32 B)
  iommu.writeq(REG.IQA, BigInt(ringPa) | (1n << 11n) | 1n);
  iommu.gcmd |= 1 << 26;
  iommu.writel(REG.GCMD, iommu.gcmd);
  return { base: ringPa, status: statusPa, free_head: 0, free_tail: 0, free_cnt: QI_LENGTH, slot: new Uint8Array(QI_LENGTH) };
}

function writeDesc(iommu: IntelIommu, qi: QInval, index: number, d: QiDesc): void {
  const pa = qi.base + index * 32;
  for (let q = 0; q < 4; q++) iommu.mem.writeQword(pa + q * 8, d[q * 2]!, d[q * 2 + 1]!);
}

/**
 * Submits `descs` and waits for them. Returns 0, −EINVAL when the hardware reports a bad
 * descriptor (IQE), after restarting on a device-TLB timeout (ITE) as the kernel does.
 */
export function qi_submit_sync(iommu: IntelIommu, descs: readonly QiDesc[], options = 0): number {
  const sim = iommu.k.sim;
  return sim.call(FN_SUBMIT, () => {
    const qi = iommu.qi;
    for (let attempt = 0; ; attempt++) {
      spin_lock_irqsave(iommu.q_lock);
      // the ring never fills in this model: one submitter holds q_lock through completion
      if (qi.free_cnt < descs.length + 2) sim.oops('qi_submit_sync: invalidation queue full');
      sim.charge(P.qiSubmit);
      const index = qi.free_head;
      descs.forEach((d, i) => {
        const at = (index + i) % QI_LENGTH;
        sim.charge(P.qiDescriptor, 1, 32);
        writeDesc(iommu, qi, at, d);
        qi.slot[at] = QI_IN_USE;
      });
      const waitIndex = (index + descs.length) % QI_LENGTH;
      const statusPa = qi.status + waitIndex * 4;
      iommu.mem.writeU32(statusPa, QI_IN_USE);
      sim.charge(P.qiDescriptor, 1, 32);
      writeDesc(iommu, qi, waitIndex, qiWait(statusPa, QI_DONE, (options & QI_OPT_WAIT_DRAIN) !== 0));
      qi.slot[waitIndex] = QI_IN_USE;
      qi.free_head = (waitIndex + 1) % QI_LENGTH;
      qi.free_cnt -= descs.length + 1;
      // the hardware processes on the tail write; the submitter spins until the status reads done
      iommu.writel(REG.IQT, qi.free_head << QI_SHIFT);
      let rc = 0;
      while (iommu.mem.readU32(statusPa) !== QI_DONE) {
        rc = sim.call(FN_CHECK, () => qiCheckFault(iommu, index, waitIndex));
        if (rc) break;
        if (iommu.mem.readU32(statusPa) !== QI_DONE) sim.oops(`qi_submit_sync: ${iommu.name} never completed the wait at ${waitIndex} (no invalidation hardware?)`);
      }
      // reclaim the slots, done or aborted
      for (let i = 0; i <= descs.length; i++) qi.slot[(index + i) % QI_LENGTH] = 0;
      qi.free_cnt += descs.length + 1;
      qi.free_tail = qi.free_head;
      spin_unlock_irqrestore(iommu.q_lock);
      if (rc !== -EAGAIN) return rc;
      if (attempt > 3) return rc;
    }
  });
}

/**
 * qi_check_fault: IQE means the descriptor at IQH was refused: the driver reports −EINVAL. ITE
 * means a device-TLB invalidation timed out: the pending descriptors are aborted, and the caller
 * restarts (−EAGAIN).
 */
function qiCheckFault(iommu: IntelIommu, index: number, waitIndex: number): number {
  const fsts = iommu.readl(REG.FSTS);
  if (fsts & FSTS_IQE) {
    const head = (iommu.readl(REG.IQH) >>> QI_SHIFT) % QI_LENGTH;
    if (head !== index) return 0;
    // as the kernel does: put the wait descriptor over the refused one, so that clearing IQE lets
    // the queue move on, and fail the submission
    const src = iommu.qi.base + waitIndex * 32;
    const dst = iommu.qi.base + head * 32;
    for (let q = 0; q < 4; q++) {
      const lo = iommu.mem.readQword(src + q * 8);
      iommu.mem.writeQword(dst + q * 8, lo, iommu.mem.hi);
    }
    iommu.writel(REG.FSTS, FSTS_IQE);
    return -EINVAL;
  }
  if (fsts & FSTS_ITE) {
    iommu.writel(REG.FSTS, FSTS_ITE);
    return -EAGAIN;
  }
  return 0;
}
