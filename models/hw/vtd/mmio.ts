/**
 * The unit's MMIO window: how software (the host driver, the guest's vIOMMU driver) reaches the
 * registers. Every access charges an MMIO primitive when a sim is bound (DESIGN principle 3) and
 * then goes to the register file, whose hooks give the hardware behaviour.
 *
 * Observers let a VMM see and trap accesses (vtd-model §C: QEMU emulates the guest's vIOMMU inside
 * the IQT MMIO exit). An observer on a register sees a write in phase 'before' (the register still
 * holds the old value, the hardware has not acted) and 'after'. Returning 'defer' from 'before'
 * latches the value in the register without the hardware acting: for IQT, the descriptors stay
 * queued in (guest) memory for the VMM to read, and the VMM later lets the model process them with
 * `vtd.qi.process()`, or emulates them itself. Reads are observed in phase 'read'.
 */
import { P } from '../../../sim/primitives.ts';
import type { Vtd } from './vtd.ts';

export type MmioPhase = 'before' | 'after' | 'read';
/**
 * `value` is the 32-bit value (the low dword of a 64-bit access); `hi` the high dword of a 64-bit
 * access (0 for 32-bit ones); `size` 4 or 8.
 */
export type MmioObserver = (offset: number, value: number, phase: MmioPhase, size: 4 | 8, hi: number) => 'defer' | void;

export class VtdMmio {
  /** Software accesses, for tests and reports. */
  reads = 0;
  writes = 0;
  private readonly observers = new Map<number, MmioObserver[]>();

  constructor(private readonly vtd: Vtd) {}

  /** Observe accesses to the register at `offset` (a 64-bit access is seen at its base offset). */
  observe(offset: number, fn: MmioObserver): () => void {
    let list = this.observers.get(offset);
    if (!list) this.observers.set(offset, (list = []));
    list.push(fn);
    return () => {
      const l = this.observers.get(offset);
      const i = l?.indexOf(fn) ?? -1;
      if (l && i >= 0) l.splice(i, 1);
    };
  }

  read32(offset: number): number {
    this.charge(P.mmioRead);
    this.reads++;
    const v = this.vtd.regs.read32(offset);
    this.notify(offset, v, 'read', 4, 0);
    return v;
  }

  write32(offset: number, value: number): void {
    this.charge(P.mmioWrite);
    this.writes++;
    const regs = this.vtd.regs;
    const v = value >>> 0;
    if (this.notify(offset, v, 'before', 4, 0)) regs.latch32(offset, v);
    else regs.write32(offset, v);
    this.notify(offset, v, 'after', 4, 0);
  }

  read64(offset: number): bigint {
    this.charge(P.mmioRead);
    this.reads++;
    const v = this.vtd.regs.read64(offset);
    this.notify(offset, Number(v & 0xffffffffn), 'read', 8, Number(v >> 32n));
    return v;
  }

  /** A 64-bit write (linux dmar_writeq): a bigint, or a non-negative number below 2^53. */
  write64(offset: number, value: bigint | number): void {
    this.charge(P.mmioWrite);
    this.writes++;
    const big = typeof value === 'bigint' ? value : BigInt(value);
    const lo = Number(big & 0xffffffffn);
    const hi = Number((big >> 32n) & 0xffffffffn);
    const regs = this.vtd.regs;
    if (this.notify(offset, lo, 'before', 8, hi)) {
      regs.latch32(offset, lo);
      regs.latch32(offset + 4, hi);
    } else regs.write64(offset, big);
    this.notify(offset, lo, 'after', 8, hi);
  }

  /** Calls the observers; true when one deferred the hardware's action. */
  private notify(offset: number, value: number, phase: MmioPhase, size: 4 | 8, hi: number): boolean {
    const list = this.observers.get(offset);
    if (list === undefined || list.length === 0) return false;
    let defer = false;
    for (const fn of [...list]) if (fn(offset, value, phase, size, hi) === 'defer') defer = true;
    return defer;
  }

  private charge(kind: number): void {
    this.vtd.sim?.charge(kind);
  }
}
