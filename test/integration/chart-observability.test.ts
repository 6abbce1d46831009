// The chart's Grafana dashboard and PrometheusRule (issue 20, part 7), rendered with the real helm binary:
// both off by default; on, the dashboard ConfigMap carries the Grafana sidecar's label and a valid dashboard
// whose every query is sane PromQL naming only series the sidecar and the quota service export, and the
// PrometheusRule has the expected alerts with the thresholds and durations from values.
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { describe, expect, it } from 'vitest';

const ROOT = join(import.meta.dirname, '../..');
const HELM = join(ROOT, 'node_modules/.bin/helm');
const CHART = join(ROOT, 'charts/llm-gateway');
const NS = 'llm-gateway';
const DASHBOARD_FILE = join(CHART, 'dashboards/llm-gateway.json');
/** The oldest Kubernetes the chart supports (Chart.yaml kubeVersion) and a current one. */
const KUBE_VERSIONS = ['1.25.0', '1.35.0'];

type Doc = { apiVersion: string; kind: string; metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> }; [k: string]: any };

function helm(args: string[]): string {
  return execFileSync(HELM, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

function render(sets: string[] = [], kubeVersion = '1.30.0'): Doc[] {
  const out = helm(['template', 'rel', CHART, '--namespace', NS, '--kube-version', kubeVersion, ...sets.flatMap((s) => ['--set', s])]);
  return parseAllDocuments(out)
    .map((d) => d.toJS() as Doc | null)
    .filter((d): d is Doc => d !== null);
}

function renderError(sets: string[]): string {
  try {
    render(sets);
  } catch (err) {
    return String((err as { stderr?: string }).stderr ?? err);
  }
  throw new Error(`the chart rendered with ${sets.join(' ')}`);
}

const ON = ['grafana.dashboard.enabled=true', 'prometheusRule.enabled=true'];
const dashboardMap = (docs: Doc[]) => docs.find((d) => d.kind === 'ConfigMap' && d.metadata.name === 'rel-llm-gateway-dashboard');
const ruleOf = (docs: Doc[]) => docs.find((d) => d.kind === 'PrometheusRule');
type Rule = { alert: string; expr: string; for?: string; labels: Record<string, string>; annotations: Record<string, string> };
const alertsOf = (docs: Doc[]): Map<string, Rule> => new Map((ruleOf(docs)!.spec.groups as { rules: Rule[] }[]).flatMap((g) => g.rules).map((r) => [r.alert, r]));

// ---- The series the code exports (the contract of issue 20, part 5, and what exists today) ----

const HISTOGRAMS = ['llmgw_request_duration_seconds', 'llmgw_quota_wait_seconds', 'gen_ai_client_token_usage', 'gen_ai_client_operation_duration_seconds', 'llmgw_gateway_overhead_seconds'];
const SCALARS = [
  // sidecar
  'llmgw_requests_total', 'llmgw_tokens_total', 'llmgw_cache_requests_total', 'llmgw_quota_lease_tokens', 'llmgw_quota_lease_calls_total',
  'llmgw_quota_waits_total', 'llmgw_quota_fail_open_tokens_total', 'llmgw_upstream_retries_total', 'llmgw_fallbacks_total', 'llmgw_circuit_state',
  'llmgw_refusals_total', 'llmgw_cost_usd_total', 'llmgw_quota_degraded', 'llmgw_quota_degraded_seconds_total',
  // quota service
  'llmgw_quota_rpcs_total', 'llmgw_quota_granted_tokens_total', 'llmgw_quota_lease_answers_total', 'llmgw_quota_active_leases',
  'llmgw_quota_budget_used', 'llmgw_quota_budget_limit', 'llmgw_quota_cost_usd_total', 'llmgw_quota_unpriced_tokens_total',
];
const EXPORTED = new Set([...SCALARS, ...HISTOGRAMS.flatMap((h) => [`${h}_bucket`, `${h}_sum`, `${h}_count`])]);
/** Series the alerts may use beyond ours: Prometheus' own scrape health and kube-state-metrics' Deployment status. */
const RULE_EXTRA = new Set(['up', 'kube_deployment_status_replicas_available']);
const baseName = (series: string) => HISTOGRAMS.find((h) => series === `${h}_bucket` || series === `${h}_sum` || series === `${h}_count`) ?? series;

// ---- A small PromQL reader: enough to find metric names and catch malformed expressions ----

const AGGREGATIONS = new Set(['sum', 'min', 'max', 'avg', 'group', 'stddev', 'stdvar', 'count', 'count_values', 'bottomk', 'topk', 'quantile', 'limitk', 'limit_ratio']);
const FUNCTIONS = new Set([
  ...AGGREGATIONS,
  ...'abs absent absent_over_time ceil changes clamp clamp_max clamp_min day_of_month day_of_week day_of_year days_in_month delta deriv exp floor histogram_avg histogram_count histogram_fraction histogram_quantile histogram_stddev histogram_stdvar histogram_sum hour idelta increase irate label_join label_replace ln log2 log10 minute month predict_linear rate resets round scalar sgn sort sort_desc sqrt time timestamp vector year avg_over_time min_over_time max_over_time sum_over_time count_over_time quantile_over_time stddev_over_time stdvar_over_time last_over_time present_over_time'.split(' '),
]);
const COUNTER_FUNCTIONS = new Set(['rate', 'irate', 'increase', 'resets']);
const GROUPING = new Set(['by', 'without', 'on', 'ignoring', 'group_left', 'group_right']);
const KEYWORDS = new Set(['and', 'or', 'unless', 'bool', 'offset', 'atan2']);
/** Grafana's variables a dashboard query may use without defining them. */
const GRAFANA_BUILTINS = new Set(['__rate_interval', '__interval', '__range']);

type Token = { kind: 'ident' | 'num' | 'str' | 'op' | '(' | ')' | ',' | 'matchers' | 'range'; text: string };

const MATCHERS = /^\s*(?:[a-zA-Z_][a-zA-Z0-9_]*\s*(?:=~|!~|!=|=)\s*"(?:[^"\\]|\\.)*"\s*(?:,\s*|$))*$/;
const DURATION = '(?:[0-9]+(?:ms|s|m|h|d|w|y))+';
const RANGE = new RegExp(`^(?:\\$[a-zA-Z_]+|${DURATION})(?::(?:${DURATION})?)?$`);

function lex(expr: string): Token[] {
  const out: Token[] = [];
  let i = 0;
  const closing = (open: string, close: string): number => {
    let j = i + 1;
    while (j < expr.length && expr[j] !== close) {
      if (expr[j] === '"') {
        j++;
        while (j < expr.length && expr[j] !== '"') j += expr[j] === '\\' ? 2 : 1;
      }
      j++;
    }
    if (j >= expr.length) throw new Error(`unclosed ${open} at ${i} in: ${expr}`);
    return j;
  };
  while (i < expr.length) {
    const rest = expr.slice(i);
    const c = expr[i]!;
    let m: RegExpMatchArray | null;
    if (/\s/.test(c)) i++;
    else if (c === '{') {
      const j = closing('{', '}');
      const body = expr.slice(i + 1, j);
      if (!MATCHERS.test(body)) throw new Error(`malformed label matchers {${body}} in: ${expr}`);
      out.push({ kind: 'matchers', text: body });
      i = j + 1;
    } else if (c === '[') {
      const j = closing('[', ']');
      const body = expr.slice(i + 1, j);
      if (!RANGE.test(body)) throw new Error(`malformed range [${body}] in: ${expr}`);
      out.push({ kind: 'range', text: body });
      i = j + 1;
    } else if (c === '"') {
      const j = closing('"', '"');
      out.push({ kind: 'str', text: expr.slice(i + 1, j) });
      i = j + 1;
    } else if (c === '(' || c === ')' || c === ',') {
      out.push({ kind: c, text: c });
      i++;
    } else if ((m = rest.match(/^[0-9]+(?:\.[0-9]+)?(?:e[+-]?[0-9]+)?/))) {
      out.push({ kind: 'num', text: m[0] });
      i += m[0].length;
    } else if ((m = rest.match(/^[a-zA-Z_:][a-zA-Z0-9_:]*/))) {
      out.push({ kind: 'ident', text: m[0] });
      i += m[0].length;
    } else if ((m = rest.match(/^(?:==|!=|>=|<=|[-+*/%^<>])/))) {
      out.push({ kind: 'op', text: m[0] });
      i += m[0].length;
    } else throw new Error(`unexpected ${JSON.stringify(c)} at ${i} in: ${expr}`);
  }
  return out;
}

type Reading = { metrics: string[]; functions: string[]; groupLabels: string[] };

/** The metric names, functions and grouping labels of `expr`; throws on anything malformed it can see. */
function readPromQL(expr: string): Reading {
  const tokens = lex(expr);
  const reading: Reading = { metrics: [], functions: [], groupLabels: [] };
  let depth = 0;
  for (const t of tokens) {
    if (t.kind === '(') depth++;
    if (t.kind === ')' && --depth < 0) throw new Error(`unbalanced ) in: ${expr}`);
  }
  if (depth !== 0) throw new Error(`unbalanced ( in: ${expr}`);
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i]!;
    const next = tokens[i + 1];
    if (t.kind === 'op' && (next === undefined || next.kind === 'op' || next.kind === ')' || next.kind === ',')) throw new Error(`operator ${t.text} without a right operand in: ${expr}`);
    if (t.kind === 'range') {
      const before = tokens[i - 1];
      if (before === undefined || !(before.kind === 'matchers' || before.kind === 'ident' || before.kind === ')')) throw new Error(`a range [${t.text}] after nothing it can select in: ${expr}`);
    }
    if (t.kind !== 'ident') continue;
    if (GROUPING.has(t.text)) {
      if (next?.kind !== '(') {
        if (t.text.startsWith('group_')) continue;
        throw new Error(`${t.text} without a label list in: ${expr}`);
      }
      let j = i + 2;
      while (tokens[j]?.kind !== ')') {
        const label = tokens[j];
        if (label?.kind !== 'ident') throw new Error(`${t.text} (...) holds ${label?.text ?? 'nothing'} in: ${expr}`);
        reading.groupLabels.push(label.text);
        j++;
        if (tokens[j]?.kind === ',') j++;
      }
      i = j;
      continue;
    }
    if (KEYWORDS.has(t.text)) continue;
    if (next?.kind === '(' || (AGGREGATIONS.has(t.text) && next?.kind === 'ident' && (next.text === 'by' || next.text === 'without'))) {
      if (!FUNCTIONS.has(t.text)) throw new Error(`unknown function ${t.text} in: ${expr}`);
      reading.functions.push(t.text);
      if (COUNTER_FUNCTIONS.has(t.text)) {
        const arg = tokens[i + 2];
        if (arg?.kind !== 'ident' || !/_(total|bucket|sum|count)$/.test(arg.text)) throw new Error(`${t.text}() of ${arg?.text ?? 'nothing'}, not a counter, in: ${expr}`);
        const range = tokens[i + 3]?.kind === 'matchers' ? tokens[i + 4] : tokens[i + 3];
        if (range?.kind !== 'range') throw new Error(`${t.text}(${arg.text}) without a range in: ${expr}`);
      }
      if (t.text === 'histogram_quantile') {
        const q = tokens[i + 2];
        if (q?.kind !== 'num' || Number(q.text) < 0 || Number(q.text) > 1 || tokens[i + 3]?.kind !== ',') throw new Error(`histogram_quantile needs a quantile in [0, 1] first in: ${expr}`);
      }
      continue;
    }
    if (next?.kind === 'ident' || next?.kind === 'num' || next?.kind === 'str') throw new Error(`${t.text} followed by ${next.text} in: ${expr}`);
    reading.metrics.push(t.text);
  }
  // Buckets only make sense aggregated by le into histogram_quantile.
  if (reading.metrics.some((m) => m.endsWith('_bucket')) && !(reading.functions.includes('histogram_quantile') && reading.groupLabels.includes('le'))) {
    throw new Error(`_bucket series outside histogram_quantile(q, sum by (le, ...) (...)) in: ${expr}`);
  }
  return reading;
}

/** `$var` and `${var}` names an expression uses. */
const variablesOf = (expr: string) => [...expr.matchAll(/\$\{?([a-zA-Z_][a-zA-Z0-9_]*)/g)].map((m) => m[1]!);

describe('the PromQL reader the checks below rely on', () => {
  it('finds metric names, functions and grouping labels', () => {
    const r = readPromQL('histogram_quantile(0.99, sum by (le, endpoint) (rate(llmgw_request_duration_seconds_bucket{namespace=~"$namespace"}[$__rate_interval])))');
    expect(r.metrics).toEqual(['llmgw_request_duration_seconds_bucket']);
    expect(r.functions).toEqual(['histogram_quantile', 'sum', 'rate']);
    expect(r.groupLabels).toEqual(['le', 'endpoint']);
    expect(readPromQL('100 * max by (scope) (a_used / (a_limit > 0)) >= 80 < 100').metrics).toEqual(['a_used', 'a_limit']);
    expect(readPromQL('absent(up{job="x", namespace="y"} == 1)').metrics).toEqual(['up']);
  });

  it('refuses what is malformed', () => {
    expect(() => readPromQL('sum(rate(x_total[5m])')).toThrow(/unbalanced/);
    expect(() => readPromQL('sum(rate(x_total[5m])))')).toThrow(/unbalanced/);
    expect(() => readPromQL('summ(x_total)')).toThrow(/unknown function summ/);
    expect(() => readPromQL('rate(x_total)')).toThrow(/without a range/);
    expect(() => readPromQL('rate(llmgw_quota_lease_tokens[5m])')).toThrow(/not a counter/);
    expect(() => readPromQL('x_total{a="b}')).toThrow(/unclosed/);
    expect(() => readPromQL('x_total{a=b}')).toThrow(/malformed label matchers/);
    expect(() => readPromQL('rate(x_total[5 m])')).toThrow(/malformed range/);
    expect(() => readPromQL('sum by (le) (rate(x_bucket[5m]))')).toThrow(/_bucket series outside histogram_quantile/);
    expect(() => readPromQL('sum(x_total) >')).toThrow(/without a right operand/);
    expect(() => readPromQL('sum by le (x_total)')).toThrow(/by without a label list/);
  });
});

describe('off by default', () => {
  it('renders neither the dashboard ConfigMap nor the PrometheusRule', () => {
    const docs = render();
    expect(dashboardMap(docs)).toBeUndefined();
    expect(ruleOf(docs)).toBeUndefined();
    expect(docs.filter((d) => d.metadata.labels?.grafana_dashboard !== undefined)).toEqual([]);
  });
});

describe('helm with the dashboard and the alerts on', () => {
  it('lints clean', () => {
    expect(helm(['lint', CHART, '--set', [...ON, 'serviceMonitor.enabled=true', 'grafana.dashboard.folder=LLM'].join(',')])).toContain('0 chart(s) failed');
  });

  it(`renders both, the same, on Kubernetes ${KUBE_VERSIONS.join(' and ')}`, () => {
    const [oldest, current] = KUBE_VERSIONS.map((v) => render(ON, v)) as [Doc[], Doc[]];
    for (const docs of [oldest, current]) {
      expect(dashboardMap(docs)?.apiVersion).toBe('v1');
      expect(ruleOf(docs)?.apiVersion).toBe('monitoring.coreos.com/v1');
    }
    expect(dashboardMap(oldest)).toEqual(dashboardMap(current));
    expect(ruleOf(oldest)).toEqual(ruleOf(current));
  }, 60_000);
});

describe('the Grafana dashboard ConfigMap', () => {
  const docs = render(ON);
  const map = dashboardMap(docs)!;
  const text = map.data['llm-gateway.json'] as string;
  const dashboard = JSON.parse(text) as { schemaVersion: number; uid: string; title: string; panels: any[]; templating: { list: any[] } };
  const panels = dashboard.panels.filter((p) => p.type !== 'row');
  const variables = new Map(dashboard.templating.list.map((v) => [v.name as string, v]));
  const queries = panels.flatMap((p) => (p.targets as { expr: string }[]).map((t) => ({ panel: p.title as string, expr: t.expr })));

  it('carries the Grafana sidecar label, in the release namespace, with no folder annotation unless asked', () => {
    expect(map.metadata.namespace).toBe(NS);
    expect(map.metadata.labels).toMatchObject({ grafana_dashboard: '1', 'app.kubernetes.io/instance': 'rel' });
    expect(map.metadata.annotations).toBeUndefined();
    expect(Object.keys(map.data)).toEqual(['llm-gateway.json']);
  });

  it('takes the label, the folder annotation, the namespace and extra metadata from values', () => {
    const custom = dashboardMap(
      render([
        'grafana.dashboard.enabled=true',
        'grafana.dashboard.label=dashboards',
        'grafana.dashboard.labelValue=llm',
        'grafana.dashboard.folder=LLM Gateway',
        'grafana.dashboard.folderAnnotation=k8s-sidecar-target-directory',
        'grafana.dashboard.namespace=monitoring',
        'grafana.dashboard.labels.team=platform',
        'grafana.dashboard.annotations.owner=sre',
      ]),
    )!;
    expect(custom.metadata.namespace).toBe('monitoring');
    expect(custom.metadata.labels).toMatchObject({ dashboards: 'llm', team: 'platform' });
    expect(custom.metadata.labels!.grafana_dashboard).toBeUndefined();
    expect(custom.metadata.annotations).toEqual({ 'k8s-sidecar-target-directory': 'LLM Gateway', owner: 'sre' });
  });

  it('holds the chart file unchanged, valid JSON of a current Grafana schema', () => {
    expect(text).toBe(readFileSync(DASHBOARD_FILE, 'utf8').trim());
    expect(dashboard.schemaVersion).toBeGreaterThanOrEqual(39);
    expect(dashboard.uid).toBe('llm-gateway');
    expect(dashboard.title).toBe('llm-gateway');
  });

  it('has a Prometheus data source variable that every panel and query uses, and namespace and model variables', () => {
    expect(variables.get('datasource')).toMatchObject({ type: 'datasource', query: 'prometheus' });
    for (const name of ['namespace', 'model']) expect(variables.get(name), name).toMatchObject({ type: 'query', datasource: { type: 'prometheus', uid: '${datasource}' }, multi: true, includeAll: true });
    for (const p of panels) {
      expect(p.datasource, p.title).toEqual({ type: 'prometheus', uid: '${datasource}' });
      expect(p.targets.length, p.title).toBeGreaterThan(0);
      for (const t of p.targets) expect(t.datasource, p.title).toEqual({ type: 'prometheus', uid: '${datasource}' });
      expect(new Set(p.targets.map((t: { refId: string }) => t.refId)).size, p.title).toBe(p.targets.length);
    }
  });

  it('lays out panels with unique ids on the 24-column grid, without overlaps', () => {
    const ids = dashboard.panels.map((p) => p.id);
    expect(new Set(ids).size).toBe(ids.length);
    const boxes = dashboard.panels.map((p) => ({ title: p.title as string, ...(p.gridPos as { x: number; y: number; w: number; h: number }) }));
    for (const b of boxes) expect(b.x + b.w, b.title).toBeLessThanOrEqual(24);
    for (const [i, a] of boxes.entries()) {
      for (const b of boxes.slice(i + 1)) {
        const overlap = a.x < b.x + b.w && b.x < a.x + a.w && a.y < b.y + b.h && b.y < a.y + a.h;
        expect(overlap, `${a.title} overlaps ${b.title}`).toBe(false);
      }
    }
  });

  it('queries only the series the sidecar and the quota service export, in well-formed PromQL', () => {
    const used = new Set<string>();
    for (const { panel, expr } of queries) {
      const { metrics } = readPromQL(expr);
      expect(metrics.length, `${panel}: ${expr}`).toBeGreaterThan(0);
      for (const m of metrics) {
        expect(EXPORTED.has(m), `${panel}: ${m} is not a series llm-gateway exports`).toBe(true);
        used.add(m);
      }
      for (const v of variablesOf(expr)) expect(variables.has(v) || GRAFANA_BUILTINS.has(v), `${panel}: $${v} is not defined`).toBe(true);
    }
    for (const v of dashboard.templating.list.filter((x) => x.type === 'query')) {
      const m = /^label_values\((.+),\s*([a-zA-Z_][a-zA-Z0-9_]*)\)$/.exec(v.query.query as string);
      expect(m, v.name).not.toBeNull();
      for (const metric of readPromQL(m![1]!).metrics) expect(EXPORTED.has(metric), `variable ${v.name}: ${metric}`).toBe(true);
      expect(v.definition).toBe(v.query.query);
    }
    // What the dashboard is for: traffic, errors, latency, overhead, tokens and spend per model and team,
    // budgets, cache, circuits, and lease health.
    for (const m of [
      'llmgw_requests_total', 'llmgw_refusals_total', 'llmgw_request_duration_seconds_bucket', 'llmgw_gateway_overhead_seconds_bucket', 'llmgw_tokens_total',
      'llmgw_cost_usd_total', 'llmgw_quota_cost_usd_total', 'llmgw_quota_budget_used', 'llmgw_quota_budget_limit', 'llmgw_cache_requests_total', 'llmgw_circuit_state',
      'llmgw_quota_lease_tokens', 'llmgw_quota_lease_calls_total', 'llmgw_quota_waits_total', 'llmgw_quota_degraded', 'llmgw_quota_fail_open_tokens_total',
    ]) {
      expect(used.has(m), `no panel shows ${m}`).toBe(true);
    }
  });

  it('filters the sidecars\' series by the namespace variable, and the quota service\'s not at all', () => {
    const quotaSeries = new Set(['llmgw_quota_rpcs_total', 'llmgw_quota_granted_tokens_total', 'llmgw_quota_lease_answers_total', 'llmgw_quota_active_leases', 'llmgw_quota_budget_used', 'llmgw_quota_budget_limit', 'llmgw_quota_cost_usd_total', 'llmgw_quota_unpriced_tokens_total']);
    for (const { panel, expr } of queries) {
      const quota = readPromQL(expr).metrics.every((m) => quotaSeries.has(m));
      expect(expr.includes('namespace=~"$namespace"'), panel).toBe(!quota);
    }
  });
});

describe('the PrometheusRule', () => {
  const alerts = alertsOf(render(ON));

  it('has the budget, degraded-mode, quota-service, circuit and price alerts, each with a severity, a summary and a description', () => {
    expect([...alerts.keys()].sort()).toEqual(
      ['LlmgwBudgetNearlyExhausted', 'LlmgwBudgetExhausted', 'LlmgwUnpricedModel', 'LlmgwQuotaDegraded', 'LlmgwQuotaServiceUnready', 'LlmgwQuotaServiceErrors', 'LlmgwCircuitOpen'].sort(),
    );
    for (const [name, rule] of alerts) {
      expect(['info', 'warning', 'critical'], name).toContain(rule.labels.severity);
      expect(rule.annotations.summary, name).toMatch(/\S/);
      expect(rule.annotations.description, name).toMatch(/\S/);
    }
    expect(alerts.get('LlmgwBudgetNearlyExhausted')!.labels.severity).toBe('warning');
    expect(alerts.get('LlmgwBudgetExhausted')!.labels.severity).toBe('critical');
  });

  it('alerts in well-formed PromQL on exported series only, and its annotations name only labels the expression keeps', () => {
    for (const [name, rule] of alerts) {
      const { metrics, groupLabels } = readPromQL(rule.expr);
      expect(metrics.length, name).toBeGreaterThan(0);
      for (const m of metrics) expect(EXPORTED.has(m) || RULE_EXTRA.has(m), `${name}: ${m}`).toBe(true);
      const text = `${rule.annotations.summary} ${rule.annotations.description}`;
      // Prometheus' own templates survive Helm's rendering, balanced.
      expect(text.split('{{').length, name).toBe(text.split('}}').length);
      for (const [, label] of text.matchAll(/\$labels\.([a-zA-Z_][a-zA-Z0-9_]*)/g)) expect(groupLabels, `${name}: $labels.${label}`).toContain(label);
    }
  });

  it('fires at 80% and 100% of a budget by default, per scope, window and unit, never dividing by a zero limit', () => {
    const warn = alerts.get('LlmgwBudgetNearlyExhausted')!;
    const crit = alerts.get('LlmgwBudgetExhausted')!;
    expect(warn.expr).toBe('100 * max by (scope, window, unit) (llmgw_quota_budget_used / (llmgw_quota_budget_limit > 0)) >= 80 < 100');
    expect(crit.expr).toBe('100 * max by (scope, window, unit) (llmgw_quota_budget_used / (llmgw_quota_budget_limit > 0)) >= 100');
    expect(warn.for).toBe('1m');
    expect(warn.annotations.summary).toContain('{{ $labels.scope }}');
    expect(alerts.get('LlmgwQuotaDegraded')).toMatchObject({ expr: 'count by (namespace) (llmgw_quota_degraded == 1) > 0', for: '5m' });
    expect(alerts.get('LlmgwCircuitOpen')).toMatchObject({ expr: 'max by (namespace, provider, model) (llmgw_circuit_state) >= 1', for: '10m' });
  });

  it('takes thresholds, durations, the rule\'s labels and the alerts\' labels from values', () => {
    const docs = render([
      ...ON,
      'prometheusRule.budget.warningPercent=70',
      'prometheusRule.budget.criticalPercent=95',
      'prometheusRule.budget.for=3m',
      'prometheusRule.degraded.for=7m',
      'prometheusRule.circuitOpen.for=15m',
      'prometheusRule.quotaService.for=2m',
      'prometheusRule.quotaService.errorPercent=2',
      'prometheusRule.labels.release=kube-prometheus-stack',
      'prometheusRule.alertLabels.team=platform',
      'prometheusRule.unpriced.enabled=false',
    ]);
    expect(ruleOf(docs)!.metadata.labels).toMatchObject({ release: 'kube-prometheus-stack', 'app.kubernetes.io/instance': 'rel' });
    const a = alertsOf(docs);
    expect(a.get('LlmgwBudgetNearlyExhausted')!.expr).toMatch(/>= 70 < 95$/);
    expect(a.get('LlmgwBudgetNearlyExhausted')!.annotations.description).toContain('threshold of 70%');
    expect(a.get('LlmgwBudgetExhausted')!.expr).toMatch(/\) >= 95$/);
    expect(a.get('LlmgwBudgetExhausted')!.for).toBe('3m');
    expect(a.get('LlmgwQuotaDegraded')!.for).toBe('7m');
    expect(a.get('LlmgwQuotaDegraded')!.annotations.description).toContain('for more than 7m');
    expect(a.get('LlmgwCircuitOpen')!.for).toBe('15m');
    expect(a.get('LlmgwQuotaServiceUnready')!.for).toBe('2m');
    expect(a.get('LlmgwQuotaServiceErrors')!.expr).toMatch(/> 2$/);
    expect(a.has('LlmgwUnpricedModel')).toBe(false);
    for (const [name, rule] of a) expect(rule.labels, name).toEqual({ severity: rule.labels.severity, team: 'platform' });
  });

  it('watches the quota service\'s scrape target when the chart\'s ServiceMonitor scrapes it, and its Deployment', () => {
    const docs = render([...ON, 'serviceMonitor.enabled=true']);
    const down = alertsOf(docs).get('LlmgwQuotaServiceDown')!;
    expect(down).toMatchObject({ expr: 'absent(up{job="rel-llm-gateway-quota", namespace="llm-gateway"} == 1)', labels: { severity: 'critical' } });
    // Prometheus Operator names the job after the Service the ServiceMonitor selects: the quota Service, with a status port.
    const service = docs.find((d) => d.kind === 'Service' && d.metadata.name === 'rel-llm-gateway-quota')!;
    expect(service.spec.ports.map((p: { name: string }) => p.name)).toContain('status');
    const monitor = docs.find((d) => d.kind === 'ServiceMonitor')!;
    expect(monitor.spec.endpoints[0].port).toBe('status');
    expect(Object.entries(monitor.spec.selector.matchLabels).every(([k, v]) => service.metadata.labels![k] === v)).toBe(true);
    const deployment = docs.find((d) => d.kind === 'Deployment' && d.metadata.name === 'rel-llm-gateway-quota')!;
    expect(alertsOf(docs).get('LlmgwQuotaServiceUnready')!.expr).toBe(`kube_deployment_status_replicas_available{namespace="llm-gateway", deployment="${deployment.metadata.name}"} < 1`);
    const noQuota = alertsOf(render([...ON, 'serviceMonitor.enabled=true', 'quota.enabled=false']));
    for (const name of ['LlmgwQuotaServiceDown', 'LlmgwQuotaServiceUnready', 'LlmgwQuotaServiceErrors']) expect(noQuota.has(name), name).toBe(false);
  }, 60_000);

  it('refuses thresholds in the wrong order, a severity among the alert labels, and malformed durations', () => {
    expect(renderError([...ON, 'prometheusRule.budget.warningPercent=100'])).toContain('prometheusRule.budget.warningPercent (100) must be below prometheusRule.budget.criticalPercent (100)');
    expect(renderError([...ON, 'prometheusRule.alertLabels.severity=page'])).toContain('prometheusRule.alertLabels: Property name of "severity" does not match');
    expect(renderError([...ON, 'prometheusRule.degraded.for=5 minutes'])).toContain('prometheusRule.degraded.for: Does not match pattern');
    expect(renderError([...ON, 'prometheusRule.budget.warningPercent=0'])).toContain('prometheusRule.budget.warningPercent: Must be greater than 0');
    expect(renderError(['grafana.dashboard.enable=true'])).toContain('Additional property enable is not allowed');
  }, 60_000);
});

describe('the series the dashboard and alerts name, against the code', () => {
  /** Every quoted string in the sidecar's, the quota service's and the shared TypeScript sources. */
  function sourceStrings(): Set<string> {
    const out = new Set<string>();
    const walk = (dir: string): void => {
      for (const entry of readdirSync(dir, { withFileTypes: true })) {
        const path = join(dir, entry.name);
        if (entry.isDirectory()) walk(path);
        else if (entry.name.endsWith('.ts')) for (const [, s] of readFileSync(path, 'utf8').matchAll(/['"`]([a-z_:][a-z0-9_:]*)['"`]/g)) out.add(s!);
      }
    };
    for (const dir of ['sidecar', 'quota-service', 'common']) walk(join(ROOT, dir));
    return out;
  }

  it('finds every series in use registered by the code', () => {
    const strings = sourceStrings();
    const names = new Set<string>();
    const dashboard = JSON.parse(readFileSync(DASHBOARD_FILE, 'utf8')) as { panels: { targets?: { expr: string }[] }[] };
    for (const p of dashboard.panels) for (const t of p.targets ?? []) for (const m of readPromQL(t.expr).metrics) names.add(baseName(m));
    for (const rule of alertsOf(render([...ON, 'serviceMonitor.enabled=true'])).values()) for (const m of readPromQL(rule.expr).metrics) if (!RULE_EXTRA.has(m)) names.add(baseName(m));
    const missing = [...names].filter((n) => !strings.has(n));
    expect(missing, 'named by the dashboard or the alerts but registered nowhere in the code').toEqual([]);
  });
});

describe('the sidecars\' PodMonitor', () => {
  const podMonitor = (docs: Doc[]) => docs.find((d) => d.kind === 'PodMonitor');

  it('is off by default, and on scrapes every injected pod\'s status port in any namespace', () => {
    expect(podMonitor(render())).toBeUndefined();
    const pm = podMonitor(render(['podMonitor.enabled=true', 'podMonitor.labels.release=kps']))!;
    expect(pm.metadata).toMatchObject({ name: 'rel-llm-gateway-sidecars', labels: { release: 'kps' } });
    // The label the injector puts on every pod it injects, and the port name it gives the sidecar's status listener.
    expect(pm.spec).toEqual({
      namespaceSelector: { any: true },
      selector: { matchLabels: { 'llm-gateway.dev/injected': 'true' } },
      podMetricsEndpoints: [{ port: 'llmgw-status', path: '/metrics', interval: '30s' }],
    });
  });

  it('can be limited to named namespaces, and refuses a malformed list', () => {
    const pm = podMonitor(render(['podMonitor.enabled=true', 'podMonitor.namespaces={team-a,team-b}']))!;
    expect(pm.spec.namespaceSelector).toEqual({ matchNames: ['team-a', 'team-b'] });
    expect(renderError(['podMonitor.enabled=true', 'podMonitor.namespaces=team-a'])).toMatch(/podMonitor\.namespaces|namespaces/);
  });
});
