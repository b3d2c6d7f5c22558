import { LeakError } from './oops.ts';

/** One live entry: a label and how many resources it stands for (1 unless counted). */
interface Entry {
  readonly label: string;
  n: number;
}

/**
 * Counts live objects, pinned pages, open fds and present hardware entries by kind. Teardown asserts
 * zero with the leak named (DESIGN principle 9).
 *
 * An entry usually stands for one resource (`track`/`release`). Where resources come by the
 * thousand and their owner keeps them in a typed array (the pages one mapping pinned), one counted
 * entry names the owner and carries how many are live (`trackMany`/`adjust`), so tracking costs no
 * allocation per resource.
 */
export class LeakTracker {
  private readonly live = new Map<string, Map<number, Entry>>();
  private readonly totals = new Map<string, number>();
  private nextHandle = 1;

  /** Records one live resource; returns the handle to release it with. */
  track(kind: string, label: string): number {
    return this.trackMany(kind, label, 1);
  }

  /** Records `n` (> 0) live resources under one label; `adjust` changes how many. */
  trackMany(kind: string, label: string, n: number): number {
    if (!(n > 0)) throw new LeakError(`leak tracker: ${kind} '${label}' tracked with count ${n}`);
    let m = this.live.get(kind);
    if (!m) this.live.set(kind, (m = new Map()));
    const h = this.nextHandle++;
    m.set(h, { label, n });
    this.totals.set(kind, (this.totals.get(kind) ?? 0) + n);
    return h;
  }

  /**
   * Adds `delta` (may be negative) to a counted entry; the entry ends when its count reaches 0.
   * Returns the count left. Going below zero is a double free.
   */
  adjust(kind: string, handle: number, delta: number): number {
    const m = this.live.get(kind);
    const e = m?.get(handle);
    if (!m || !e || e.n + delta < 0) {
      throw new LeakError(`leak tracker: ${kind} handle ${handle} adjusted by ${delta} below zero or not live (double free?)`);
    }
    e.n += delta;
    this.totals.set(kind, this.totals.get(kind)! + delta);
    if (e.n === 0) m.delete(handle);
    return e.n;
  }

  /** Ends an entry, whatever its count. */
  release(kind: string, handle: number): void {
    const m = this.live.get(kind);
    const e = m?.get(handle);
    if (!m || !e) throw new LeakError(`leak tracker: release of ${kind} handle ${handle} that is not live (double free?)`);
    m.delete(handle);
    this.totals.set(kind, this.totals.get(kind)! - e.n);
  }

  count(kind: string): number {
    return this.totals.get(kind) ?? 0;
  }

  /** live counts by kind, kinds with zero omitted, sorted by kind */
  snapshot(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const k of [...this.totals.keys()].sort()) {
      const n = this.totals.get(k)!;
      if (n) out[k] = n;
    }
    return out;
  }

  /** Throws a LeakError naming every leaked resource (kind and label), or returns quietly. */
  assertClean(context = 'teardown'): void {
    const leaks: string[] = [];
    let total = 0;
    for (const [kind, m] of [...this.live].sort((a, b) => a[0].localeCompare(b[0]))) {
      for (const e of m.values()) {
        leaks.push(e.n === 1 ? `${kind}: ${e.label}` : `${kind}: ${e.label} (${e.n})`);
        total += e.n;
      }
    }
    if (leaks.length) throw new LeakError(`${context}: ${total} leaked\n  ${leaks.join('\n  ')}`);
  }
}
