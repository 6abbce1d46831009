// Runs the built `llmgw` executable (dist/, produced by `npm run build`, which `npm test` runs first).
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';

export const CLI = join(import.meta.dirname, '../../dist/llmgw/main.mjs');

export interface Running {
  child: ChildProcessWithoutNullStreams;
  stdout: () => string;
  stderr: () => string;
  /** Resolves with the first stdout line matching `pattern`. */
  waitForLine(pattern: RegExp, timeoutMs?: number): Promise<string>;
  exit: Promise<number | null>;
}

const children = new Set<ChildProcessWithoutNullStreams>();

/** Kills whatever a failed test left running. */
export function killAll(): void {
  for (const c of children) c.kill('SIGKILL');
  children.clear();
}

export function startCli(args: string[], env: NodeJS.ProcessEnv = process.env): Running {
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run \`npm run build\` first (npm test does)`);
  const child = spawn(process.execPath, [CLI, ...args], { env, stdio: 'pipe' });
  children.add(child);
  child.once('exit', () => children.delete(child));
  let out = '';
  let err = '';
  const waiters: { pattern: RegExp; resolve: (l: string) => void }[] = [];
  child.stdout.on('data', (d: Buffer) => {
    out += d.toString('utf8');
    for (const w of [...waiters]) {
      const line = out.split('\n').find((l) => w.pattern.test(l));
      if (line !== undefined) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(line);
      }
    }
  });
  child.stderr.on('data', (d: Buffer) => (err += d.toString('utf8')));
  const exit = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return {
    child,
    stdout: () => out,
    stderr: () => err,
    exit,
    waitForLine(pattern, timeoutMs = 10_000) {
      const line = out.split('\n').find((l) => pattern.test(l));
      if (line !== undefined) return Promise.resolve(line);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no stdout line matched ${pattern} in ${timeoutMs} ms; stdout:\n${out}\nstderr:\n${err}`)), timeoutMs);
        waiters.push({
          pattern,
          resolve: (l) => {
            clearTimeout(timer);
            resolve(l);
          },
        });
        void exit.then(() => reject(new Error(`exited before printing ${pattern}; stderr:\n${err}`)));
      });
    },
  };
}

/** Runs to completion; returns the exit code and output. */
export async function runCli(args: string[], env?: NodeJS.ProcessEnv): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const r = startCli(args, env);
  const code = await r.exit;
  return { code, stdout: r.stdout(), stderr: r.stderr() };
}

/** The environment without provider keys, so nothing reaches a real provider. */
export function envWithoutKeys(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  delete env.OPENAI_API_KEY;
  delete env.ANTHROPIC_API_KEY;
  return env;
}
