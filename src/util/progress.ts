/**
 * One status line on stderr for long work: done/total, rate, ETA. On a terminal it redraws in place; in
 * logs (CI, pipes) it prints at most every `logEveryMs` so a run's log stays readable.
 */
export class ProgressLine {
  private readonly tty = Boolean(process.stderr.isTTY);
  // In logs the first line waits a full interval: work that ends sooner leaves no progress lines at all.
  private last = this.tty ? 0 : Date.now();
  private drawn = false;

  constructor(
    private readonly label: string,
    private readonly opts: { enabled?: boolean; logEveryMs?: number } = {},
  ) {}

  update(fields: {
    done: number;
    total: number;
    elapsedMs: number;
    rate?: { value: number; unit: string };
  }): void {
    if (this.opts.enabled === false) return;
    const now = Date.now();
    const every = this.tty ? 100 : (this.opts.logEveryMs ?? 5000);
    if (now - this.last < every && (fields.done < fields.total || !this.tty)) return;
    this.last = now;
    const line = formatProgress(this.label, fields);
    if (this.tty) {
      process.stderr.write(`\r\x1b[2K${line}`);
      this.drawn = true;
    } else {
      process.stderr.write(`${line}\n`);
    }
  }

  done(): void {
    if (this.tty && this.drawn) process.stderr.write("\n");
    this.drawn = false;
  }
}

export function formatProgress(
  label: string,
  f: { done: number; total: number; elapsedMs: number; rate?: { value: number; unit: string } },
): string {
  const parts = [`${label} ${f.done}/${f.total}`];
  if (f.rate) parts.push(`${f.rate.value.toFixed(1)} ${f.rate.unit}`);
  const eta = f.done > 0 && f.done < f.total ? ((f.total - f.done) * f.elapsedMs) / f.done : null;
  parts.push(eta == null ? `${formatDuration(f.elapsedMs)} elapsed` : `ETA ${formatDuration(eta)}`);
  return parts.join(" | ");
}

/** A duration given in milliseconds, compact for a terminal line: `42s`, `3m05s`, `2h07m`. */
export function formatDuration(ms: number): string {
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m${String(s % 60).padStart(2, "0")}s`;
  return `${Math.floor(m / 60)}h${String(m % 60).padStart(2, "0")}m`;
}
