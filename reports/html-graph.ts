/** Expandable call graphs for report.html: nested <details>, provenance badges on every frame. */
import type { SpanJson } from '../sim/index.ts';
import { esc } from './html-escape.ts';

/** frames rendered per graph; a bigger tree ends in a note */
const MAX_FRAMES = 2000;
/** levels open when the page loads */
const OPEN_LEVELS = 3;

export function callGraphHtml(roots: readonly SpanJson[]): string {
  let budget = MAX_FRAMES;
  let skipped = 0;
  const render = (s: SpanJson, depth: number): string => {
    if (budget-- <= 0) {
      skipped++;
      return '';
    }
    const prov = `<span class="prov prov-${esc(s.prov.kind)}" title="${esc(s.prov.source)}">${esc(s.prov.kind)}</span>`;
    const op = s.op ? ` <span class="op">op=${esc(s.op)}</span>` : '';
    const uapi = s.uapi ? ` <span class="uapi">${esc(s.uapi.param)}: ${esc(s.uapi.ctype)}</span>` : '';
    const head = `<span class="dur">${(s.ns / 1000).toFixed(3)} us</span> <code>${esc(s.name)}()</code> <span class="layer">${esc(s.layer)}</span> ${prov}${op}${uapi}`;
    if (!s.children.length) return `<div class="leaf" title="${esc(s.sig)}">${head}</div>`;
    const kids = s.children.map((c) => render(c, depth + 1)).join('');
    return `<details${depth < OPEN_LEVELS ? ' open' : ''}><summary title="${esc(s.sig)}">${head}</summary>${kids}</details>`;
  };
  const body = roots.map((r) => render(r, 0)).join('');
  return skipped ? `${body}<p class="note">… ${skipped} more frames (report.json holds the tree)</p>` : body;
}
