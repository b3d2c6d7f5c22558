/** Plain-text layout for mail: wrapping, fixed-width tables and side-by-side columns. */

export const TEXT_WIDTH = 80;

/** Cuts a line to `width` columns, ending in "~" when cut. */
export function clip(s: string, width: number): string {
  return s.length <= width ? s : `${s.slice(0, width - 1)}~`;
}

/** Wraps words to `width` columns; later lines start with `indent`. Over-long words are clipped. */
export function wrap(text: string, width = TEXT_WIDTH, first = '', indent = first.replace(/./g, ' ')): string[] {
  const out: string[] = [];
  let line = first;
  let empty = true;
  for (const word of text.split(/\s+/).filter(Boolean)) {
    const sep = empty ? '' : ' ';
    if (!empty && line.length + sep.length + word.length > width) {
      out.push(line);
      line = indent;
      empty = true;
    }
    line += (empty ? '' : ' ') + word;
    empty = false;
  }
  if (!empty || out.length === 0) out.push(line);
  return out.map((l) => clip(l, width));
}

/** Wraps each paragraph (blank-line separated) and keeps a blank line between them. */
export function paragraphs(text: string, width = TEXT_WIDTH, indent = ''): string[] {
  const out: string[] = [];
  for (const p of text.split(/\n\s*\n/).map((x) => x.trim()).filter(Boolean)) {
    if (out.length) out.push('');
    out.push(...wrap(p, width, indent));
  }
  return out;
}

export interface Column {
  header: string;
  width: number;
  align?: 'left' | 'right';
}

/** A fixed-width table: header, a rule, rows; cells are clipped to their column. */
export function table(cols: readonly Column[], rows: readonly (readonly string[])[], indent = ''): string[] {
  const cell = (s: string, c: Column): string => {
    const t = clip(s, c.width);
    return c.align === 'right' ? t.padStart(c.width) : t.padEnd(c.width);
  };
  const line = (cells: readonly string[]): string => (indent + cols.map((c, i) => cell(cells[i] ?? '', c)).join('  ')).trimEnd();
  return [line(cols.map((c) => c.header)), line(cols.map((c) => '-'.repeat(c.width))), ...rows.map(line)];
}

/** Two blocks of lines next to each other, each clipped to `width`, separated by " | ". */
export function sideBySide(left: readonly string[], right: readonly string[], width: number): string[] {
  const n = Math.max(left.length, right.length);
  const out: string[] = [];
  for (let i = 0; i < n; i++) out.push(`${clip(left[i] ?? '', width).padEnd(width)} | ${clip(right[i] ?? '', width)}`.trimEnd());
  return out;
}

export function heading(title: string, rule = '-'): string[] {
  const t = clip(title, TEXT_WIDTH);
  return [t, rule.repeat(t.length)];
}
