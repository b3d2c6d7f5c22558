/**
 * The invalidation queue (vtd-model §A.0, §B.2, §B.3, §C): IQA/IQH/IQT/ICS/IECTL/IQER and the
 * descriptor processing behind a software IQT write.
 *
 * - IQA 0x90: base 63:12, DW bit 11 (256-bit descriptors), QS 2:0 (2^QS × 4 KiB).
 * - IQH 0x80 / IQT 0x88: descriptor index << 4 (128-bit) or << 5 (256-bit) (linux qi_shift).
 * - Processing is synchronous on the IQT write (qemu vtd_handle_iqt_write → vtd_fetch_inv_desc):
 *   every descriptor from IQH up to IQT, in order, IQH advancing after each. A bad descriptor stops
 *   the queue at it (IQH points at it), sets FSTS.IQE and IQER.IQEI; nothing more is fetched until
 *   software clears IQE (linux qi_check_fault then finds IQH at the bad slot: -EINVAL).
 * - A device-TLB invalidation that times out (a device's test switch) sets FSTS.ITE and
 *   IQER.ITESID and drops the rest of the batch (IQH = IQT), so the wait after it never writes its
 *   status; linux qi_check_fault aborts the waiters and resubmits.
 *
 * Costs (DESIGN principles 3, 4), when a sim is bound: the batch occupies the queue Resource for
 * its price; a submitter that finds the queue busy waits (contention); then the primitives are
 * charged inside a 'hw' span, so the submitter's clock ends at the hardware's completion.
 */
import { kfn } from '../../../sim/tracer.ts';
import { P } from '../../../sim/primitives.ts';
import { Resource } from '../../../sim/resource.ts';
import { EventControl } from './events.ts';
import { IQEI, InvDesc, QI_TYPE, decodeInvDesc } from './inv-desc.ts';
import { FSTS, GSTS, ICS_IWC, IQA_DW, REG } from './regs.ts';
import type { Vtd } from './vtd.ts';

const TWO_POW_32 = 4294967296;

/** `pasid` for a device-TLB invalidation of requests without PASID (descriptor type 3). */
export const DEVTLB_NO_PASID = -1;

/**
 * What the hardware reaches on a PCIe endpoint: its device-TLB (ATS invalidation requests) and its
 * PRI response path. The PCIe device model implements it; hardware here knows no device class.
 */
export interface AtsEndpoint {
  readonly rid: number;
  /**
   * Invalidate cached translations of `pasid` (DEVTLB_NO_PASID: requests without PASID; every PASID
   * when `allPasids`) over `pages` 4 KiB pages from `addr` (Infinity = all). False = the device did
   * not complete the invalidation (an ATS time-out).
   */
  invalidateDevTlb(pasid: number, allPasids: boolean, addr: number, pages: number): boolean;
  /** A page group response reached the device. Called after the queue's batch completes. */
  pageGroupResponse(pasidPresent: boolean, pasid: number, prgi: number, code: number): void;
}

const PROCESS_FN = kfn({
  name: 'vtd_process_inv_queue',
  layer: 'hw',
  sig: '(hardware) invalidation queue processing',
  prov: { kind: 'hardware', source: 'Intel VT-d spec rev 4.x §6.5.2' },
});

export class InvalidationQueue {
  /** The queue as a shared resource on the virtual clock: concurrent submitters contend for it. */
  readonly resource: Resource;
  readonly event: EventControl;
  /** Totals since reset: invalidation descriptors (incl. device-TLB and responses), device-TLB ones, waits. */
  descriptors = 0;
  devTlbDescriptors = 0;
  waits = 0;
  prqDrains = 0;
  errors = 0;
  private readonly words = new Int32Array(8);
  private readonly d = new InvDesc();
  private batchInv = 0;
  private batchDev = 0;
  private batchWaits = 0;

  constructor(private readonly vtd: Vtd) {
    const regs = vtd.regs;
    this.resource = new Resource(`${vtd.name}.qi`);
    this.event = new EventControl(regs, REG.IECTL, 'inv-completion', vtd.events);
    regs.setReadOnly(REG.IQH, 8);
    regs.setReadOnly(REG.IQER, 8);
    regs.onWrite(REG.IQT, () => this.process());
    regs.onWriteFilter(REG.ICS, (_o, v, old) => old & ~(v & ICS_IWC));
    regs.onWrite(REG.ICS, () => {
      if ((regs.get32(REG.ICS) & ICS_IWC) === 0) this.event.clearPending(); // qemu vtd_handle_ics_write
    });
  }

  get enabled(): boolean {
    return (this.vtd.regs.get32(REG.GSTS) & GSTS.QIES) !== 0;
  }

  /** 256-bit descriptors (IQA.DW). */
  get wide(): boolean {
    return (this.vtd.regs.get32(REG.IQA) & IQA_DW) !== 0;
  }

  /** Queue entries: 2^QS pages of 4 KiB, 16 or 32 bytes per descriptor. */
  get size(): number {
    return 1 << ((this.vtd.regs.get32(REG.IQA) & 7) + 8 - (this.wide ? 1 : 0));
  }

  get base(): number {
    const r = this.vtd.regs;
    return r.get32(REG.IQA + 4) * TWO_POW_32 + ((r.get32(REG.IQA) & ~0xfff) >>> 0);
  }

  get shift(): number {
    return this.wide ? 5 : 4;
  }

  /** Descriptor index the hardware fetches next. */
  get head(): number {
    return this.vtd.regs.get32(REG.IQH) >>> this.shift;
  }

  /** GCMD.QIE changed (vtd.ts handleGcmd). Disabling resets IQH (qemu vtd_handle_gcmd_qie). */
  setEnabled(on: boolean): void {
    if (!on) {
      this.vtd.regs.set32(REG.IQH, 0);
      this.vtd.regs.set32(REG.IQH + 4, 0);
    }
  }

  /** Software cleared IQE/ITE: fetch again from IQH if descriptors are pending. */
  resume(): void {
    const r = this.vtd.regs;
    if (this.enabled && r.get32(REG.IQH) !== r.get32(REG.IQT)) this.process();
  }

  /**
   * Process the queue from IQH to IQT (what a software IQT write triggers; a VMM that deferred the
   * write calls it when it lets the model act). Returns the descriptors processed.
   */
  process(): number {
    const vtd = this.vtd;
    const sim = vtd.sim;
    return vtd.events.run(() => {
      if (sim === null) return this.drain();
      return sim.call(PROCESS_FN, () => {
        const n = this.drain();
        if (n === 0) return 0;
        const pv = sim.prices.ns;
        const duration =
          this.batchInv * pv[P.qiHwDescriptor]! + this.batchDev * pv[P.devtlbInvalidation]! + this.batchWaits * pv[P.qiHwCompletion]!;
        const t = sim.thread;
        const wait = this.resource.occupy(t, duration);
        if (wait > 0) {
          t.clock += wait;
          t.contentionNs += wait;
          sim.recorder.contention(wait);
        }
        if (this.batchInv > 0) sim.charge(P.qiHwDescriptor, this.batchInv);
        if (this.batchDev > 0) sim.charge(P.devtlbInvalidation, this.batchDev);
        if (this.batchWaits > 0) sim.charge(P.qiHwCompletion, this.batchWaits);
        sim.recorder.count('qiDescriptors', this.batchInv + this.batchDev);
        if (this.batchWaits > 0) sim.recorder.count('qiWaits', this.batchWaits);
        return n;
      });
    });
  }

  private drain(): number {
    this.batchInv = 0;
    this.batchDev = 0;
    this.batchWaits = 0;
    const vtd = this.vtd;
    const regs = vtd.regs;
    if (!this.enabled || (regs.get32(REG.FSTS) & (FSTS.IQE | FSTS.ITE)) !== 0) return 0;
    const wide = this.wide;
    const shift = wide ? 5 : 4;
    const size = this.size;
    const iqt = regs.get32(REG.IQT);
    if (wide && (iqt & 0x10) !== 0) return this.queueError(IQEI.TAIL_MISALIGNED);
    const tail = iqt >>> shift;
    if (tail >= size || regs.get32(REG.IQT + 4) !== 0) return this.queueError(IQEI.INVALID_TAIL);
    const base = this.base;
    const mem = vtd.mem;
    const words = this.words;
    const d = this.d;
    const nWords = wide ? 8 : 4;
    const mamv = vtd.caps.mamv;
    let head = (regs.get32(REG.IQH) >>> shift) % size;
    let n = 0;
    while (head !== tail) {
      const pa = base + (head << shift);
      for (let i = 0; i < nWords; i += 2) {
        words[i] = mem.readQword(pa + i * 4);
        words[i + 1] = mem.hi;
      }
      const bad = decodeInvDesc(words, 0, wide, mamv, d);
      if (bad !== 0) {
        this.queueError(bad);
        break;
      }
      n++;
      if (!this.execute(d)) {
        // device-TLB time-out: drop the rest of the batch (VT-d §6.5.2.10; linux qi_check_fault ITE)
        regs.set32(REG.IQH, iqt);
        const iqer = regs.get32(REG.IQER + 4);
        regs.set32(REG.IQER + 4, (iqer & 0xffff0000) | (d.sid & 0xffff));
        vtd.frcd.setQueueError(FSTS.ITE);
        this.errors++;
        return n;
      }
      head = (head + 1) % size;
      regs.set32(REG.IQH, head << shift);
    }
    return n;
  }

  /** Act on one decoded descriptor. False only for a device-TLB invalidation that timed out. */
  private execute(d: InvDesc): boolean {
    const vtd = this.vtd;
    switch (d.type) {
      case QI_TYPE.CC:
        vtd.invalidateContextCache(d.g, d.did, d.sid, d.fm);
        break;
      case QI_TYPE.IOTLB:
        vtd.invalidateIotlb(d.g, d.did, d.addr, d.am, d.ih);
        break;
      case QI_TYPE.PIOTLB:
        vtd.invalidatePasidIotlb(d.g, d.did, d.pasid, d.addr, d.am, d.ih);
        break;
      case QI_TYPE.PC:
        vtd.invalidatePasidCache(d.g, d.did, d.pasid);
        break;
      case QI_TYPE.IEC:
        break; // interrupt remapping is not modelled
      case QI_TYPE.DEV_TLB:
      case QI_TYPE.DEV_PIOTLB: {
        this.batchDev++;
        this.devTlbDescriptors++;
        this.descriptors++;
        const ep = vtd.endpoint(d.sid);
        const pasid = d.type === QI_TYPE.DEV_TLB ? DEVTLB_NO_PASID : d.pasid;
        return ep === undefined || ep.invalidateDevTlb(pasid, d.globalPasids, d.addr, d.pages);
      }
      case QI_TYPE.WAIT:
        this.batchWaits++;
        this.waits++;
        this.completeWait(d);
        return true;
      case QI_TYPE.PGRP_RESP: {
        const ep = vtd.endpoint(d.sid);
        if (ep !== undefined) {
          const { pasidPresent, pasid, prgi, respCode } = d;
          vtd.events.later(() => ep.pageGroupResponse(pasidPresent, pasid, prgi, respCode));
        }
        break;
      }
    }
    this.batchInv++;
    this.descriptors++;
    return true;
  }

  /** Inv-wait (§6.5.2.8): status write, then the completion interrupt; PD and FN are already met. */
  private completeWait(d: InvDesc): void {
    const vtd = this.vtd;
    // every earlier descriptor completed synchronously, page requests are written when they arise:
    // fence and page-request drain hold nothing back here
    if (d.prqDrain) this.prqDrains++;
    if (d.statusWrite) vtd.mem.writeU32(d.statusAddr, d.statusData);
    if (d.intr) {
      const regs = vtd.regs;
      const ics = regs.get32(REG.ICS);
      if ((ics & ICS_IWC) === 0) {
        // qemu vtd_generate_completion_event: no new event while IWC is still set
        regs.set32(REG.ICS, ics | ICS_IWC);
        this.event.raise();
      }
    }
  }

  private queueError(iqei: number): number {
    const regs = this.vtd.regs;
    regs.set32(REG.IQER, (regs.get32(REG.IQER) & ~0xf) | iqei);
    this.errors++;
    this.vtd.sim?.recorder.count('qiErrors');
    this.vtd.frcd.setQueueError(FSTS.IQE);
    return 0;
  }
}
