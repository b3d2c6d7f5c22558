import { P } from '../../sim/index.ts';
import type { Kernel } from './kernel.ts';

/**
 * A slab allocation. Model objects are TypeScript objects; what the kernel would kmalloc carries
 * one of these, so that every allocation passes fail-nth and the leak tracker.
 */
export interface KAlloc {
  readonly site: string;
  readonly handle: number;
  freed: boolean;
}

/** kzalloc: null on failure (the caller returns −ENOMEM, as kernel code does). */
export function kzalloc(k: Kernel, site: string): KAlloc | null {
  if (k.sim.allocHook(site)) return null;
  return { site, handle: k.sim.leaks.track('object', site), freed: false };
}

export const kmalloc = kzalloc;

/** kfree; kfree(NULL) is a no-op and a double free is an oops. */
export function kfree(k: Kernel, a: KAlloc | null | undefined): void {
  if (!a) return;
  if (a.freed) k.sim.oops(`kfree: double free of ${a.site}`);
  a.freed = true;
  k.sim.charge(P.kfree);
  k.sim.leaks.release('object', a.handle);
}
