import type { SimThread } from './scheduler.ts';

/**
 * A shared resource on the virtual clock (a mutex, a spinlock, a hardware queue). It records when it
 * becomes free; a thread that finds it busy advances its clock to that time and records the wait as
 * contention (DESIGN principle 4).
 *
 * Units run to completion in start-time order, so a resource is never observed held by another
 * thread: "busy" means its last holder released it later on the virtual clock than the acquirer's
 * present. The approximation: a unit that started earlier wins the resource even if, within its
 * unit, it reaches the resource later than a unit that starts after it.
 */
export class Resource {
  freeAt = 0;
  owner: SimThread | null = null;
  private acquiredAt = 0;
  /** statistics */
  taken = 0;
  contended = 0;
  waitNs = 0;
  heldNs = 0;

  constructor(readonly name: string) {}

  /**
   * Takes the resource for `t`; returns the contention wait in ns (0 when free). A re-acquire by the
   * owner is a self-deadlock: the caller reports it as an oops.
   */
  acquire(t: SimThread): number {
    if (this.owner === t) throw new DeadlockError(`${this.name}: recursive acquire by ${t.name} (self-deadlock)`);
    if (this.owner !== null) {
      throw new DeadlockError(`${this.name}: held by ${this.owner.name} across units; ${t.name} would block forever`);
    }
    let wait = 0;
    if (this.freeAt > t.clock) {
      wait = this.freeAt - t.clock;
      t.clock = this.freeAt;
      t.contentionNs += wait;
      this.contended++;
      this.waitNs += wait;
    }
    this.owner = t;
    this.acquiredAt = t.clock;
    this.taken++;
    return wait;
  }

  /** Releases; returns how long it was held. */
  release(t: SimThread): number {
    if (this.owner !== t) {
      throw new DeadlockError(`${this.name}: released by ${t.name} but owned by ${this.owner?.name ?? 'nobody'}`);
    }
    this.owner = null;
    this.freeAt = t.clock;
    const held = t.clock - this.acquiredAt;
    this.heldNs += held;
    return held;
  }

  /**
   * Occupies the resource for `durationNs` of its own time starting when both it and `t` are free
   * (a hardware queue processing a batch). Returns the wait before processing began; the caller
   * decides whether `t` also waits for the processing (a synchronous submit does).
   */
  occupy(t: SimThread, durationNs: number): number {
    const start = Math.max(this.freeAt, t.clock);
    const wait = start - t.clock;
    if (wait > 0) {
      this.contended++;
      this.waitNs += wait;
    }
    this.freeAt = start + durationNs;
    this.heldNs += durationNs;
    this.taken++;
    return wait;
  }
}

export class DeadlockError extends Error {
  override name = 'DeadlockError';
}
