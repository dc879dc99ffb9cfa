// The shape of a command-line option: what node:util parseArgs needs, plus what --help prints.

export interface OptionSpec {
  readonly type: 'string' | 'boolean';
  readonly short?: string;
  /** The value's placeholder in --help (`HOST:PORT`). */
  readonly arg?: string;
  readonly help: string;
}
