/**
 * Peak memory of a benchmark process and of the processes it spawns (zstd, mariadb-dump…),
 * read from /proc: the process's own VmHWM (its lifetime peak resident set, so each measured
 * run gets a process of its own) and each child's VmHWM, sampled until it exits.
 */
import { readdirSync, readFileSync } from 'node:fs';

function status(pid: number | 'self'): Record<string, string> {
  try {
    const text = readFileSync(`/proc/${pid}/status`, 'utf8');
    return Object.fromEntries(
      text.split('\n').map((l) => [l.slice(0, l.indexOf(':')), l.slice(l.indexOf(':') + 1).trim()]),
    );
  } catch {
    return {};
  }
}
const kib = (v: string | undefined) => (v ? Number(v.replace(/\s*kB$/, '')) : 0);

/** Direct children of `pid` (/proc/<pid>/task/*\/children, or a scan of /proc when that is not there). */
function childrenOf(pid: number): number[] {
  try {
    return readdirSync(`/proc/${pid}/task`).flatMap((t) =>
      readFileSync(`/proc/${pid}/task/${t}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number),
    );
  } catch {
    return readdirSync('/proc')
      .filter((d) => /^\d+$/.test(d))
      .map(Number)
      .filter((p) => Number(status(p).PPid) === pid);
  }
}

export interface MemoryPeaks {
  /** This process: resident set when sampling started, and its peak (VmHWM). */
  selfStartKb: number;
  selfPeakKb: number;
  /** Peak resident set per child command name (the largest of its instances). */
  children: Record<string, number>;
  /** CPU seconds (user + system) of this process, and of each child command while it was sampled. */
  selfCpuSeconds: number;
  childCpuSeconds: Record<string, number>;
}

/** utime + stime of a process, in seconds (/proc/<pid>/stat fields 14 and 15, in clock ticks of 1/100 s). */
function cpuSeconds(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return 0;
  }
}

export class MemorySampler {
  private readonly children: Record<string, number> = {};
  private readonly cpu = new Map<number, { name: string; seconds: number }>();
  private readonly cpuStart = process.cpuUsage();
  private timer: NodeJS.Timeout | undefined;
  private readonly selfStartKb = kib(status('self').VmRSS);

  start(everyMs = 50): this {
    this.timer = setInterval(() => this.sample(), everyMs);
    return this;
  }

  private sample(): void {
    const walk = (pid: number) => {
      for (const c of childrenOf(pid)) {
        const s = status(c);
        if (s.Name) this.children[s.Name] = Math.max(this.children[s.Name] ?? 0, kib(s.VmHWM));
        if (s.Name) this.cpu.set(c, { name: s.Name, seconds: cpuSeconds(c) });
        walk(c);
      }
    };
    walk(process.pid);
  }

  stop(): MemoryPeaks {
    clearInterval(this.timer);
    const used = process.cpuUsage(this.cpuStart);
    const childCpuSeconds: Record<string, number> = {};
    for (const { name, seconds } of this.cpu.values()) childCpuSeconds[name] = (childCpuSeconds[name] ?? 0) + seconds;
    return {
      selfStartKb: this.selfStartKb,
      selfPeakKb: kib(status('self').VmHWM),
      children: { ...this.children },
      selfCpuSeconds: (used.user + used.system) / 1e6,
      childCpuSeconds,
    };
  }
}
