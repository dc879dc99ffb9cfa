// The demo fleet: every demo instance is a real child process (instance.mjs), so `freeze` is a real
// SIGSTOP (the process keeps its sockets but answers nothing, like a hung pod) and `kill` a real
// SIGKILL (connections refused, like a crashed pod). Revive resumes a frozen process or restarts a
// dead one on the same ports, so it comes back as the same endpoint. Generated projects (`--projects
// N`) run their instances inside the demo process instead (inline.ts), with the same three actions.

import { type ChildProcess, fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { InlineInstance } from './inline.ts';
import { type DemoProject, healthPathOf, instanceName } from './scenario.ts';

/** `draining`: being scaled down; still serving pinned and sticky requests until it is removed. */
export type InstanceStatus = 'starting' | 'running' | 'frozen' | 'killed' | 'draining';

export interface DemoInstanceView {
  readonly project: string;
  readonly instance: string;
  readonly ordinal: number;
  readonly status: InstanceStatus;
  /** The instance's own process; null for an in-process instance of a generated project. */
  readonly pid: number | null;
  /** Port name -> `127.0.0.1:<port>`. */
  readonly addresses: Readonly<Record<string, string>>;
}

interface Member {
  readonly project: DemoProject;
  readonly name: string;
  readonly ordinal: number;
  ports: Record<string, number>;
  child: ChildProcess | null;
  /** Generated projects: served in this process. */
  inline: InlineInstance | null;
  status: InstanceStatus;
}

export interface FleetOptions {
  /** Called after every change of membership or status (publish to the source, push to dashboards). */
  readonly onChange?: () => void;
  /** Milliseconds to wait for an instance to listen. Default 10 s. */
  readonly startTimeoutMs?: number;
  /** How long a scaled-down instance drains (serving + terminating) before it goes. Default 5 s. */
  readonly drainMs?: number;
}

const SCRIPT = fileURLToPath(new URL('./instance.mjs', import.meta.url));
const MAX_REPLICAS = 8;

export class Fleet {
  private readonly members: Member[] = [];
  private readonly projects = new Map<string, DemoProject>();
  private stopping = false;
  private readonly drainTimers = new Set<NodeJS.Timeout>();

  constructor(private readonly opts: FleetOptions = {}) {}

  /** Start every project's replicas. */
  async start(projects: readonly DemoProject[]): Promise<void> {
    for (const p of projects) this.projects.set(p.name, p);
    await Promise.all(projects.flatMap((p) => Array.from({ length: p.replicas }, (_, i) => this.add(p, i))));
  }

  projectList(): {
    name: string;
    ports: readonly string[];
    replicas: number;
    settings: Readonly<Record<string, string>>;
  }[] {
    return [...this.projects.values()].map((p) => ({
      name: p.name,
      ports: p.ports,
      settings: p.settings,
      replicas: this.members.filter((m) => m.project.name === p.name && m.status !== 'draining').length,
    }));
  }

  list(): DemoInstanceView[] {
    return this.members
      .map((m) => ({
        project: m.project.name,
        instance: m.name,
        ordinal: m.ordinal,
        status: m.status,
        pid: m.child?.pid ?? null,
        addresses: Object.fromEntries(Object.entries(m.ports).map(([k, v]) => [k, `127.0.0.1:${v}`])),
      }))
      .sort((a, b) => (a.project === b.project ? a.ordinal - b.ordinal : a.project < b.project ? -1 : 1));
  }

  /** SIGKILL: the port stops listening, connections are refused. */
  kill(project: string, instance: string): void {
    const m = this.find(project, instance);
    if (m.status === 'killed') return;
    m.status = 'killed';
    m.child?.kill('SIGKILL');
    void m.inline?.stop();
    this.changed();
  }

  /** SIGSTOP: the process holds its sockets and answers nothing, like a hung pod. */
  freeze(project: string, instance: string): void {
    const m = this.find(project, instance);
    if (m.status !== 'running' || !(m.child || m.inline)) return;
    m.child?.kill('SIGSTOP');
    m.inline?.freeze();
    m.status = 'frozen';
    this.changed();
  }

  /** SIGCONT a frozen process, or restart a killed one on the same ports. */
  async revive(project: string, instance: string): Promise<void> {
    const m = this.find(project, instance);
    if (m.status === 'frozen' && (m.child || m.inline)) {
      m.child?.kill('SIGCONT');
      m.inline?.thaw();
      m.status = 'running';
      this.changed();
      return;
    }
    if (m.status === 'killed') await this.spawn(m);
  }

  /** Add one instance (the next ordinal); it gets fresh ports. */
  async scaleUp(project: string): Promise<void> {
    const p = this.projects.get(project);
    if (!p) throw new DemoError(404, `no demo project ${project}`);
    const mine = this.members.filter((m) => m.project.name === project);
    if (mine.length >= MAX_REPLICAS)
      throw new DemoError(409, `at most ${MAX_REPLICAS} instances per project in the demo`);
    let ordinal = 0;
    while (mine.some((m) => m.ordinal === ordinal)) ordinal++;
    // `mine` includes draining instances: their names stay taken until they are gone.
    await this.add(p, ordinal);
  }

  /**
   * Remove the highest-numbered instance, as a StatefulSet scale-down would: it drains first
   * (EndpointSlice `serving` + `terminating`), then its process stops and it leaves the table.
   */
  scaleDown(project: string): void {
    if (!this.projects.has(project)) throw new DemoError(404, `no demo project ${project}`);
    const mine = this.members.filter((m) => m.project.name === project && m.status !== 'draining');
    if (mine.length <= 1) throw new DemoError(409, 'keep at least one instance');
    const last = mine.reduce((a, b) => (b.ordinal > a.ordinal ? b : a));
    last.status = 'draining';
    this.changed();
    const timer = setTimeout(() => {
      this.drainTimers.delete(timer);
      const i = this.members.indexOf(last);
      if (i < 0) return;
      this.members.splice(i, 1);
      this.changed();
      void stopChild(last);
    }, this.opts.drainMs ?? 5000);
    this.drainTimers.add(timer);
  }

  async stopAll(): Promise<void> {
    this.stopping = true;
    for (const t of this.drainTimers) clearTimeout(t);
    this.drainTimers.clear();
    await Promise.all(this.members.map((m) => stopChild(m)));
  }

  private async add(p: DemoProject, ordinal: number): Promise<void> {
    const m: Member = {
      project: p,
      name: instanceName(p.name, ordinal),
      ordinal,
      ports: Object.fromEntries(p.ports.map((n) => [n, 0])),
      child: null,
      inline: null,
      status: 'starting',
    };
    this.members.push(m);
    await this.spawn(m);
  }

  private spawn(m: Member): Promise<void> {
    m.status = 'starting';
    if (m.project.inline) return this.startInline(m);
    const child = fork(SCRIPT, [], {
      env: {
        ...process.env,
        WHARF_DEMO_INSTANCE: JSON.stringify({
          project: m.project.name,
          instance: m.name,
          ports: m.ports,
          healthPath: healthPathOf(m.project),
        }),
      },
      // No loader flags from the parent (tsx): the instance is plain JavaScript.
      execArgv: [],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    m.child = child;
    child.on('exit', () => {
      if (m.child !== child) return;
      m.child = null;
      if (!this.stopping && m.status !== 'killed' && this.members.includes(m)) {
        m.status = 'killed';
        this.changed();
      }
    });
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        reject(new Error(`demo instance ${m.name} did not start`));
      }, this.opts.startTimeoutMs ?? 10_000);
      child.once('message', (msg: { type?: string; ports?: Record<string, number> }) => {
        clearTimeout(timer);
        if (msg.type === 'ready' && msg.ports) {
          m.ports = msg.ports;
          m.status = 'running';
          this.changed();
          resolve();
        } else reject(new Error(`demo instance ${m.name}: unexpected message`));
      });
      child.once('exit', (code) => {
        clearTimeout(timer);
        if (m.status === 'starting') reject(new Error(`demo instance ${m.name} exited with ${code}`));
      });
    });
  }

  private async startInline(m: Member): Promise<void> {
    m.inline ??= new InlineInstance({
      project: m.project.name,
      instance: m.name,
      healthPath: healthPathOf(m.project),
      ports: m.ports,
    });
    m.ports = await m.inline.start();
    m.status = 'running';
    this.changed();
  }

  private find(project: string, instance: string): Member {
    const m = this.members.find((x) => x.project.name === project && x.name === instance);
    if (!m) throw new DemoError(404, `no demo instance ${project}/${instance}`);
    return m;
  }

  private changed(): void {
    if (!this.stopping) this.opts.onChange?.();
  }
}

export class DemoError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

async function stopChild(m: Member): Promise<void> {
  await m.inline?.stop();
  const child = m.child;
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  await new Promise<void>((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), 2000);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    // A stopped process cannot act on SIGTERM until it is continued.
    child.kill('SIGCONT');
    child.kill('SIGTERM');
  });
}
