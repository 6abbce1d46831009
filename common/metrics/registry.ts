// A small Prometheus registry: counters, gauges and histograms with fixed label names, rendered in the
// text exposition format (0.0.4). Written here rather than taken from prom-client because that library
// costs ~17 ms of the sidecar's 150 ms start-up budget and hashes a label object on every update of the
// request path; this keeps one Map lookup per update, and none through a series resolved once with `labels()`.

type LabelValues<L extends string> = Readonly<Record<L, string>>;

/** One series of a counter, resolved once (`Counter.labels`): an update through it looks nothing up. */
export interface CounterSeries {
  inc(by?: number): void;
}

/** One series of a gauge, resolved once (`Gauge.labels`). */
export interface GaugeSeries {
  set(value: number): void;
  inc(by?: number): void;
  dec(by?: number): void;
}

/** One series of a histogram, resolved once (`Histogram.labels`). */
export interface HistogramSeries {
  observe(value: number): void;
}

interface Metric {
  render(): string;
}

const escapeLabel = (v: string): string => v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
const escapeHelp = (v: string): string => v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');

function formatNumber(n: number): string {
  if (Number.isNaN(n)) return 'NaN';
  if (n === Infinity) return '+Inf';
  if (n === -Infinity) return '-Inf';
  return String(n);
}

abstract class Labelled<L extends string> implements Metric {
  /** Label values joined by a separator no label value contains after escaping → series state. */
  protected readonly series = new Map<string, { labels: string; value: number[] }>();

  constructor(
    readonly name: string,
    readonly help: string,
    readonly labelNames: readonly L[],
    private readonly type: 'counter' | 'gauge' | 'histogram',
    private readonly width: number,
  ) {}

  protected state(labels: LabelValues<L> | undefined): number[] {
    let key = '';
    if (labels !== undefined) for (const n of this.labelNames) key += `${labels[n]}\u0001`;
    let s = this.series.get(key);
    if (s === undefined) {
      const rendered = labels === undefined ? '' : this.labelNames.map((n) => `${n}="${escapeLabel(labels[n])}"`).join(',');
      s = { labels: rendered, value: new Array<number>(this.width).fill(0) };
      this.series.set(key, s);
    }
    return s.value;
  }

  render(): string {
    let out = `# HELP ${this.name} ${escapeHelp(this.help)}\n# TYPE ${this.name} ${this.type}\n`;
    for (const s of this.series.values()) out += this.renderSeries(s.labels, s.value);
    return out;
  }

  protected abstract renderSeries(labels: string, value: number[]): string;
}

export class Counter<L extends string = never> extends Labelled<L> {
  constructor(name: string, help: string, labelNames: readonly L[] = []) {
    super(name, help, labelNames, 'counter', 1);
    // An unlabelled counter reads 0 before its first increment, as Prometheus clients expose it.
    if (labelNames.length === 0) this.state(undefined);
  }

  inc(labels?: LabelValues<L>, by = 1): void {
    this.state(labels)[0]! += by;
  }

  /** The series of these label values, for callers that keep it (the series appears on first update, as with `inc`). */
  labels(labels: LabelValues<L>): CounterSeries {
    return new ValueChild(() => this.state(labels));
  }

  get(labels?: LabelValues<L>): number {
    return this.state(labels)[0]!;
  }

  protected renderSeries(labels: string, v: number[]): string {
    return `${this.name}${labels === '' ? '' : `{${labels}}`} ${formatNumber(v[0]!)}\n`;
  }
}

export class Gauge<L extends string = never> extends Labelled<L> {
  constructor(name: string, help: string, labelNames: readonly L[] = []) {
    super(name, help, labelNames, 'gauge', 1);
  }

  set(value: number, labels?: LabelValues<L>): void {
    this.state(labels)[0] = value;
  }

  inc(labels?: LabelValues<L>, by = 1): void {
    this.state(labels)[0]! += by;
  }

  dec(labels?: LabelValues<L>, by = 1): void {
    this.state(labels)[0]! -= by;
  }

  /** Forgets every series: for a gauge set anew from current state when scraped, so that what is gone (a deleted budget) leaves no series behind. Not for gauges updated through `labels()`: a series kept that way stops showing. */
  clear(): void {
    this.series.clear();
  }

  /** The series of these label values, for callers that keep it (the series appears on first update, as with `set`). */
  labels(labels: LabelValues<L>): GaugeSeries {
    return new ValueChild(() => this.state(labels));
  }

  protected renderSeries(labels: string, v: number[]): string {
    return `${this.name}${labels === '' ? '' : `{${labels}}`} ${formatNumber(v[0]!)}\n`;
  }
}

/** Cumulative buckets (upper bounds, ascending); state is [count per bucket…, +Inf, sum]. */
export class Histogram<L extends string = never> extends Labelled<L> {
  constructor(
    name: string,
    help: string,
    private readonly buckets: readonly number[],
    labelNames: readonly L[] = [],
  ) {
    super(name, help, labelNames, 'histogram', buckets.length + 2);
  }

  observe(value: number, labels?: LabelValues<L>): void {
    observeInto(this.state(labels), this.buckets, value);
  }

  /** The series of these label values, for callers that keep it (the series appears on first observation, as with `observe`). */
  labels(labels: LabelValues<L>): HistogramSeries {
    return new HistogramChild(() => this.state(labels), this.buckets);
  }

  protected renderSeries(labels: string, v: number[]): string {
    const sep = labels === '' ? '' : ',';
    let out = '';
    let cumulative = 0;
    for (let i = 0; i <= this.buckets.length; i++) {
      cumulative += v[i]!;
      const le = i === this.buckets.length ? '+Inf' : formatNumber(this.buckets[i]!);
      out += `${this.name}_bucket{${labels}${sep}le="${le}"} ${cumulative}\n`;
    }
    const braces = labels === '' ? '' : `{${labels}}`;
    return `${out}${this.name}_sum${braces} ${formatNumber(v[this.buckets.length + 1]!)}\n${this.name}_count${braces} ${cumulative}\n`;
  }
}

function observeInto(s: number[], buckets: readonly number[], value: number): void {
  let i = 0;
  while (i < buckets.length && value > buckets[i]!) i++;
  s[i]! += 1;
  s[buckets.length + 1]! += value;
}

/** A kept series: it finds its state on its first update, so a series kept but never updated is not exposed. */
abstract class Child {
  private state: number[] | undefined;

  constructor(private readonly resolve: () => number[]) {}

  protected values(): number[] {
    return (this.state ??= this.resolve());
  }
}

class ValueChild extends Child implements CounterSeries, GaugeSeries {
  inc(by = 1): void {
    this.values()[0]! += by;
  }

  dec(by = 1): void {
    this.values()[0]! -= by;
  }

  set(value: number): void {
    this.values()[0] = value;
  }
}

class HistogramChild extends Child implements HistogramSeries {
  constructor(
    resolve: () => number[],
    private readonly buckets: readonly number[],
  ) {
    super(resolve);
  }

  observe(value: number): void {
    observeInto(this.values(), this.buckets, value);
  }
}

/** Renders registered metrics; `collect` hooks refresh gauges read at scrape time. */
export class Registry {
  static readonly contentType = 'text/plain; version=0.0.4; charset=utf-8';
  private readonly metrics: Metric[] = [];
  private readonly collectors: (() => void)[] = [];

  register<M extends Metric>(metric: M): M {
    this.metrics.push(metric);
    return metric;
  }

  onCollect(fn: () => void): void {
    this.collectors.push(fn);
  }

  render(): string {
    for (const c of this.collectors) c();
    return this.metrics.map((m) => m.render()).join('');
  }
}
