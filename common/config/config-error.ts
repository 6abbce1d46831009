// A config file (the sidecar's, the injector's) that cannot be used: every problem found, one per line.

/** One problem before it is rendered as a line: the key path at fault and what is wrong there. */
export interface ConfigProblem {
  path: readonly PropertyKey[];
  message: string;
}

export class ConfigError extends Error {
  /** One line per problem, each `file: key.path: what is wrong`. */
  readonly problems: string[];
  constructor(problems: string[]) {
    super(problems.join('\n'));
    this.name = 'ConfigError';
    this.problems = problems;
  }
}
