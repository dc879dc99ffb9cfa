// A Problem disables only what it touches and is reported (admin API, log), never thrown.

export interface Problem {
  /** What it is about: `config`, `service default/shop`, `project shop`. */
  readonly object: string;
  /** The setting or field, when there is one: `wharf.io/health-interval`, `projects.shop.instances`. */
  readonly field?: string;
  readonly severity: 'error' | 'warning';
  /** Stable machine-readable code, e.g. `bad-setting`, `name-conflict`. */
  readonly code: string;
  readonly message: string;
}
