// A config file (the sidecar's, the injector's) that cannot be used: every problem found, one per line.

export class ConfigError extends Error {
  /** One line per problem, each `file: key.path: what is wrong`. */
  readonly problems: string[];
  constructor(problems: string[]) {
    super(problems.join('\n'));
    this.name = 'ConfigError';
    this.problems = problems;
  }
}
