/** HTML escaping for text and attribute values, and JSON safe inside a script block. */

/**
 * Escapes text for HTML. An address quoted in a text (a description citing a mail) is shown as
 * written but never becomes a link, and its "://" is written as character references so the page
 * source holds no scheme-qualified URL.
 */
const NEEDS_ESCAPE = /[&<>"']|:\/\//;

export function esc(s: string): string {
  // most strings (names, figures) need nothing: one test instead of six replaces
  if (!NEEDS_ESCAPE.test(s)) return s;
  return s
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&#39;')
    .replace(/:\/\//g, ':&#47;&#47;');
}

/** JSON for a `<script type="application/json">` block: no "<" can close the element */
export function scriptJson(value: unknown): string {
  return JSON.stringify(value).replace(/</g, '\\u003c').replace(/:\/\//g, ':\\u002f\\u002f').replace(/\u2028/g, '\\u2028').replace(/\u2029/g, '\\u2029');
}
