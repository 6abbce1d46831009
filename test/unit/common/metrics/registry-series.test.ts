import { describe, expect, it } from 'vitest';
import { Counter, Gauge, Histogram, Registry } from '../../../../common/metrics/registry.js';

describe('kept series (labels())', () => {
  it('render exactly as updates with label objects do, in the order series were first updated', () => {
    const viaLabels = new Registry();
    const viaKept = new Registry();
    const build = (r: Registry) => ({
      c: r.register(new Counter('reqs_total', 'Requests.', ['path', 'status'] as const)),
      g: r.register(new Gauge('state', 'State.', ['target'] as const)),
      h: r.register(new Histogram('latency_seconds', 'Latency.', [0.1, 1], ['path'] as const)),
    });
    const a = build(viaLabels);
    const b = build(viaKept);
    a.c.inc({ path: '/b', status: '500' });
    a.c.inc({ path: '/a', status: '200' }, 2);
    a.g.set(2, { target: 'x' });
    a.g.dec({ target: 'x' });
    a.h.observe(0.05, { path: '/a' });
    a.h.observe(7, { path: '/a' });

    const kept = { b500: b.c.labels({ path: '/b', status: '500' }), a200: b.c.labels({ path: '/a', status: '200' }), x: b.g.labels({ target: 'x' }), ha: b.h.labels({ path: '/a' }) };
    kept.b500.inc();
    kept.a200.inc(2);
    kept.x.set(2);
    kept.x.dec();
    kept.ha.observe(0.05);
    kept.ha.observe(7);
    expect(viaKept.render()).toBe(viaLabels.render());
    expect(viaKept.render()).toContain('latency_seconds_bucket{path="/a",le="1"} 1\nlatency_seconds_bucket{path="/a",le="+Inf"} 2\n');
  });

  it('exposes a kept series only once it was updated, and shares its state with label-object updates', () => {
    const r = new Registry();
    const c = r.register(new Counter('c_total', 'C.', ['k'] as const));
    const h = r.register(new Histogram('h', 'H.', [1], ['k'] as const));
    const keptC = c.labels({ k: 'a' });
    const keptH = h.labels({ k: 'a' });
    expect(r.render()).toBe('# HELP c_total C.\n# TYPE c_total counter\n# HELP h H.\n# TYPE h histogram\n');
    keptC.inc();
    c.inc({ k: 'a' }, 2);
    keptH.observe(3);
    expect(c.get({ k: 'a' })).toBe(3);
    expect(r.render()).toContain('c_total{k="a"} 3\n');
    expect(r.render()).toContain('h_count{k="a"} 1\n');
  });
});
