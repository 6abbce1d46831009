// The usage page's charts (uPlot, served from this build): one per group, redrawn in place when only the
// numbers changed. Series labels (tag values, model names) reach the legend as text (uPlot sets textContent).
(function () {
  'use strict';

  var U = window.llmgwUsage;
  var $ = U.$;
  var el = U.el;
  var num = U.num;
  var usd = U.usd;
  var compact = U.compact;
  var DASH = U.DASH;
  var COLORS = ['#2563eb', '#dc2626', '#16a34a', '#d97706', '#7c3aed', '#0891b2', '#db2777', '#65a30d', '#475569'];
  var OTHER_COLOR = '#9ca3af';
  /** group → { plot, signature, box } */
  var charts = {};

  function figureOf(group) {
    return document.querySelector('figure.chart[data-group="' + group + '"]');
  }

  function dropChart(group) {
    var c = charts[group];
    if (c) {
      c.plot.destroy();
      delete charts[group];
    }
  }

  function absent(group, note) {
    dropChart(group);
    var fig = figureOf(group);
    fig.querySelector('.plot').replaceChildren(el('div', DASH, 'absent'));
    fig.querySelector('.note').textContent = note;
  }

  function chartHeight(width) {
    return width < 500 ? 200 : 240;
  }

  function renderChart(group, answer, unit) {
    var fig = figureOf(group);
    if (answer.error) return absent(group, 'Cannot show this chart: ' + answer.error);
    if (!answer.available) return absent(group, 'The quota service does not keep usage per ' + group + ' yet.');
    var series = answer.series;
    var pick = function (s) {
      return unit === 'usd' ? s.costUsd : s.tokens;
    };
    if (unit === 'usd' && series.length > 0 && series.every(function (s) { return !s.costUsd; })) {
      return absent(group, 'This usage is not priced yet: choose the tokens unit.');
    }
    var xs = answer.startsMs.map(function (ms) {
      return ms / 1000;
    });
    var labels = series.map(function (s) {
      return s.label;
    });
    var data = [xs].concat(
      series.map(function (s) {
        return pick(s) || xs.map(function () { return null; });
      }),
    );
    var note = [];
    if (series.length === 0) {
      labels = ['no usage'];
      data.push(xs.map(function () { return 0; }));
      note.push('No consumption in this range.');
    }
    if (group === 'tag') note.push('Tag key: ' + answer.tag + ' (summed over namespaces).');
    if (answer.scopesLeftOut > 0) note.push(answer.scopesLeftOut + ' scopes left out.');
    fig.querySelector('.note').textContent = note.join(' ');

    var signature = JSON.stringify([labels, unit, answer.window]);
    var existing = charts[group];
    if (existing && existing.signature === signature) {
      existing.plot.setData(data);
      return;
    }
    dropChart(group);
    var box = fig.querySelector('.plot');
    box.replaceChildren();
    var width = Math.max(160, box.clientWidth);
    var fmt = function (u, v) {
      return v === null || v === undefined ? DASH : unit === 'usd' ? usd(v) : num(v);
    };
    var opts = {
      width: width,
      height: chartHeight(width),
      scales: { x: { time: true } },
      legend: { live: false },
      series: [{ label: 'window' }].concat(
        labels.map(function (label, i) {
          var other = series[i] && series[i].other !== undefined;
          var color = other ? OTHER_COLOR : COLORS[i % COLORS.length];
          return { label: label, stroke: color, width: 2, value: fmt, points: { show: xs.length <= 31 } };
        }),
      ),
      axes: [
        { stroke: '#5b6675' },
        {
          stroke: '#5b6675',
          size: 52,
          values: function (u, ticks) {
            return ticks.map(function (t) {
              return unit === 'usd' ? '$' + compact(t) : compact(t);
            });
          },
        },
      ],
    };
    charts[group] = { plot: new uPlot(opts, data, box), signature: signature, box: box };
  }

  function resizeCharts() {
    Object.keys(charts).forEach(function (group) {
      var c = charts[group];
      var width = Math.max(160, c.box.clientWidth);
      if (width !== c.plot.width) c.plot.setSize({ width: width, height: chartHeight(width) });
    });
  }

  U.renderChart = renderChart;
  U.resizeCharts = resizeCharts;
  U.dropCharts = function () {
    Object.keys(charts).forEach(dropChart);
  };
})();
