/**
 * The page request queue (vtd-model §B.5): recoverable faults (PCIe PRI) reported to software.
 *
 * Registers: PQA 0xd0 (base 63:12, PQS 2:0: 2^PQS pages, 2^(PQS+7) 32-byte descriptors), PQH 0xc0
 * (software), PQT 0xc8 (hardware), both index << 5; PRS 0xdc (PPR bit 0, PRO bit 1, W1C);
 * PECTL 0xe0 (IM/IP). After qemu vtd_prq / vtd_handle_prs_write (Clément Mathieu--Drif's PRI
 * series, 2025) and linux prq.c prq_event_thread.
 *
 * Descriptor (linux decode_prq_descriptor, qemu VTD_PRD_*): qw0 type 1 [7:0], PASID present [8],
 * private data present [9], RID [31:16], PASID [51:32], EXE [52], PM (privileged) [53];
 * qw1 RD [0], WR [1], LPIG [2], PRG index [11:3], ADDR [63:12]; qw2/qw3 private data (zero).
 *
 * Overflow: the queue is full when advancing PQT would reach PQH. Hardware then sets PRS.PRO and
 * raises the page request event; while PRO is set no request is queued. What the device gets back
 * is the caller's business: `enqueue` says OVERFLOW and the device model applies the automatic
 * response (see pcie/device.ts).
 */
import { REG, PRS } from './regs.ts';
import { EventControl } from './events.ts';
import type { Vtd } from './vtd.ts';

const TWO_POW_32 = 4294967296;

export const PRQ_RESULT = Object.freeze({ QUEUED: 0, OVERFLOW: 1, NOT_CONFIGURED: 2 });

export interface PageRequestDescriptor {
  rid: number;
  /** -1 when the PASID-present bit is clear. */
  pasid: number;
  addr: number;
  read: boolean;
  write: boolean;
  exec: boolean;
  privileged: boolean;
  lpig: boolean;
  prgi: number;
}

export class PageRequestQueue {
  readonly event: EventControl;
  /** Requests written to the queue. */
  queued = 0;
  /** Requests refused because the queue was full or PRO was set. */
  overflows = 0;

  constructor(private readonly vtd: Vtd) {
    const regs = vtd.regs;
    this.event = new EventControl(regs, REG.PECTL, 'page-request', vtd.events);
    regs.setReadOnly(REG.PQT, 8);
    regs.onWriteFilter(REG.PRS, (_o, v, old) => old & ~(v & (PRS.PPR | PRS.PRO)));
    regs.onWrite(REG.PRS, () => {
      if ((regs.get32(REG.PRS) & (PRS.PPR | PRS.PRO)) === 0) this.event.clearPending();
    });
  }

  /** Queue base address (PQA bits 63:12); 0 = software has not set up a queue. */
  get base(): number {
    const r = this.vtd.regs;
    return r.get32(REG.PQA + 4) * TWO_POW_32 + ((r.get32(REG.PQA) & ~0xfff) >>> 0);
  }

  /** Descriptors the queue holds: 2^(PQS + 7). */
  get size(): number {
    return 1 << ((this.vtd.regs.get32(REG.PQA) & 7) + 7);
  }

  get head(): number {
    return (this.vtd.regs.get32(REG.PQH) >>> 5) % this.size;
  }

  get tail(): number {
    return (this.vtd.regs.get32(REG.PQT) >>> 5) % this.size;
  }

  /** Write a page request descriptor at PQT (hardware side). */
  enqueue(r: PageRequestDescriptor): number {
    const vtd = this.vtd;
    const regs = vtd.regs;
    const base = this.base;
    if (base === 0 && regs.get32(REG.PQA) === 0) return PRQ_RESULT.NOT_CONFIGURED;
    const pre = regs.get32(REG.PRS);
    if ((pre & PRS.PRO) !== 0) {
      // qemu: "No action is taken by hardware to report a fault or generate an event"
      this.overflows++;
      return PRQ_RESULT.OVERFLOW;
    }
    const tail = this.tail;
    const next = (tail + 1) % this.size;
    if (next === this.head) {
      regs.set32(REG.PRS, pre | PRS.PRO);
      this.overflows++;
      vtd.sim?.recorder.count('prqOverflows');
      this.raise(pre);
      return PRQ_RESULT.OVERFLOW;
    }
    const pa = base + tail * 32;
    const pp = r.pasid >= 0;
    const mem = vtd.mem;
    mem.writeQword(
      pa,
      1 | (pp ? 1 << 8 : 0) | ((r.rid & 0xffff) << 16),
      (pp ? r.pasid & 0xfffff : 0) | (r.exec ? 1 << 20 : 0) | (r.privileged ? 1 << 21 : 0),
    );
    mem.writeQword(
      pa + 8,
      (r.read ? 1 : 0) | (r.write ? 2 : 0) | (r.lpig ? 4 : 0) | ((r.prgi & 0x1ff) << 3) | ((r.addr % TWO_POW_32) & ~0xfff),
      Math.floor(r.addr / TWO_POW_32),
    );
    mem.writeQword(pa + 16, 0, 0);
    mem.writeQword(pa + 24, 0, 0);
    regs.set32(REG.PQT, next << 5);
    regs.set32(REG.PQT + 4, 0);
    regs.set32(REG.PRS, pre | PRS.PPR);
    this.queued++;
    vtd.sim?.recorder.count('prqEntries');
    this.raise(pre);
    return PRQ_RESULT.QUEUED;
  }

  /** Decode the descriptor in slot `index` (the software side reads it this way too). */
  read(index: number): PageRequestDescriptor {
    const mem = this.vtd.mem;
    const pa = this.base + (index % this.size) * 32;
    const q0lo = mem.readQword(pa);
    const q0hi = mem.hi;
    const q1lo = mem.readQword(pa + 8);
    const q1hi = mem.hi;
    return {
      rid: (q0lo >>> 16) & 0xffff,
      pasid: (q0lo & 0x100) !== 0 ? q0hi & 0xfffff : -1,
      exec: (q0hi & (1 << 20)) !== 0,
      privileged: (q0hi & (1 << 21)) !== 0,
      read: (q1lo & 1) !== 0,
      write: (q1lo & 2) !== 0,
      lpig: (q1lo & 4) !== 0,
      prgi: (q1lo >>> 3) & 0x1ff,
      addr: (q1hi >>> 0) * TWO_POW_32 + ((q1lo & ~0xfff) >>> 0),
    };
  }

  /** qemu vtd_generate_page_request_event: no new event while PPR or PRO is pending. */
  private raise(pre: number): void {
    if ((pre & (PRS.PPR | PRS.PRO)) === 0) this.event.raise();
  }
}
