// "Did you mean" for a name that is not one of the known ones: the closest known name by edit distance
// (a swap of neighbouring letters counts as one edit), when it is close enough to be a typo (a third of the
// name's length, at least one edit).

/** The known name closest to `name` (case aside), or undefined when none is close enough to be a typo. */
export function closestName(name: string, known: Iterable<string>): string | undefined {
  let best: string | undefined;
  let bestDistance = Math.max(1, Math.floor(name.length / 3)) + 1;
  for (const k of known) {
    const d = editDistance(name.toLowerCase(), k.toLowerCase());
    if (d < bestDistance) {
      best = k;
      bestDistance = d;
    }
  }
  return best;
}

/** `; did you mean "x"?` for the closest of `known` to `name`, or '' when none is close. */
export function didYouMean(name: string, known: readonly string[]): string {
  const best = closestName(name, known);
  return best === undefined ? '' : `; did you mean "${best}"?`;
}

/** Edit distance counting an insertion, a deletion, a substitution or a swap of neighbours as one edit. */
function editDistance(a: string, b: string): number {
  if (Math.abs(a.length - b.length) > 8) return Math.abs(a.length - b.length);
  let before: number[] = [];
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      row[j] = Math.min(prev[j]! + 1, row[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
      // `cahce` for `cache`: two letters typed the wrong way round are one slip, not two.
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) row[j] = Math.min(row[j]!, before[j - 2]! + 1);
    }
    before = prev;
    prev = row;
  }
  return prev[b.length]!;
}
