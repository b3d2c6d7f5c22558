/**
 * Provenance and era labels: which figures depend on code nobody merged, and what era each stack
 * models (DESIGN principles 5 and 6).
 */
import type { ProvenanceKind } from '../sim/index.ts';
import type { StackName } from '../scenarios/results.ts';

/** the mark a figure carries when its steps' strongest provenance is this kind */
export const PROVENANCE_MARK: Record<ProvenanceKind, string> = { merged: '', hardware: '', posted: '+', projection: '*' };

export const MARK_LEGEND: readonly string[] = [
  '* depends on a projection: code nobody posted, modelled after what its advocates described',
  '+ depends on posted code: on a list, never merged (the v8 series on v5.12)',
  '~ contended: contention re-simulated at the low/high profiles, not re-priced',
];

export const STACK_ERAS: Record<StackName, string> = {
  tunnel:
    'tunnel (A): the vSVA v8 series as posted on v5.12 (VFIO type1 nesting, the IOMMU UAPI layer, /dev/ioasid V4); its vhost-vdpa tunnel is a projection',
  iommufd:
    'iommufd (B): the IOMMU fd as of Linux 6.15; vhost-vdpa on iommufd follows the 2023 RFC (a projection)',
};

export const SHARED_ERA =
  'Both stacks run on one emulated Intel VT-d, one IOMMU core and one Intel driver modelling Linux 6.15; where eras meet, the README lists the era artifacts ("Era artifacts").';

export function markOf(p: ProvenanceKind | undefined): string {
  return p ? PROVENANCE_MARK[p] : '';
}

/** the marks a scenario's comparison carries: both stacks' provenance, and `~` when contended */
export function scenarioMarks(provenance: Partial<Record<StackName, ProvenanceKind>>, contended: boolean): string {
  const marks = new Set(Object.values(provenance).map(markOf).join('').split('').filter(Boolean));
  return `${[...marks].sort().join('')}${contended ? '~' : ''}`;
}
