/** Scenario issues: how they print, and the one error class for misuse. */
import type { ScenarioIssue } from './types.ts';

/** `file:line path – message`; the path and line are left out when empty. */
export function formatIssue(i: ScenarioIssue): string {
  const where = i.line > 0 ? `${i.file}:${i.line}` : i.file;
  return i.path ? `${where} ${i.path} – ${i.message}` : `${where} – ${i.message}`;
}

/** A data path as issues print it: list indexes 1-based, like step paths ("steps.3.len"). */
export function displayPath(path: readonly PropertyKey[]): string {
  return path.map((p) => (typeof p === 'number' ? String(p + 1) : String(p))).join('.');
}

/**
 * Thrown only for misuse of the loader API (e.g. unwrapping a failed load with
 * `scenarioOrThrow`); bad scenario files are reported as ScenarioIssue data.
 */
export class ScenarioError extends Error {
  override name = 'ScenarioError';
  constructor(
    message: string,
    readonly issues: readonly ScenarioIssue[] = [],
  ) {
    super(issues.length ? `${message}\n${issues.map(formatIssue).join('\n')}` : message);
  }
}
