/**
 * The unit's three interrupt sources and their control registers (vtd-model §A.0):
 * - fault event: FECTL 0x38, condition in FSTS;
 * - invalidation completion event: IECTL 0xa0, condition ICS.IWC;
 * - page request event: PECTL 0xe0, condition PRS.PPR / PRO.
 * Each control register has IM (bit 31, mask) and IP (bit 30, pending). Raising with IM set leaves
 * IP set; clearing IM while IP is set delivers the interrupt and clears IP (qemu
 * vtd_handle_fectl_write / vtd_handle_pectl_write).
 *
 * Delivery: handlers the machine connects with `onInterrupt`. A handler bound to a sim thread is
 * posted on it at the hardware's completion time; an unbound one runs when the hardware finishes
 * its current unit of work (never re-entrantly inside queue processing).
 */
import type { Sim } from '../../../sim/sim.ts';
import type { SimThread } from '../../../sim/scheduler.ts';
import type { RegisterFile } from './regs.ts';

export type InterruptKind = 'fault' | 'inv-completion' | 'page-request';
export type InterruptHandler = (kind: InterruptKind) => void;

export const CTL_IM = 1 << 31;
export const CTL_IP = 1 << 30;

interface Binding {
  readonly kind: InterruptKind;
  readonly handler: InterruptHandler;
  readonly thread: SimThread | undefined;
}

/** Work the hardware hands on when its current unit completes: interrupts, device completions. */
export class HwEvents {
  sim: Sim | null = null;
  private readonly bindings: Binding[] = [];
  private readonly pending: (() => void)[] = [];
  private depth = 0;
  /** Interrupts delivered, by kind. */
  readonly delivered: Record<InterruptKind, number> = { fault: 0, 'inv-completion': 0, 'page-request': 0 };

  onInterrupt(kind: InterruptKind, handler: InterruptHandler, thread?: SimThread): () => void {
    const b: Binding = { kind, handler, thread };
    this.bindings.push(b);
    return () => {
      const i = this.bindings.indexOf(b);
      if (i >= 0) this.bindings.splice(i, 1);
    };
  }

  /** The interrupt message is sent (its control register allowed it). */
  deliver(kind: InterruptKind): void {
    this.delivered[kind]++;
    this.sim?.recorder.count(`irq.${kind}`);
    for (const b of this.bindings) {
      if (b.kind !== kind) continue;
      // read the clock once the unit completes: the interrupt leaves with the hardware's completion
      this.later(() => {
        const sim = this.sim;
        if (sim !== null && b.thread !== undefined) sim.sched.post(b.thread, () => b.handler(kind), sim.now);
        else b.handler(kind);
      });
    }
  }

  /** Run `fn` once the current hardware unit of work completes (now, when none is running). */
  later(fn: () => void): void {
    if (this.depth === 0) fn();
    else this.pending.push(fn);
  }

  /** Bracket a hardware unit of work: `later` work queued inside runs after the outermost one. */
  run<T>(body: () => T): T {
    this.depth++;
    let out: T;
    try {
      out = body();
    } finally {
      this.depth--;
    }
    if (this.depth === 0) {
      while (this.pending.length > 0) this.pending.shift()!();
    }
    return out;
  }
}

/** IM/IP logic of one event control register. */
export class EventControl {
  constructor(
    private readonly regs: RegisterFile,
    private readonly ctl: number,
    private readonly kind: InterruptKind,
    private readonly events: HwEvents,
  ) {
    regs.onWrite(ctl, () => this.onControlWrite());
    // IP is hardware-owned: software writes keep its current value
    regs.onWriteFilter(ctl, (_o, v, old) => (v & ~CTL_IP) | (old & CTL_IP));
    regs.set32(ctl, CTL_IM); // reset value: masked (qemu vtd_init: FECTL/IECTL/PECTL IM = 1)
  }

  /** An interrupt condition arose. */
  raise(): void {
    const v = this.regs.get32(this.ctl);
    if ((v & CTL_IM) !== 0) this.regs.set32(this.ctl, v | CTL_IP);
    else this.events.deliver(this.kind);
  }

  /** Software serviced the condition (cleared the status bits): forget a pending interrupt. */
  clearPending(): void {
    this.regs.set32(this.ctl, this.regs.get32(this.ctl) & ~CTL_IP);
  }

  get pending(): boolean {
    return (this.regs.get32(this.ctl) & CTL_IP) !== 0;
  }

  private onControlWrite(): void {
    const v = this.regs.get32(this.ctl);
    if ((v & CTL_IP) !== 0 && (v & CTL_IM) === 0) {
      this.regs.set32(this.ctl, v & ~CTL_IP);
      this.events.deliver(this.kind);
    }
  }
}
