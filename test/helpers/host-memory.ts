import type { HostMemory } from '../../models/kernel/page_alloc.ts';

/** A byte-array host memory for kernel-substrate tests that need no hardware. */
export class FlatHostMemory implements HostMemory {
  readonly pages = new Map<number, Uint8Array>();
  readonly owners = new Map<number, string>();

  private page(pfn: number): Uint8Array {
    let p = this.pages.get(pfn);
    if (!p) this.pages.set(pfn, (p = new Uint8Array(4096)));
    return p;
  }

  read(pa: number, dst: Uint8Array, dstOff: number, len: number): void {
    const pfn = Math.floor(pa / 4096);
    const off = pa % 4096;
    if (off + len > 4096) throw new RangeError('read crosses a page');
    dst.set(this.page(pfn).subarray(off, off + len), dstOff);
  }

  write(pa: number, src: Uint8Array, srcOff: number, len: number): void {
    const pfn = Math.floor(pa / 4096);
    const off = pa % 4096;
    if (off + len > 4096) throw new RangeError('write crosses a page');
    this.page(pfn).set(src.subarray(srcOff, srcOff + len), off);
  }

  zeroPage(pfn: number): void {
    this.pages.get(pfn)?.fill(0);
  }

  setOwner(pfn: number, owner: string | null, index: number): void {
    if (owner === null) this.owners.delete(pfn);
    else this.owners.set(pfn, `${owner}#${index}`);
  }
}
