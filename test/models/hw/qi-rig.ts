/**
 * Software side of the invalidation queue for tests, shaped like linux dmar_enable_qi and
 * qi_submit_sync: a 256-bit queue (DW = 1, QS = 1: 2 pages, 256 descriptors), each submission
 * followed by a wait descriptor whose status write says "done". Everything goes through MMIO.
 */
import type { PhysicalMemory } from '../../../models/hw/memory.ts';
import { GCMD, GSTS, IQA_DW, REG, encodeWait, type DescWords, type Vtd } from '../../../models/hw/vtd/index.ts';

export const QI_DONE = 2; // linux QI_DONE

export class QiDriver {
  readonly status: number;
  freeHead = 0;
  readonly length: number;

  constructor(
    readonly vtd: Vtd,
    readonly mem: PhysicalMemory,
    readonly base: number,
    qs = 1,
  ) {
    this.length = 1 << (qs + 7);
    this.status = base + (1 << qs) * 4096; // a status page after the queue
    for (let i = 0; i <= 1 << qs; i++) mem.zeroPage(base / 4096 + i);
    const m = vtd.mmio;
    m.write32(REG.IQT, 0);
    m.write64(REG.IQA, base + IQA_DW + qs);
    m.write32(REG.GCMD, (m.read32(REG.GSTS) & (GSTS.TES | GSTS.QIES | GSTS.IRES)) | GCMD.QIE);
  }

  /** Write descriptors at the free head without telling the hardware; returns their first index. */
  place(descs: readonly DescWords[]): number {
    const first = this.freeHead;
    for (const d of descs) {
      const pa = this.base + this.freeHead * 32;
      for (let i = 0; i < 8; i += 2) this.mem.writeQword(pa + i * 4, d[i]!, d[i + 1]!);
      this.freeHead = (this.freeHead + 1) % this.length;
    }
    return first;
  }

  /** Ring the doorbell (IQT = free head << 5). */
  ring(): void {
    this.vtd.mmio.write32(REG.IQT, this.freeHead << 5);
  }

  /** Status word address for a wait slot. */
  statusAddr(slot: number): number {
    return this.status + slot * 4;
  }

  /** qi_submit_sync: descriptors + a wait with status write; returns the status word after the doorbell. */
  submit(descs: readonly DescWords[], opts: { drain?: boolean; intr?: boolean } = {}): { status: number; waitIndex: number } {
    const waitIndex = (this.freeHead + descs.length) % this.length;
    this.mem.writeU32(this.statusAddr(waitIndex), 1); // QI_IN_USE
    this.place([
      ...descs,
      encodeWait({ statusAddr: this.statusAddr(waitIndex), statusData: QI_DONE, drain: opts.drain ?? false, intr: opts.intr ?? false }),
    ]);
    this.ring();
    return { status: this.mem.readU32(this.statusAddr(waitIndex)), waitIndex };
  }
}
