// `${VAR}` expansion in every string of a parsed config tree (DESIGN §5); `$${` stands for a literal `${`.

export type EnvLookup = (name: string) => string | undefined;

export interface MissingVariable {
  path: (string | number)[];
  name: string;
}

const pattern = /\$(\$?)\{([A-Za-z_][A-Za-z0-9_]*)\}/g;

/** Returns a copy of `tree` with variables expanded, and every variable that was not set. */
export function expandEnv(tree: unknown, env: EnvLookup): { value: unknown; missing: MissingVariable[] } {
  const missing: MissingVariable[] = [];
  const walk = (node: unknown, path: (string | number)[]): unknown => {
    if (typeof node === 'string') {
      if (!node.includes('${')) return node;
      return node.replace(pattern, (whole, escaped: string, name: string) => {
        if (escaped) return whole.slice(1);
        const v = env(name);
        if (v === undefined) {
          missing.push({ path, name });
          return '';
        }
        return v;
      });
    }
    if (Array.isArray(node)) return node.map((v, i) => walk(v, [...path, i]));
    if (node !== null && typeof node === 'object') {
      const out: Record<string, unknown> = {};
      for (const [k, v] of Object.entries(node)) out[k] = walk(v, [...path, k]);
      return out;
    }
    return node;
  };
  return { value: walk(tree, []), missing };
}
