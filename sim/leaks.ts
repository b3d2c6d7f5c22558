import { LeakError } from './oops.ts';

/**
 * A counted entry its owner keeps: the owner adds and subtracts on `n` directly (no lookup per
 * resource) and ends the entry with `LeakTracker.drop` when it no longer holds any.
 */
export interface LeakCount {
  readonly kind: string;
  readonly label: string;
  n: number;
}

/**
 * Counts live objects, pinned pages, open fds and present hardware entries by kind. Teardown asserts
 * zero with the leak named (DESIGN principle 9).
 *
 * An entry usually stands for one resource (`track`/`release`). Where resources come by the
 * thousand and their owner keeps them in a typed array (the pages one mapping pinned), one counted
 * entry names the owner and carries how many are live (`counted`/`drop`), so tracking costs no
 * allocation or lookup per resource.
 */
export class LeakTracker {
  private readonly live = new Map<string, Map<number, string>>();
  private readonly counts = new Map<string, Set<LeakCount>>();
  private nextHandle = 1;

  /** Records one live resource; returns the handle to release it with. */
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

  /** A counted entry of `kind`, starting at 0, for its owner to count on. */
  counted(kind: string, label: string): LeakCount {
    let set = this.counts.get(kind);
    if (!set) this.counts.set(kind, (set = new Set()));
    const c: LeakCount = { kind, label, n: 0 };
    set.add(c);
    return c;
  }

  /** Ends a counted entry; it must be at zero (a count left over is a leak the owner forgot). */
  drop(c: LeakCount): void {
    if (c.n !== 0) throw new LeakError(`leak tracker: ${c.kind} '${c.label}' dropped with ${c.n} live`);
    if (!this.counts.get(c.kind)?.delete(c)) throw new LeakError(`leak tracker: ${c.kind} '${c.label}' dropped twice`);
  }

  count(kind: string): number {
    let n = this.live.get(kind)?.size ?? 0;
    for (const c of this.counts.get(kind) ?? []) n += c.n;
    return n;
  }

  /** live counts by kind, kinds with zero omitted, sorted by kind */
  snapshot(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const k of [...new Set([...this.live.keys(), ...this.counts.keys()])].sort()) {
      const n = this.count(k);
      if (n) out[k] = n;
    }
    return out;
  }

  /** Throws a LeakError naming every leaked resource (kind and label), or returns quietly. */
  assertClean(context = 'teardown'): void {
    const leaks: string[] = [];
    let total = 0;
    const kinds = [...new Set([...this.live.keys(), ...this.counts.keys()])].sort();
    for (const kind of kinds) {
      for (const label of this.live.get(kind)?.values() ?? []) leaks.push(`${kind}: ${label}`);
      total += this.live.get(kind)?.size ?? 0;
      for (const c of this.counts.get(kind) ?? []) {
        if (!c.n) continue;
        leaks.push(`${kind}: ${c.label} (${c.n})`);
        total += c.n;
      }
    }
    if (leaks.length) throw new LeakError(`${context}: ${total} leaked\n  ${leaks.join('\n  ')}`);
  }
}
