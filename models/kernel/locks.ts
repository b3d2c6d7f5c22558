import { P, Resource } from '../../sim/index.ts';
import type { Kernel } from './kernel.ts';

/**
 * mutex, spinlock and rw_semaphore on the engine's contention model. The holder is the running
 * simulated thread; a re-acquire by the holder is a self-deadlock, reported as an oops.
 */
export class Mutex {
  readonly res: Resource;
  constructor(
    readonly k: Kernel,
    readonly name: string,
  ) {
    this.res = new Resource(name);
  }
}

export class SpinLock extends Mutex {}

export function mutex_lock(m: Mutex): void {
  m.k.sim.lock(m.res, P.mutex);
}

export function mutex_unlock(m: Mutex): void {
  m.k.sim.unlock(m.res);
}

export function spin_lock_irqsave(s: SpinLock): void {
  s.k.sim.lock(s.res, P.spinlock);
}

export function spin_unlock_irqrestore(s: SpinLock): void {
  s.k.sim.unlock(s.res);
}

/**
 * A reader-writer semaphore: readers share, a writer excludes all. Each side records when it
 * frees; a reader waits for the last writer, a writer for the last reader and writer.
 */
export class RwSem {
  private writerFreeAt = 0;
  private readersFreeAt = 0;
  private readers = new Set<number>();
  private writer: number | null = null;
  constructor(
    readonly k: Kernel,
    readonly name: string,
  ) {}

  down(write: boolean): void {
    const sim = this.k.sim;
    const t = sim.thread;
    sim.charge(P.rwsem);
    if (this.writer === t.id || (write && this.readers.has(t.id))) {
      sim.oops(`${this.name}: ${write ? 'down_write' : 'down_read'} by ${t.name} while it holds the semaphore (self-deadlock)`);
    }
    const freeAt = write ? Math.max(this.writerFreeAt, this.readersFreeAt) : this.writerFreeAt;
    const wait = Math.max(0, freeAt - t.clock);
    if (wait > 0) {
      t.clock += wait;
      t.contentionNs += wait;
      sim.recorder.contention(wait);
    }
    sim.recorder.lock(this.name, 0, wait);
    if (write) this.writer = t.id;
    else this.readers.add(t.id);
  }

  up(write: boolean): void {
    const sim = this.k.sim;
    const t = sim.thread;
    if (write ? this.writer !== t.id : !this.readers.has(t.id)) {
      sim.oops(`${this.name}: ${write ? 'up_write' : 'up_read'} by ${t.name}, which does not hold it`);
    }
    if (write) {
      this.writer = null;
      this.writerFreeAt = Math.max(this.writerFreeAt, t.clock);
    } else {
      this.readers.delete(t.id);
      this.readersFreeAt = Math.max(this.readersFreeAt, t.clock);
    }
  }
}

export const down_read = (s: RwSem): void => s.down(false);
export const up_read = (s: RwSem): void => s.up(false);
export const down_write = (s: RwSem): void => s.down(true);
export const up_write = (s: RwSem): void => s.up(true);
