/**
 * What `ioasid-sim structs` prints: the JSON layout map (`--json`) and a plain-text table.
 * Both are derived from the declarations; nothing here knows an offset by itself.
 */
import { layoutOf } from './layout.ts';
import { allStructs } from './registry.ts';
import type { StructDecl } from './types.ts';

export interface StructLayoutJson {
  size: number;
  /** offsetof() of each top-level member (members of anonymous unions count as top-level, as in C) */
  fields: Record<string, number>;
  /** absolute offsets of members inside nested structs/unions, by dotted path from the top */
  nested: Record<string, number>;
}

export interface StructsJson {
  structs: Record<string, StructLayoutJson>;
}

export function structLayoutJson(decl: StructDecl): StructLayoutJson {
  const lay = layoutOf(decl);
  const fields: Record<string, number> = {};
  const nested: Record<string, number> = {};
  for (const m of lay.members) {
    if (m.path.includes('.')) nested[m.path] = m.offset;
    else fields[m.path] = m.offset;
  }
  return { size: lay.size, fields, nested };
}

/** The `ioasid-sim structs --json` document. */
export function structsJson(decls: readonly StructDecl[] = allStructs()): StructsJson {
  const structs: Record<string, StructLayoutJson> = {};
  for (const d of decls) structs[d.name] = structLayoutJson(d);
  return { structs };
}

const WIDTH = 80;

/** One line per struct: name, size, design, short header and era; never wider than 80 columns. */
export function renderStructTable(decls: readonly StructDecl[] = allStructs()): string {
  const nameW = Math.max(6, ...decls.map((d) => d.name.length));
  const head = `${'struct'.padEnd(nameW)}  size  D  header`;
  const lines = [head, '-'.repeat(Math.min(WIDTH, head.length + 24))];
  for (const d of decls) {
    const where = `${d.header.replace(/^include\/uapi\//, '')} @ ${d.source.era}`;
    const line = `${d.name.padEnd(nameW)}  ${String(layoutOf(d).size).padStart(4)}  ${d.design}  ${where}`;
    lines.push(line.length > WIDTH ? `${line.slice(0, WIDTH - 1)}…` : line);
  }
  return `${lines.join('\n')}\n`;
}
