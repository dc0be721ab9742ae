import { distance } from 'fastest-levenshtein';

/**
 * The known name a mistyped one most likely meant, or undefined when none is close:
 * same letters in another case, or a few edits away (a typo, not another word).
 */
export function closestName(name: string, known: readonly string[]): string | undefined {
  const folded = name.toLowerCase().replace(/[-_]/g, '');
  let best: string | undefined;
  let bestDistance = Number.POSITIVE_INFINITY;
  for (const candidate of known) {
    const d = distance(folded, candidate.toLowerCase().replace(/[-_]/g, ''));
    if (d < bestDistance) [best, bestDistance] = [candidate, d];
  }
  return bestDistance <= Math.max(2, Math.floor(folded.length / 3)) ? best : undefined;
}
