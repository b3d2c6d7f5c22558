/** Sentences that state a sensitivity result: how sure a latency verdict is, where it flips. */
import { fmtInt, fmtNs, fmtNum } from './format.ts';
import type { Flip, SensitivityResult, WholeProfilePoint } from './sensitivity.ts';

function fmtPriceOf(f: Pick<Flip, 'unit'>, n: number): string {
  return f.unit === 'ns/B' ? `${fmtNum(n, 4)} ns/B` : `${fmtNum(n, 2)} ns`;
}

export function flipSentence(f: Flip): string {
  const up = f.threshold > f.default;
  const after = up ? f.lowerAbove : f.lowerBelow;
  const range = `range ${fmtPriceOf(f, f.low)} to ${fmtPriceOf(f, f.high)}, default ${fmtPriceOf(f, f.default)}`;
  return `flips if ${f.parameter} ${up ? 'rises above' : 'falls below'} ${fmtPriceOf(f, f.threshold)} (${range}): then ${after} is lower.`;
}

function pointWords(label: string, w: WholeProfilePoint): string {
  const how = w.resimulated ? 're-simulated' : 're-priced';
  const verdict = w.lower === 'equal' ? 'equal' : `${w.lower} lower`;
  return `${label} (${how}): tunnel ${fmtNs(w.tunnelNs)}, iommufd ${fmtNs(w.iommufdNs)}, ${verdict}.`;
}

export function gridSentence(r: SensitivityResult): string {
  const g = r.grid;
  const eq = g.equal ? `, equal in ${fmtInt(g.equal)}` : '';
  return `Of ${fmtInt(g.profiles)} sampled profiles, tunnel is lower in ${fmtInt(g.tunnelLower)}, iommufd in ${fmtInt(g.iommufdLower)}${eq}.`;
}

/** The verdict's robustness, flips first; `maxFlips` limits the single-parameter flips listed. */
export function sensitivitySentences(r: SensitivityResult, maxFlips = 5): string[] {
  const out: string[] = [];
  const span = `tunnel - iommufd spans ${fmtNs(r.deltaMinNs)} to ${fmtNs(r.deltaMaxNs)} over all cost ranges`;
  if (r.lowerAtDefault === 'equal') {
    out.push(`Equal at the default prices; ${span}.`);
  } else if (r.holds) {
    out.push(`Holds over every cost range: ${span}.`);
  } else if (r.flips.length) {
    const n = r.flips.length;
    out.push(`Does not hold over every range: ${span}; ${n} single-parameter flip${n === 1 ? '' : 's'}, nearest first.`);
    for (const f of r.flips.slice(0, maxFlips)) out.push(`It ${flipSentence(f)}`);
    if (r.flips.length > maxFlips) out.push(`(${r.flips.length - maxFlips} more in report.json)`);
  } else if (r.jointFlip) {
    const ends = r.jointFlip.parameters.slice(0, 4).map((p) => `${p.parameter} ${p.at}`).join(', ');
    out.push(`No single parameter flips it, but parameters moved together do: ${span}. Strongest pushes: ${ends}.`);
  } else {
    out.push(`Holds for each parameter alone, but not at the re-simulated ends: ${span}.`);
  }
  out.push(gridSentence(r));
  if (r.contended) {
    const resim = r.allLow.resimulated || r.allHigh.resimulated;
    out.push(
      resim
        ? 'Contended: per-parameter figures hold contention at its recorded figure; the whole-profile ends are re-simulated.'
        : 'Contended: no re-simulated low/high runs were given, so contention is held at its recorded figure throughout.',
    );
    out.push(pointWords('All low', r.allLow), pointWords('All high', r.allHigh));
  }
  if (r.repricingErrorNs > 1e-6 * Math.max(1, Math.abs(r.tunnelNs))) {
    out.push(`Note: re-pricing at this profile's defaults differs from the recorded latency by ${fmtNs(r.repricingErrorNs)} (the run was priced with another profile).`);
  }
  return out;
}
