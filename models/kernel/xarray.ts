import { EBUSY, ENOMEM } from './errno.ts';
import type { Kernel } from './kernel.ts';

/**
 * An xarray of objects by id (include/linux/xarray.h), as iommufd keeps its objects: xa_alloc
 * gives the lowest free id within the limits; xa_load is an object lookup and passes fail-nth.
 */
export class XArray<T> {
  private readonly slots = new Map<number, T>();

  constructor(
    readonly k: Kernel,
    readonly name: string,
  ) {}

  /** xa_alloc: stores `entry` at the lowest free id in [min, max]; returns the id or −errno. */
  alloc(entry: T, min: number, max: number): number {
    if (this.k.sim.allocHook(`xa_alloc(${this.name})`)) return -ENOMEM;
    for (let id = min; id <= max; id++) {
      if (!this.slots.has(id)) {
        this.slots.set(id, entry);
        return id;
      }
    }
    return -EBUSY;
  }

  /** xa_load: the entry or undefined; an injected failure looks like an absent entry. */
  load(id: number): T | undefined {
    if (this.k.sim.lookupHook(`xa_load(${this.name})`)) return undefined;
    return this.slots.get(id);
  }

  /** xa_store at a given index (no allocation modelled: the caller reserved it). */
  store(id: number, entry: T): void {
    this.slots.set(id, entry);
  }

  erase(id: number): T | undefined {
    const e = this.slots.get(id);
    this.slots.delete(id);
    return e;
  }

  /** Iteration without lookups: for teardown and inspection. */
  entries(): IterableIterator<[number, T]> {
    return this.slots.entries();
  }

  get size(): number {
    return this.slots.size;
  }
}
