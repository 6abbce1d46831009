// Team membership as operators set it (`llmgw team set TEAM --namespaces a,b`): a namespace's pods are
// charged to team/<team> for every team listing it. Operator data, never what a pod says about itself.
import { invalidArgument, notFound } from './errors.js';
import { isNamespaceName, isTeamName } from './scopes.js';
import type { AllocatorStore } from './allocator-store.js';

const NONE: ReadonlySet<string> = new Set();

export class Teams {
  /** namespace → the teams listing it. */
  private readonly byNamespace = new Map<string, Set<string>>();

  constructor(private readonly store: AllocatorStore) {
    for (const t of store.teams()) this.setOf(t.namespace).add(t.team);
  }

  of(namespace: string): ReadonlySet<string> {
    return this.byNamespace.get(namespace) ?? NONE;
  }

  /** Replaces a team's namespaces; returns the namespaces whose teams changed. */
  set(team: string, namespaces: readonly string[]): { namespaces: string[]; changed: Set<string> } {
    if (!isTeamName(team)) throw invalidArgument(`team "${team}" is not a valid team name`);
    const wanted = [...new Set(namespaces)].sort();
    if (wanted.length === 0) throw invalidArgument('a team needs at least one namespace (delete the team to remove it)');
    for (const ns of wanted) if (!isNamespaceName(ns)) throw invalidArgument(`"${ns}" is not a valid namespace name`);
    return { namespaces: wanted, changed: this.replace(team, wanted) };
  }

  /** Deletes a team; returns the namespaces whose teams changed. */
  delete(team: string): Set<string> {
    if (this.namespacesOf(team).length === 0) throw notFound(`no team ${team}`);
    return this.replace(team, []);
  }

  list(): { team: string; namespaces: string[] }[] {
    const byTeam = new Map<string, string[]>();
    for (const [ns, teams] of this.byNamespace) for (const t of teams) (byTeam.get(t) ?? byTeam.set(t, []).get(t)!).push(ns);
    return [...byTeam].map(([team, namespaces]) => ({ team, namespaces: namespaces.sort() })).sort((a, b) => a.team.localeCompare(b.team));
  }

  private replace(team: string, after: readonly string[]): Set<string> {
    const before = this.namespacesOf(team);
    this.store.setTeam(team, after);
    for (const ns of before) this.byNamespace.get(ns)?.delete(team);
    for (const ns of after) this.setOf(ns).add(team);
    return new Set([...before.filter((ns) => !after.includes(ns)), ...after.filter((ns) => !before.includes(ns))]);
  }

  private namespacesOf(team: string): string[] {
    return [...this.byNamespace].filter(([, teams]) => teams.has(team)).map(([ns]) => ns);
  }

  private setOf(namespace: string): Set<string> {
    let set = this.byNamespace.get(namespace);
    if (set === undefined) this.byNamespace.set(namespace, (set = new Set()));
    return set;
  }
}
