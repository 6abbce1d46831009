// Renders a config key path the way users write it: `models.gpt-4o.targets[0].provider`.

export function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const part of path) {
    if (typeof part === 'number') out += `[${part}]`;
    else out += out === '' ? String(part) : `.${String(part)}`;
  }
  return out === '' ? '(top level)' : out;
}

/** Whether `path` is `ancestor` or lies inside it (`a.b[0]` is within `a.b`). */
export function isWithin(path: readonly PropertyKey[], ancestor: readonly PropertyKey[]): boolean {
  return ancestor.length <= path.length && ancestor.every((part, i) => part === path[i]);
}
