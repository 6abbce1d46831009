// `llmgw team set|list|delete`: the operators' mapping of namespaces to team/<name> budgets.
import type { TeamMsg } from '../../proto/messages.js';
import { isNamespaceName, isTeamName } from '../../quota-service/scopes.js';
import { checkOutput, table, withAdminClient, type AdminFlags } from '../admin-connection.js';
import { UsageError } from '../args.js';

function checkTeam(team: string): string {
  if (!isTeamName(team)) throw new UsageError(`team "${team}": letters, digits and -_. (up to 63), starting and ending with a letter or digit`);
  return team;
}

function printTeams(teams: TeamMsg[], output: 'table' | 'json'): void {
  if (output === 'json') process.stdout.write(`${JSON.stringify(teams.map((t) => ({ team: t.team, namespaces: t.namespaces })), null, 2)}\n`);
  else if (teams.length === 0) process.stdout.write('no teams\n');
  else process.stdout.write(table([['TEAM', 'NAMESPACES'], ...teams.map((t) => [t.team, t.namespaces.join(',')])]));
}

export async function teamSet(team: string, o: AdminFlags & { namespaces: string }): Promise<void> {
  const output = checkOutput(o);
  const namespaces = o.namespaces.split(',').map((s) => s.trim()).filter((s) => s !== '');
  if (namespaces.length === 0) throw new UsageError('--namespaces: expected one or more namespace names, e.g. payments,checkout');
  for (const ns of namespaces) if (!isNamespaceName(ns)) throw new UsageError(`--namespaces: "${ns}" is not a valid namespace name`);
  const t = await withAdminClient(o, (c) => c.setTeam(checkTeam(team), namespaces));
  printTeams([t], output);
}

export async function teamList(o: AdminFlags): Promise<void> {
  const output = checkOutput(o);
  printTeams(await withAdminClient(o, (c) => c.listTeams()), output);
}

export async function teamDelete(team: string, o: AdminFlags): Promise<void> {
  const output = checkOutput(o);
  const n = await withAdminClient(o, (c) => c.deleteTeam(checkTeam(team)));
  process.stdout.write(output === 'json' ? `${JSON.stringify({ deleted: n })}\n` : `deleted team ${team}\n`);
}
