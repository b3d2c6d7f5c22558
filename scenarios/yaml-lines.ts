/** Source lines of YAML nodes, by data path (yaml's node ranges plus a LineCounter). */
import { isMap, isSeq, type Document, type LineCounter, type Node } from 'yaml';

export class YamlLines {
  constructor(
    private readonly doc: Document,
    private readonly counter: LineCounter,
  ) {}

  /** The line of a byte offset in the text. */
  lineAt(offset: number): number {
    return this.counter.linePos(offset).line;
  }

  /**
   * The line of the value at `path`. When the path does not exist (a missing key), the line of its
   * deepest existing ancestor. The line of the last key itself with `key: true` (an unknown key) and
   * when the value is a list or a mapping.
   */
  lineOf(path: readonly PropertyKey[], opts: { key?: boolean } = {}): number {
    let node: unknown = this.doc.contents;
    let line = node ? this.start(node as Node) : 1;
    for (const [i, seg] of path.entries()) {
      const last = i === path.length - 1;
      if (isMap(node)) {
        const pair = node.items.find((p) => String((p.key as { value?: unknown } | null)?.value) === String(seg));
        if (!pair) return line;
        const key = pair.key as Node | null;
        // an unknown key, or a list or mapping value that starts on the lines below its key
        if (key && last && (opts.key || isMap(pair.value) || isSeq(pair.value))) return this.start(key);
        if (!pair.value) return key ? this.start(key) : line;
        node = pair.value;
      } else if (isSeq(node) && typeof seg === 'number') {
        const item = node.items[seg];
        if (!item) return line;
        node = item;
      } else {
        return line;
      }
      line = this.start(node as Node);
    }
    return line;
  }

  private start(node: Node): number {
    return node.range ? this.lineAt(node.range[0]) : 1;
  }
}
