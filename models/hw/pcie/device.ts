/**
 * A PCIe endpoint behind a VT-d unit: a requester ID, a PASID capability, a DMA engine, ATS with a
 * device-TLB, and PRI (vtd-model §B.1, §B.5; PCIe ATS/PRI as summarised there).
 *
 * DMA: `dma(pasid | NO_PASID, addr, len, write, data?)` translates page by page and moves the bytes
 * in memory, logging each chunk in the unit's DMA effects. It completes synchronously (ok, fault,
 * error) unless a page request is outstanding: then the request is 'pending' until the page group
 * response arrives through the invalidation queue (type 9); success retries the access, invalid or
 * failure ends it with an error. Poll `req.status` or set `req.onComplete`.
 *
 * ATS: when the device has ATS and the context entry's DTE is set (Linux context_set_sm_dte), a
 * device-TLB miss is a translation request whose result the device caches; a hit is used without
 * the IOMMU. A read caches read permission only, so a later write asks again (and the IOMMU sets D).
 * PRI: with PRI, ATS in use and the context's PRE set, a non-present first-stage entry (0x71) or a
 * write to a read-only page (0x85) becomes a page request (LPIG = 1, one page per group) instead of
 * a recorded fault. PRI with PRE clear records fault 0x47 (qemu vtd_check_pre_bit).
 *
 * PRQ overflow [R: VT-d spec §7.5.1 as recalled]: hardware answers a request it cannot queue with
 * an automatic "success" response, so the device retries, re-faults and asks again; a request gets
 * `maxPriRetries` page requests before it ends with an error. (QEMU instead fails the request with
 * -ENOSPC.)
 *
 * vDPA devices reuse this model: their virtqueue groups issue DMA with their own PASIDs.
 */
import type { Sim } from '../../../sim/sim.ts';
import type { SimThread } from '../../../sim/scheduler.ts';
import { P } from '../../../sim/primitives.ts';
import { kfn } from '../../../sim/tracer.ts';
import { ACCESS } from '../vtd/walk.ts';
import { FR } from '../vtd/faults.ts';
import { PRG_RESP } from '../vtd/inv-desc.ts';
import { PRQ_RESULT } from '../vtd/prq.ts';
import { DEVTLB_NO_PASID, type AtsEndpoint } from '../vtd/qi.ts';
import { NO_PASID, TranslateResult, type Vtd } from '../vtd/vtd.ts';
import { DEVTLB_PERM_R, DEVTLB_PERM_W, DEVTLB_UNTAGGED, DeviceTlb } from './devtlb.ts';

export { NO_PASID };

const CTX_PRE = 4;
const CTX_DTE = 8;
const PRGI_COUNT = 512;

const DMA_FN = kfn({
  name: 'pcie_dma',
  layer: 'hw',
  sig: '(hardware) device DMA through the IOMMU',
  prov: { kind: 'hardware', source: 'PCIe Base spec (ATS, PRI) / Intel VT-d spec rev 4.x §3, §7' },
});

export interface PciDeviceOptions {
  /** Requester ID (bus << 8 | devfn). */
  rid: number;
  /** PASID capability width in bits (0 = no PASID capability). Default 20. */
  pasidBits?: number;
  /** ATS capability (device-TLB). Default false. */
  ats?: boolean;
  /** PRI capability (needs ATS). Default false. */
  pri?: boolean;
  /** Device-TLB entries. [R] default 64 (pcie-bench's ~64-entry figure). */
  devTlbSize?: number;
  /** Page requests one DMA may make before it ends with an error. Default 8. */
  maxPriRetries?: number;
  /** The device's own thread: retried accesses after a page response run there when a sim is bound. */
  thread?: SimThread;
  name?: string;
}

export type DmaStatus = 'ok' | 'fault' | 'pending' | 'error';

/** One DMA transfer and its outcome. */
export class DmaRequest {
  status: DmaStatus = 'pending';
  /** The fault reason when status is 'fault'. */
  reason = 0;
  /** Why the transfer ended with 'error'. */
  error = '';
  /** Bytes transferred so far. */
  done = 0;
  /** Page requests this transfer issued (automatic overflow responses included). */
  pageRequests = 0;
  /** Called once when the transfer leaves 'pending' (not called for a synchronous completion). */
  onComplete: ((r: DmaRequest) => void) | null = null;

  constructor(
    readonly pasid: number,
    readonly addr: number,
    readonly write: boolean,
    /** The bytes written, or the buffer a read fills. */
    readonly buf: Uint8Array,
  ) {}
}

export class PciDevice implements AtsEndpoint {
  readonly rid: number;
  readonly name: string;
  readonly pasidBits: number;
  readonly ats: boolean;
  readonly pri: boolean;
  readonly devTlb: DeviceTlb | null;
  readonly maxPriRetries: number;
  readonly thread: SimThread | undefined;
  /** Test switch: device-TLB invalidations are not completed (the hardware reports ITE). */
  devTlbTimeout = false;
  /** Statistics. */
  atsTranslations = 0;
  untranslatedTranslations = 0;
  strayResponses = 0;
  private readonly r = new TranslateResult();
  private readonly pending = new Map<number, DmaRequest>();
  private nextPrgi = 0;
  private hpa = 0;

  constructor(
    opts: PciDeviceOptions,
    readonly vtd: Vtd,
  ) {
    this.rid = opts.rid & 0xffff;
    this.name = opts.name ?? `pci-${this.rid.toString(16).padStart(4, '0')}`;
    this.pasidBits = opts.pasidBits ?? 20;
    this.ats = opts.ats ?? false;
    this.pri = opts.pri ?? false;
    if (this.pri && !this.ats) throw new Error(`${this.name}: PRI needs ATS`);
    this.devTlb = this.ats ? new DeviceTlb(opts.devTlbSize ?? 64) : null;
    this.maxPriRetries = opts.maxPriRetries ?? 8;
    this.thread = opts.thread;
    vtd.attachEndpoint(this);
  }

  /** Remove the device from its IOMMU (hot-unplug). */
  detach(): void {
    this.vtd.detachEndpoint(this);
  }

  /** Page requests waiting for a response, by PRG index. */
  get outstandingPageRequests(): number {
    return this.pending.size;
  }

  /** Write `data` at `addr`. */
  dmaWrite(pasid: number, addr: number, data: Uint8Array): DmaRequest {
    return this.dma(pasid, addr, data.length, true, data);
  }

  /** Read `len` bytes at `addr` into the request's `buf`. */
  dmaRead(pasid: number, addr: number, len: number): DmaRequest {
    return this.dma(pasid, addr, len, false);
  }

  /** A DMA of `len` bytes at `addr` with `pasid` (or NO_PASID). */
  dma(pasid: number, addr: number, len: number, write: boolean, data?: Uint8Array): DmaRequest {
    if (pasid !== NO_PASID && (pasid < 0 || pasid >= 2 ** this.pasidBits)) {
      throw new RangeError(`${this.name}: PASID ${pasid} beyond the device's ${this.pasidBits}-bit PASID capability`);
    }
    if (write && (data === undefined || data.length < len)) throw new RangeError(`${this.name}: a write needs ${len} bytes of data`);
    const req = new DmaRequest(pasid, addr, write, write ? data!.subarray(0, len) : new Uint8Array(len));
    this.run(req);
    return req;
  }

  // ==== the DMA engine =============================================================================

  private run(req: DmaRequest): void {
    const sim = this.vtd.sim;
    if (sim === null) this.vtd.events.run(() => this.transfer(req, null));
    else this.vtd.events.run(() => sim.call(DMA_FN, () => this.transfer(req, sim)));
  }

  private transfer(req: DmaRequest, sim: Sim | null): void {
    const vtd = this.vtd;
    const mem = vtd.mem;
    const buf = req.buf;
    while (req.done < buf.length) {
      const va = req.addr + req.done;
      const refs = mem.walkRefs;
      const st = this.translate(req.pasid, va, req.write);
      if (sim !== null) {
        const n = mem.walkRefs - refs;
        if (n > 0) {
          sim.charge(P.dmaMemRef, n);
          sim.recorder.count('walkRefs', n);
        }
      }
      if (st !== 0) {
        if (this.handleFault(req, va, st)) continue; // an automatic response: retry now
        return;
      }
      const chunk = Math.min(buf.length - req.done, 4096 - (va % 4096));
      const hpa = this.hpa;
      const part = buf.subarray(req.done, req.done + chunk);
      if (req.write) mem.writeBytes(hpa, part);
      else for (let i = 0; i < chunk; i++) part[i] = mem.readU8(hpa + i);
      vtd.effects.record(this.rid, req.pasid, `0x${va.toString(16)}`, hpa, req.write, part);
      req.done += chunk;
    }
    this.finish(req, 'ok');
  }

  /**
   * Translate one address: the device-TLB, else a translation request (ATS, DTE set) or an
   * untranslated request through the IOMMU. Returns 0 (and sets `hpa`) or the fault reason.
   */
  private translate(pasid: number, va: number, write: boolean): number {
    const tlb = this.devTlb;
    const vpn = Math.floor(va / 4096);
    const tag = pasid === NO_PASID ? DEVTLB_UNTAGGED : pasid;
    if (tlb !== null) {
      const id = tlb.lookup(tag, vpn);
      if (id >= 0 && (!write || (tlb.perm[id]! & DEVTLB_PERM_W) !== 0)) {
        this.hpa = tlb.outPfn[id]! * 4096 + (va % 4096);
        return 0;
      }
    }
    const vtd = this.vtd;
    const useAts = tlb !== null && this.atsInUse();
    const r = this.r;
    const st = vtd.translate(this.rid, pasid, va, write ? ACCESS.WRITE : ACCESS.READ, r);
    if (useAts) this.atsTranslations++;
    else this.untranslatedTranslations++;
    if (st !== 0) return st;
    this.hpa = r.hpa;
    if (useAts) {
      const perm = (r.perm & 1 ? DEVTLB_PERM_R : 0) | (write && r.perm & 2 ? DEVTLB_PERM_W : 0);
      tlb.fill(tag, vpn, Math.floor(r.hpa / 4096), perm);
    }
    return 0;
  }

  private atsInUse(): boolean {
    const f = this.vtd.contextFlagsFor(this.rid);
    return f >= 0 && (f & CTX_DTE) !== 0;
  }

  /** A translation failed. True: retry the access now; false: the request ended or is pending. */
  private handleFault(req: DmaRequest, va: number, st: number): boolean {
    const vtd = this.vtd;
    const recoverable = st === FR.FS_ENTRY_P || st === FR.SM_WRITE;
    if (!this.pri || !recoverable || !this.atsInUse()) {
      vtd.reportFault(this.r, this.rid, req.pasid, va, req.write);
      this.finish(req, 'fault', st);
      return false;
    }
    if ((vtd.contextFlagsFor(this.rid) & CTX_PRE) === 0) {
      vtd.frcd.record({ reason: FR.CONTEXT_PRE_CLEAR, sid: this.rid, pasid: req.pasid, addr: va, write: req.write, fpd: this.r.fpd });
      this.finish(req, 'fault', FR.CONTEXT_PRE_CLEAR);
      return false;
    }
    if (req.pageRequests >= this.maxPriRetries) {
      this.finish(req, 'error', 0, `page request retries exhausted (${req.pageRequests})`);
      return false;
    }
    const prgi = this.allocPrgi();
    if (prgi < 0) {
      this.finish(req, 'error', 0, 'no free PRG index');
      return false;
    }
    req.pageRequests++;
    const res = vtd.prq.enqueue({
      rid: this.rid,
      pasid: req.pasid,
      addr: va - (va % 4096),
      read: !req.write,
      write: req.write,
      exec: false,
      privileged: false,
      lpig: true,
      prgi,
    });
    if (res === PRQ_RESULT.QUEUED) {
      this.pending.set(prgi, req);
      return false; // stays 'pending'
    }
    if (res === PRQ_RESULT.OVERFLOW) return true; // automatic success response: retry
    this.finish(req, 'error', 0, 'page request queue not set up');
    return false;
  }

  private allocPrgi(): number {
    for (let i = 0; i < PRGI_COUNT; i++) {
      const p = (this.nextPrgi + i) % PRGI_COUNT;
      if (!this.pending.has(p)) {
        this.nextPrgi = (p + 1) % PRGI_COUNT;
        return p;
      }
    }
    return -1;
  }

  private finish(req: DmaRequest, status: DmaStatus, reason = 0, error = ''): void {
    const wasPending = req.pageRequests > 0;
    req.status = status;
    req.reason = reason;
    req.error = error;
    if (wasPending && req.onComplete !== null) req.onComplete(req);
  }

  // ==== AtsEndpoint: what the IOMMU sends the device ==============================================

  invalidateDevTlb(pasid: number, allPasids: boolean, addr: number, pages: number): boolean {
    if (this.devTlbTimeout) return false;
    if (this.devTlb === null) return true;
    const tag = pasid === DEVTLB_NO_PASID ? DEVTLB_UNTAGGED : pasid;
    this.devTlb.invalidate(tag, allPasids, Math.floor(addr / 4096), pages);
    return true;
  }

  pageGroupResponse(pasidPresent: boolean, pasid: number, prgi: number, code: number): void {
    const req = this.pending.get(prgi);
    if (req === undefined || (pasidPresent && req.pasid !== pasid)) {
      this.strayResponses++;
      return;
    }
    this.pending.delete(prgi);
    const resume = (): void => {
      if (code === PRG_RESP.SUCCESS) this.run(req);
      else this.finish(req, 'error', 0, code === PRG_RESP.INVALID ? 'page request answered Invalid Request' : 'page request answered Response Failure');
    };
    const sim = this.vtd.sim;
    if (sim !== null && this.thread !== undefined) sim.sched.post(this.thread, resume, sim.now);
    else resume();
  }
}
