// Budget scopes: namespace/<ns>, namespace/<ns>/service/<name>, team/<name> (DESIGN §6), and the scopes a
// pod's requests are charged to.

/** Whom a sidecar spends for, as the service established it (verified, with --auth kubernetes or jwks). */
export interface Identity {
  namespace: string;
  /** The pod's service account ('' when unknown). */
  service: string;
  pod: string;
}

// Kubernetes names: a namespace is a DNS-1123 label, a service account (or pod) a DNS-1123 subdomain; none
// can hold the scope separator '/'.
const dnsLabel = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
const dnsSubdomain = /^(?=.{1,253}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const name = /^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/;

/** Undefined when `scope` is well formed, else what is wrong with it. */
export function scopeProblem(scope: string): string | undefined {
  const parts = scope.split('/');
  if (parts[0] === 'namespace' && (parts.length === 2 || parts.length === 4)) {
    if (!dnsLabel.test(parts[1]!)) return `"${parts[1]}" is not a valid namespace name`;
    if (parts.length === 2) return undefined;
    if (parts[2] !== 'service') return 'expected namespace/<ns>/service/<name>';
    return name.test(parts[3]!) || dnsSubdomain.test(parts[3]!) ? undefined : `"${parts[3]}" is not a valid service name`;
  }
  if (parts[0] === 'team' && parts.length === 2) return name.test(parts[1]!) ? undefined : `"${parts[1]}" is not a valid team name`;
  return 'a scope is namespace/<ns>, namespace/<ns>/service/<name> or team/<name>';
}

export const isNamespaceName = (s: string): boolean => dnsLabel.test(s);
export const isServiceAccountName = (s: string): boolean => dnsSubdomain.test(s);
export const isTeamName = (s: string): boolean => name.test(s);

/** Every scope whose budgets a request from `identity` is charged against; `teams`: the namespace's teams. */
export function scopesOf(identity: Pick<Identity, 'namespace' | 'service'>, teams: Iterable<string> = []): string[] {
  const out = [`namespace/${identity.namespace}`];
  if (identity.service !== '') out.push(`namespace/${identity.namespace}/service/${identity.service}`);
  for (const team of teams) out.push(`team/${team}`);
  return out;
}
