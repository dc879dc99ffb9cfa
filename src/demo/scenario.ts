// The demo's world: three projects with named ports, a few instances each, one with cookie
// affinity and one with a custom health path. Pure data; the fleet runs it and a source (static
// records or the fake apiserver) publishes it to Wharf.

export interface DemoProject {
  readonly name: string;
  /** Port names; the first (or the one named `http`) is the project's default. */
  readonly ports: readonly string[];
  readonly replicas: number;
  /** Settings without the `wharf.io/` prefix, as in a Service annotation or the config file. */
  readonly settings: Readonly<Record<string, string>>;
  /** What a newcomer should try with it. */
  readonly blurb: string;
  /** Served inside the demo process (generated projects), not one process per instance. */
  readonly inline?: boolean;
}

export const DEMO_DOMAIN = 'demo.local';

export const DEMO_PROJECTS: readonly DemoProject[] = [
  {
    name: 'shop',
    ports: ['web', 'admin'],
    replicas: 3,
    settings: {
      affinity: 'cookie',
      'health-path': '/healthz',
      // Snappy on purpose: a frozen shop instance is out within about two seconds.
      'health-interval': '500ms',
      'health-timeout': '750ms',
    },
    blurb:
      'cookie affinity: the first answer sets a cookie; with it, every request lands on the same instance',
  },
  {
    name: 'api',
    ports: ['http', 'metrics'],
    replicas: 3,
    settings: { 'health-path': '/ready' },
    blurb: 'custom health path /ready; load balanced across healthy instances',
  },
  {
    name: 'blog',
    ports: ['http'],
    replicas: 2,
    settings: { 'health-path': '/healthz' },
    blurb: 'plain round of instances; kill one and watch the other take over',
  },
];

export function instanceName(project: string, ordinal: number): string {
  return `${project}-${ordinal}`;
}

export function healthPathOf(p: DemoProject): string {
  const hp = p.settings['health-path'];
  return hp && hp !== 'tcp' ? hp : '/';
}

/**
 * `--projects N`: N more projects, `svc-001` and on, two in-process instances each, probed every
 * 5 s with a 3 s timeout: enough to see how the dashboard and Wharf behave with a fleet, cheap
 * enough for a laptop. (Their instances share the demo's event loop; with 1 s probes a busy machine
 * made healthy ones flap.)
 */
export function generatedProjects(n: number): DemoProject[] {
  const width = Math.max(3, String(n).length);
  return Array.from({ length: n }, (_, i) => ({
    name: `svc-${String(i + 1).padStart(width, '0')}`,
    ports: ['http'],
    replicas: 2,
    settings: { 'health-path': '/healthz', 'health-interval': '5s', 'health-timeout': '3s' },
    blurb: 'generated',
    inline: true,
  }));
}
