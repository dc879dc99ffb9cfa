// What sources (the config file, Kubernetes discovery) know about the world, before any convention
// is applied. Immutable once built: a changed project is a new record (see SourceUpdate for why
// identity matters).

export interface HostPort {
  readonly host: string;
  readonly port: number;
}

/** One instance (a pod, or a static entry of the config file) of a project. */
export interface InstanceRecord {
  /** Pod name (`targetRef.name`) or the key in the config file; a DNS label. */
  readonly name: string;
  /** Pod UID when known; feeds the affinity token so a recreated pod of the same name is a new instance. */
  readonly uid?: string;
  /** Port name -> address. An instance may lack some of the project's ports. */
  readonly addresses: Readonly<Record<string, HostPort>>;
  /** EndpointSlice `serving && terminating`: no new sessions, pinned and sticky requests still go there. */
  readonly draining: boolean;
  readonly node?: string;
  readonly zone?: string;
}

/** One project: a Service labelled `wharf.io/project`, or an entry under `projects:` in the config file. */
export interface ProjectRecord {
  readonly name: string;
  /** Where it was declared, for the admin API: `config` or `<namespace>/<service>`. */
  readonly origin: string;
  /** How Problems name it: `service <namespace>/<name>`, `project <name>`. */
  readonly object: string;
  /** How Problems name one of its settings: this prefix, then the key (`wharf.io/`, `projects.shop.`). */
  readonly settingPrefix: string;
  /** The field that gives it its name, for Problems about the name (`metadata.labels.wharf.io/project`). */
  readonly nameField?: string;
  /**
   * Written by the operator (the config file, the demo): its addresses are taken as given, loopback
   * and host names included. Discovered records leave it out, and routing refuses addresses no
   * cluster should send (routing/addresses.ts).
   */
  readonly declared?: boolean;
  /** RFC 3339 creation time; of two records of one source claiming a name, the older one wins. */
  readonly created: string;
  /** Port names in declaration order; the first is the default when there is no port named `http`. */
  readonly ports: readonly string[];
  /** A Service port's `appProtocol`, by port name (only ports that declare one). */
  readonly appProtocols?: Readonly<Record<string, string>>;
  /** Raw per-project settings (DESIGN.md §3) keyed without the `wharf.io/` prefix; parsed by routing. */
  readonly settings: Readonly<Record<string, string>>;
  readonly instances: readonly InstanceRecord[];
}

/**
 * What changed in a set of projects: the record objects that left (compared by identity) and those
 * that came. A changed Service is one of each. Lets routing and health work in proportion to the
 * change instead of the cluster.
 */
export interface ProjectChange {
  readonly removed: readonly ProjectRecord[];
  readonly added: readonly ProjectRecord[];
}
