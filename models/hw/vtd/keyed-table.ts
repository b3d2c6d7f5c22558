/**
 * A bounded typed-array hash table with 4 × 32-bit keys (DESIGN principle 10: cache keys wider than
 * 53 bits never go in a string-keyed Map). Each live key owns an entry id in [0, capacity); caches
 * keep their payload in typed arrays indexed by that id, so nothing is allocated per lookup.
 *
 * - Open addressing with linear probing; deletions leave tombstones, and the index is rebuilt in
 *   place when they pile up.
 * - When full, an insert evicts a victim chosen by a clock hand (round-robin over entry ids).
 * - capacity 0 disables the table: every find misses and insert returns -1.
 */
const EMPTY = 0;
const TOMB = -1;

export class KeyedTable {
  readonly capacity: number;
  /** Per entry id: 1 when live. */
  readonly live: Uint8Array;
  /** Per entry id: its 4 key words. */
  readonly keys: Int32Array;
  count = 0;
  evictions = 0;
  /** Bumped by every insert, remove and clear: lets callers memoise a lookup safely. */
  version = 0;

  private index: Int32Array; // entry id + 1, 0 = empty, -1 = tombstone
  private mask: number;
  private tombs = 0;
  private free: Int32Array;
  private freeTop: number;
  private hand = 0;

  constructor(capacity: number) {
    this.capacity = capacity;
    this.live = new Uint8Array(capacity);
    this.keys = new Int32Array(capacity * 4);
    let slots = 8;
    while (slots < capacity * 2) slots *= 2;
    this.index = new Int32Array(slots);
    this.mask = slots - 1;
    this.free = new Int32Array(capacity);
    for (let i = 0; i < capacity; i++) this.free[i] = capacity - 1 - i;
    this.freeTop = capacity;
  }

  /** Entry id holding the key, or -1. */
  find(k0: number, k1: number, k2: number, k3: number): number {
    if (this.count === 0) return -1;
    const index = this.index;
    const keys = this.keys;
    const mask = this.mask;
    let i = hash4(k0, k1, k2, k3) & mask;
    for (;;) {
      const v = index[i]!;
      if (v === EMPTY) return -1;
      if (v > 0) {
        const k = (v - 1) << 2;
        if (keys[k] === k0 && keys[k + 1] === k1 && keys[k + 2] === k2 && keys[k + 3] === k3) return v - 1;
      }
      i = (i + 1) & mask;
    }
  }

  /** Entry id for the key, inserting (and evicting if full) when absent. -1 when disabled. */
  insert(k0: number, k1: number, k2: number, k3: number): number {
    if (this.capacity === 0) return -1;
    const existing = this.find(k0, k1, k2, k3);
    if (existing >= 0) return existing;
    if (this.freeTop === 0) this.evictOne();
    this.version++;
    const id = this.free[--this.freeTop]!;
    const k = id << 2;
    this.keys[k] = k0;
    this.keys[k + 1] = k1;
    this.keys[k + 2] = k2;
    this.keys[k + 3] = k3;
    this.live[id] = 1;
    this.count++;
    this.place(id, k0, k1, k2, k3);
    return id;
  }

  /** Remove a live entry by id. */
  remove(id: number): void {
    if (this.live[id] !== 1) return;
    this.version++;
    const k = id << 2;
    const index = this.index;
    let i = hash4(this.keys[k]!, this.keys[k + 1]!, this.keys[k + 2]!, this.keys[k + 3]!) & this.mask;
    while (index[i] !== id + 1) i = (i + 1) & this.mask;
    index[i] = TOMB;
    this.tombs++;
    this.live[id] = 0;
    this.count--;
    this.free[this.freeTop++] = id;
    if (this.count === 0) this.clear();
    else if (this.tombs * 4 > index.length) this.rebuild();
  }

  clear(): void {
    this.version++;
    this.index.fill(0);
    this.live.fill(0);
    this.tombs = 0;
    this.count = 0;
    for (let i = 0; i < this.capacity; i++) this.free[i] = this.capacity - 1 - i;
    this.freeTop = this.capacity;
  }

  private place(id: number, k0: number, k1: number, k2: number, k3: number): void {
    const index = this.index;
    let i = hash4(k0, k1, k2, k3) & this.mask;
    for (;;) {
      const v = index[i]!;
      if (v === EMPTY || v === TOMB) {
        if (v === TOMB) this.tombs--;
        index[i] = id + 1;
        return;
      }
      i = (i + 1) & this.mask;
    }
  }

  private evictOne(): void {
    for (;;) {
      const id = this.hand;
      this.hand = (this.hand + 1) % this.capacity;
      if (this.live[id] === 1) {
        this.evictions++;
        this.remove(id);
        return;
      }
    }
  }

  private rebuild(): void {
    this.index.fill(0);
    this.tombs = 0;
    for (let id = 0; id < this.capacity; id++) {
      if (this.live[id] !== 1) continue;
      const k = id << 2;
      this.place(id, this.keys[k]!, this.keys[k + 1]!, this.keys[k + 2]!, this.keys[k + 3]!);
    }
  }
}

function hash4(k0: number, k1: number, k2: number, k3: number): number {
  let h = Math.imul(k0, 0x9e3779b1) ^ Math.imul(k1, 0x85ebca6b) ^ Math.imul(k2, 0xc2b2ae35) ^ Math.imul(k3, 0x27d4eb2f);
  h ^= h >>> 15;
  h = Math.imul(h, 0x2c1b3c6d);
  return h ^ (h >>> 13);
}
