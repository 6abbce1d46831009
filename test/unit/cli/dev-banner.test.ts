// What `llmgw dev` prints: every address, and command lines a POSIX shell reads back as the arguments meant,
// whatever the state folder's name or the listen address.
import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { devBanner, shellArg, type DevBannerInput } from '../../../cli/commands/dev.js';

const input = (over: Partial<DevBannerInput> = {}): DevBannerInput => ({
  stateDir: '/home/me/project/.llmgw',
  sidecar: { host: '127.0.0.1', port: 4000 },
  sidecarStatus: { host: '127.0.0.1', port: 4001 },
  quota: { host: '127.0.0.1', port: 50051 },
  quotaStatus: { host: '127.0.0.1', port: 4002 },
  fakeUrl: 'http://127.0.0.1:38211',
  models: ['gpt-4o-mini'],
  upstreams: ['fake OpenAI at http://127.0.0.1:38211/v1'],
  namespace: 'default',
  adminTokenFile: '/home/me/project/.llmgw/admin-token',
  ...over,
});

/** The arguments `sh` makes of a printed line (after its command name). */
const shArgs = (line: string): string[] => {
  const rest = line.slice(line.indexOf(' ') + 1);
  return execFileSync('sh', ['-c', `for a in ${rest}; do printf '%s\\0' "$a"; done`], { encoding: 'utf8' }).split('\0').slice(0, -1);
};

describe('llmgw dev banner', () => {
  it('lists the data, status, quota gRPC, quota status and fake provider addresses', () => {
    const banner = devBanner(input());
    expect(banner).toMatch(/^ {2}sidecar +http:\/\/127\.0\.0\.1:4000 /m);
    expect(banner).toMatch(/^ {2}sidecar status +http:\/\/127\.0\.0\.1:4001 /m);
    expect(banner).toMatch(/^ {2}quota service +127\.0\.0\.1:50051 /m);
    expect(banner).toMatch(/^ {2}quota status +http:\/\/127\.0\.0\.1:4002 /m);
    expect(banner).toMatch(/^ {2}fake provider +http:\/\/127\.0\.0\.1:38211 /m);
    expect(devBanner(input({ fakeUrl: undefined }))).toMatch(/^ {2}fake provider +not started/m);
  });

  it('prints llmgw lines against the dev quota service with its operator token', () => {
    const lines = devBanner(input()).split('\n').filter((l) => l.startsWith('llmgw '));
    expect(lines).toEqual([
      'llmgw budget set namespace/default --tokens 100000 --window day --quota-addr 127.0.0.1:50051 --token-file /home/me/project/.llmgw/admin-token',
      'llmgw budget get namespace/default --quota-addr 127.0.0.1:50051 --token-file /home/me/project/.llmgw/admin-token',
      'llmgw budget usage namespace/default --quota-addr 127.0.0.1:50051 --token-file /home/me/project/.llmgw/admin-token',
    ]);
  });

  it('quotes what a shell would split or expand: a folder with spaces or quotes, an IPv6 address', () => {
    const tokenFile = "/home/me/my project's $HOME/.llmgw/admin-token";
    const banner = devBanner(input({ adminTokenFile: tokenFile, quota: { host: '::1', port: 50051 } }));
    const set = banner.split('\n').find((l) => l.startsWith('llmgw budget set '))!;
    expect(shArgs(set)).toEqual(['budget', 'set', 'namespace/default', '--tokens', '100000', '--window', 'day', '--quota-addr', '[::1]:50051', '--token-file', tokenFile]);
    const curl = banner.split('\n').find((l) => l.startsWith('curl '))!;
    expect(JSON.parse(shArgs(curl).at(-1)!)).toEqual({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'Hello!' }] });
    expect(shellArg('plain/path-1.2:3')).toBe('plain/path-1.2:3');
  });
});
