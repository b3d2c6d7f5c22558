/**
 * Primary (non-recoverable) fault recording (vtd-model §B.5): the FRCD registers, FSTS and the
 * fault event. After qemu vtd_report_frcd_fault / vtd_generate_fault_event and linux dmar_fault.
 *
 * FRCD i lives at CAP.FRO × 16 + i × 16 (CAP.NFR records), 128 bits:
 * - dword 0/1: FI, the faulting page address (bits 63:12);
 * - dword 2: SID [15:0], EXE [29], PRIV [30], PP [31] (linux dmar_fault reads SID and PP at
 *   offset 8: dma_frcd_source_id / dma_frcd_pasid_present; EXE/PRIV positions [R]);
 * - dword 3: FR [7:0], PASID value [27:8] (linux dma_frcd_pasid_value at offset 12), T [30]
 *   (1 = read, linux dma_frcd_type), F [31] (write 1 to clear).
 *
 * Recording goes round-robin from an internal index. A record whose F is still set, or a set PFO,
 * means overflow: PFO is set and the fault is not recorded. The fault event is generated only when
 * no earlier condition (PPF, PFO, IQE, ICE, ITE) is pending (qemu vtd_generate_fault_event).
 *
 * FPD suppresses only "qualified" faults (qemu vtd_qualified_faults): faults in fetching the
 * structures that carry FPD (root entry, table access errors) are always recorded.
 */
import { FR } from './faults.ts';
import { FRCD_F, FSTS, REG } from './regs.ts';
import { EventControl } from './events.ts';
import type { Vtd } from './vtd.ts';

const TWO_POW_32 = 4294967296;
const FSTS_W1C = FSTS.PFO | FSTS.IQE | FSTS.ICE | FSTS.ITE | FSTS.PRO;
/** Conditions that, while pending, hold back a new fault event. */
const FSTS_PENDING = FSTS.PFO | FSTS.PPF | FSTS.IQE | FSTS.ICE | FSTS.ITE;

const NOT_QUALIFIED = new Set<number>([
  FR.RTADDR_INV_TTM,
  FR.ROOT_ENTRY_P,
  FR.PASID_DIR_ACCESS,
  FR.PASID_TABLE_ACCESS,
]);

/** Whether FPD can suppress a fault with this reason. */
export function isQualifiedFault(reason: number): boolean {
  return !NOT_QUALIFIED.has(reason);
}

export interface FaultRecordRequest {
  reason: number;
  sid: number;
  /** -1 for a request without PASID. */
  pasid: number;
  addr: number;
  write: boolean;
  /** FPD applied to this request (context, PASID directory or PASID entry). */
  fpd: boolean;
  privileged?: boolean;
  exec?: boolean;
}

export class FaultRecording {
  readonly event: EventControl;
  /** Faults written to an FRCD. */
  recorded = 0;
  /** Faults suppressed by FPD. */
  suppressed = 0;
  /** Faults lost to overflow (PFO). */
  dropped = 0;
  private next = 0;

  constructor(private readonly vtd: Vtd) {
    const regs = vtd.regs;
    this.event = new EventControl(regs, REG.FECTL, 'fault', vtd.events);
    regs.onWriteFilter(REG.FSTS, (_o, v, old) => old & ~(v & FSTS_W1C));
    regs.onWrite(REG.FSTS, (_o, v) => this.onStatusWrite(v));
    for (let i = 0; i < this.count; i++) {
      const base = this.offsetOf(i);
      regs.setReadOnly(base, 12);
      regs.onWriteFilter(base + 12, (_o, w, old) => ((w & FRCD_F) !== 0 ? old & ~FRCD_F : old));
      regs.onWrite(base + 12, () => this.updatePpf());
    }
  }

  /** Number of fault recording registers (CAP.NFR). */
  get count(): number {
    return this.vtd.caps.nfr;
  }

  /** Register offset of FRCD `i` (CAP.FRO × 16). */
  offsetOf(i: number): number {
    return this.vtd.caps.fro * 16 + i * 16;
  }

  /**
   * Report a translation fault. Returns true when a record was written. The digest's
   * `vtd.faultRecords` keeps every fault FPD did not suppress, overflowed or not: overflow depends on
   * how fast software drains the records, which is timing, not architectural outcome.
   */
  record(f: FaultRecordRequest): boolean {
    const vtd = this.vtd;
    if (f.fpd && isQualifiedFault(f.reason)) {
      this.suppressed++;
      return false;
    }
    const page = f.addr - (f.addr % 4096);
    vtd.faultRecords.push({ reason: f.reason, sid: f.sid, pasid: f.pasid, addr: `0x${page.toString(16)}`, write: f.write });
    vtd.sim?.recorder.count('faults');
    const regs = vtd.regs;
    const pre = regs.get32(REG.FSTS);
    const i = this.next;
    const base = this.offsetOf(i);
    if ((pre & FSTS.PFO) !== 0 || (regs.get32(base + 12) & FRCD_F) !== 0) {
      regs.set32(REG.FSTS, pre | FSTS.PFO);
      this.dropped++;
      this.raise(pre);
      return false;
    }
    regs.set32(base, page % TWO_POW_32);
    regs.set32(base + 4, Math.floor(page / TWO_POW_32));
    const pp = f.pasid >= 0;
    regs.set32(base + 8, (f.sid & 0xffff) | (f.exec ? 1 << 29 : 0) | (f.privileged ? 1 << 30 : 0) | (pp ? 1 << 31 : 0));
    regs.set32(base + 12, (f.reason & 0xff) | (pp ? (f.pasid & 0xfffff) << 8 : 0) | (f.write ? 0 : 1 << 30) | FRCD_F);
    this.next = (i + 1) % this.count;
    this.recorded++;
    if ((pre & FSTS.PPF) === 0) {
      regs.set32(REG.FSTS, (pre & ~0xff00) | FSTS.PPF | (i << FSTS.FRI_SHIFT));
    }
    this.raise(pre);
    return true;
  }

  /** Set a queue error condition in FSTS (IQE, ITE, ICE) and raise the fault event. */
  setQueueError(bit: number): void {
    const regs = this.vtd.regs;
    const pre = regs.get32(REG.FSTS);
    regs.set32(REG.FSTS, pre | bit);
    this.raise(pre);
  }

  /** Decoded view of FRCD `i` (tests, the VMM's fault read-out). */
  read(i: number): { pending: boolean; reason: number; sid: number; pasid: number; addr: number; write: boolean } {
    const regs = this.vtd.regs;
    const base = this.offsetOf(i);
    const d2 = regs.get32(base + 8);
    const d3 = regs.get32(base + 12);
    return {
      pending: (d3 & FRCD_F) !== 0,
      reason: d3 & 0xff,
      sid: d2 & 0xffff,
      pasid: d2 >>> 31 === 1 ? (d3 >>> 8) & 0xfffff : -1,
      addr: regs.get32(base + 4) * TWO_POW_32 + regs.get32(base),
      write: ((d3 >>> 30) & 1) === 0,
    };
  }

  private raise(pre: number): void {
    if ((pre & FSTS_PENDING) === 0) this.event.raise();
  }

  private updatePpf(): void {
    const regs = this.vtd.regs;
    let any = false;
    for (let i = 0; i < this.count; i++) if ((regs.get32(this.offsetOf(i) + 12) & FRCD_F) !== 0) any = true;
    const v = regs.get32(REG.FSTS);
    regs.set32(REG.FSTS, any ? v | FSTS.PPF : v & ~FSTS.PPF);
    this.clearIpIfServiced();
  }

  private onStatusWrite(written: number): void {
    this.clearIpIfServiced();
    // clearing IQE or ITE lets the queue fetch again from IQH (VT-d §6.5.2.10)
    if ((written & (FSTS.IQE | FSTS.ITE)) !== 0) this.vtd.qi.resume();
  }

  /** qemu vtd_handle_fsts_write: IP clears once software has cleared every status condition. */
  private clearIpIfServiced(): void {
    if ((this.vtd.regs.get32(REG.FSTS) & (FSTS.PFO | FSTS.PPF | FSTS.IQE)) === 0) this.event.clearPending();
  }
}
