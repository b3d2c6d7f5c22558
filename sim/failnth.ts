/**
 * Fail-nth fault injection, after tools/testing/selftests/iommu/iommufd_fail_nth.c: every allocation
 * site, every object lookup and every explicit injection point (iommufd_should_fail) calls one
 * hook; an armed injector fails the nth call (ENOMEM for an allocation, ENOENT otherwise; an
 * injection point's caller returns the errno its kernel code returns).
 */

/** Linux errno values the injector returns (include/uapi/asm-generic/errno-base.h). */
const ENOENT = 2;
const ENOMEM = 12;

export type HookSite = 'alloc' | 'lookup' | 'inject';

export class FailNth {
  hits = 0;
  allocHits = 0;
  lookupHits = 0;
  injectHits = 0;
  private armedAt = 0;
  /** what failed, if the injector fired */
  fired: { n: number; site: HookSite; name: string } | null = null;

  /** Fail the nth hook call from now on (n ≥ 1); 0 disarms. Resets the counters. */
  arm(n: number): void {
    if (!Number.isInteger(n) || n < 0) throw new RangeError(`fail-nth: bad n ${n}`);
    this.armedAt = n;
    this.hits = this.allocHits = this.lookupHits = this.injectHits = 0;
    this.fired = null;
  }

  /** Stops injecting but keeps what fired, so that clean-up after a flow cannot fail. */
  disarm(): void {
    this.armedAt = 0;
  }

  /** Called by every hook site; returns 0 or the errno to fail with (positive). */
  hit(site: HookSite, name: string): number {
    this.hits++;
    if (site === 'alloc') this.allocHits++;
    else if (site === 'lookup') this.lookupHits++;
    else this.injectHits++;
    if (this.hits === this.armedAt) {
      this.fired = { n: this.hits, site, name };
      return site === 'alloc' ? ENOMEM : ENOENT;
    }
    return 0;
  }
}

export interface SweepStep<R> {
  n: number;
  fired: FailNth['fired'];
  result: R;
}

/**
 * Runs `flow` with the nth hook failing, for n = 1, 2, … until a run in which the injector did not
 * fire (the flow made fewer than n hook calls). `flow` builds its own fresh world for each n.
 */
export function sweepFailNth<R>(flow: (n: number) => { failnth: FailNth; result: R }, max = 100_000): SweepStep<R>[] {
  const out: SweepStep<R>[] = [];
  for (let n = 1; n <= max; n++) {
    const { failnth, result } = flow(n);
    out.push({ n, fired: failnth.fired, result });
    if (!failnth.fired) return out;
  }
  throw new Error(`fail-nth sweep did not converge within ${max} runs`);
}
