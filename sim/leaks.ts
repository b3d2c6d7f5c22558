import { LeakError } from './oops.ts';

/**
 * Counts live objects, pinned pages, open fds and present hardware entries by kind. Teardown asserts
 * zero with the leak named (DESIGN principle 9).
 */
export class LeakTracker {
  private readonly live = new Map<string, Map<number, string>>();
  private nextHandle = 1;

  /** Records a live resource; returns the handle to release it with. */
  track(kind: string, label: string): number {
    let m = this.live.get(kind);
    if (!m) this.live.set(kind, (m = new Map()));
    const h = this.nextHandle++;
    m.set(h, label);
    return h;
  }

  release(kind: string, handle: number): void {
    const m = this.live.get(kind);
    if (!m || !m.delete(handle)) {
      throw new LeakError(`leak tracker: release of ${kind} handle ${handle} that is not live (double free?)`);
    }
  }

  count(kind: string): number {
    return this.live.get(kind)?.size ?? 0;
  }

  /** live counts by kind, kinds with zero omitted, sorted by kind */
  snapshot(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const k of [...this.live.keys()].sort()) {
      const n = this.live.get(k)!.size;
      if (n) out[k] = n;
    }
    return out;
  }

  /** Throws a LeakError naming every leaked resource (kind and label), or returns quietly. */
  assertClean(context = 'teardown'): void {
    const leaks: string[] = [];
    for (const [kind, m] of [...this.live].sort((a, b) => a[0].localeCompare(b[0]))) {
      for (const label of m.values()) leaks.push(`${kind}: ${label}`);
    }
    if (leaks.length) throw new LeakError(`${context}: ${leaks.length} leaked\n  ${leaks.join('\n  ')}`);
  }
}
