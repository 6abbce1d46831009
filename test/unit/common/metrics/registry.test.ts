import { describe, expect, it } from 'vitest';
import { Counter, Gauge, Histogram, Registry } from '../../../../common/metrics/registry.js';

describe('metrics registry', () => {
  it('renders counters, gauges and histograms in the Prometheus text format', () => {
    const r = new Registry();
    const c = r.register(new Counter('reqs_total', 'Requests.', ['path', 'status'] as const));
    const g = r.register(new Gauge('inflight', 'In flight.'));
    const h = r.register(new Histogram('latency_seconds', 'Latency.', [0.1, 1], ['path'] as const));
    c.inc({ path: '/a', status: '200' });
    c.inc({ path: '/a', status: '200' }, 2);
    c.inc({ path: 'we"ird\\path\n', status: '500' });
    g.inc();
    g.inc();
    g.dec();
    h.observe(0.05, { path: '/a' });
    h.observe(0.5, { path: '/a' });
    h.observe(7, { path: '/a' });
    expect(r.render()).toBe(
      [
        '# HELP reqs_total Requests.',
        '# TYPE reqs_total counter',
        'reqs_total{path="/a",status="200"} 3',
        'reqs_total{path="we\\"ird\\\\path\\n",status="500"} 1',
        '# HELP inflight In flight.',
        '# TYPE inflight gauge',
        'inflight 1',
        '# HELP latency_seconds Latency.',
        '# TYPE latency_seconds histogram',
        'latency_seconds_bucket{path="/a",le="0.1"} 1',
        'latency_seconds_bucket{path="/a",le="1"} 2',
        'latency_seconds_bucket{path="/a",le="+Inf"} 3',
        'latency_seconds_sum{path="/a"} 7.55',
        'latency_seconds_count{path="/a"} 3',
        '',
      ].join('\n'),
    );
  });

  it('counts a value equal to a bucket bound in that bucket, and refreshes scrape-time gauges', () => {
    const r = new Registry();
    const h = r.register(new Histogram('h', 'H.', [1, 2]));
    h.observe(1);
    const g = r.register(new Gauge('g', 'G.'));
    let n = 0;
    r.onCollect(() => g.set(++n));
    expect(r.render()).toContain('h_bucket{le="1"} 1\n');
    expect(r.render()).toContain('g 2\n');
  });

  it('shows an unlabelled counter at 0 before its first increment', () => {
    const r = new Registry();
    const c = r.register(new Counter('errors_total', 'Errors.'));
    expect(r.render()).toContain('# TYPE errors_total counter\nerrors_total 0\n');
    c.inc();
    expect(r.render()).toContain('errors_total 1\n');
  });
});
