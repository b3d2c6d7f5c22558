/** A set of page numbers kept as sorted, disjoint [start, end) runs. */
export class PageRanges {
  private runs: [number, number][] = [];

  get empty(): boolean {
    return this.runs.length === 0;
  }

  covers(start: number, end: number): boolean {
    return this.runs.some(([s, e]) => s <= start && end <= e);
  }

  overlaps(start: number, end: number): boolean {
    return this.runs.some(([s, e]) => s < end && start < e);
  }

  add(start: number, end: number): void {
    const keep = this.runs.filter(([s, e]) => e < start || end < s);
    for (const [s, e] of this.runs) {
      if (!(e < start || end < s)) {
        start = Math.min(start, s);
        end = Math.max(end, e);
      }
    }
    this.runs = [...keep, [start, end] as [number, number]].sort((a, b) => a[0] - b[0]);
  }

  remove(start: number, end: number): void {
    const out: [number, number][] = [];
    for (const [s, e] of this.runs) {
      if (e <= start || end <= s) out.push([s, e]);
      else {
        if (s < start) out.push([s, start]);
        if (end < e) out.push([end, e]);
      }
    }
    this.runs = out;
  }

  clone(): PageRanges {
    const c = new PageRanges();
    c.runs = this.runs.map(([s, e]) => [s, e]);
    return c;
  }
}
